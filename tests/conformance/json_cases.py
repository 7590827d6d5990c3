r"""JSON conformance cases, in chunkwise's own bytes, by class, each with what must come of it.

The classes follow the public conformance material for JSON parsers (JSONTestSuite's files named
``y_`` must be accepted, ``n_`` rejected, ``i_`` are the implementation's choice, in the classes
array, object, number, string and structure; RFC 8259's grammar): none of their files or bytes is
copied; every case here was written for this suite.

Each case is the text of one JSON value. Outcomes:

- ``accept``: valid JSON. Read back, it equals Python's ``json.loads`` of it, wherever it stands:
  as the value of a field (``{"v": TEXT}``) on an NDJSON line and as an element of a JSON array
  of records, alone and among all the others; as an element of an array of values
  (``[TEXT]``, the column ``value``) when it is not an object; as the record itself when it is
  a non-empty object. (An NDJSON line must hold an object: chunkwise rejects any other line.)
- ``reject``: not JSON. As a field's value it makes its record a reject and every neighbour is
  kept; where it unbalances the brackets of a JSON array document, the document may instead be
  a clean typed failure (``InputFormatError``) that writes nothing.
- ``defined``: JSON whose reading RFC 8259 leaves to the implementation (numbers beyond int64
  or float64, lone surrogates, invalid UTF-8, deep nesting, a byte-order mark, duplicate keys).
  Never a crash: each runs in a child process. ``verdict`` pins chunkwise's answer: ``accept``
  (read back as ``expected``, or as ``json.loads`` of the text when ``expected`` is unset),
  ``reject``, or an error class name (the whole input fails with it and nothing is written).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CASES", "UNSET", "JsonCase"]

#: ``expected`` of a case that reads back as ``json.loads`` of its text.
UNSET: Any = object()


@dataclass(frozen=True)
class JsonCase:
    """One JSON value's text and what chunkwise must make of it."""

    name: str
    klass: str
    text: bytes
    outcome: str = "accept"
    #: ``defined`` cases: ``accept``, ``reject`` or an error class name
    verdict: str | None = None
    #: ``defined`` cases read back as this (``UNSET``: as ``json.loads`` of the text)
    expected: Any = UNSET
    #: ``defined`` cases whose verdict in a JSON array differs from ``verdict``
    array_verdict: str | None = None

    @property
    def id(self) -> str:
        """The pytest id: class/name."""
        return f"{self.klass}/{self.name}"

    @property
    def one_line(self) -> bool:
        """Whether the text can stand on an NDJSON line (no raw line break in it)."""
        return b"\n" not in self.text


def _y(name: str, klass: str, text: bytes) -> JsonCase:
    return JsonCase(name, klass, text)


def _n(name: str, klass: str, text: bytes) -> JsonCase:
    return JsonCase(name, klass, text, "reject")


def _i(name: str, klass: str, text: bytes, verdict: str, expected: Any = UNSET,
       array_verdict: str | None = None) -> JsonCase:
    return JsonCase(name, klass, text, "defined", verdict, expected, array_verdict)


def _nested(depth: int, opener: bytes, closer: bytes, inner: bytes = b"1") -> bytes:
    return opener * depth + inner + closer * depth


def _objects(depth: int) -> bytes:
    return b'{"k":' * depth + b"1" + b"}" * depth


CASES: list[JsonCase] = [
    # -- accept: arrays ----------------------------------------------------------------------
    _y("empty", "array", b"[]"),
    _y("empty_with_space", "array", b"[ ]"),
    _y("one_number", "array", b"[7]"),
    _y("numbers", "array", b"[1,2,3]"),
    _y("floats", "array", b"[0.5, -2.25, 1e3]"),
    _y("strings", "array", b'["red", "green", ""]'),
    _y("null_inside", "array", b"[null]"),
    _y("nulls_and_numbers", "array", b"[1, null, 3]"),
    _y("booleans", "array", b"[true, false]"),
    _y("mixed_kinds", "array", b'[1, "one", true, null]'),
    _y("number_then_string", "array", b'[2, "x"]'),
    _y("nested_empty", "array", b"[[]]"),
    _y("nested_numbers", "array", b"[[1, 2], [3]]"),
    _y("nested_mixed_depths", "array", b"[[1], [[2]]]"),
    _y("lists_of_different_kinds", "array", b'[[1], ["a"]]'),
    _y("objects", "array", b'[{"k": 1}, {"k": 2}]'),
    _y("objects_with_other_keys", "array", b'[{"k": 1}, {"j": "x"}]'),
    _y("empty_object_inside", "array", b"[{}]"),
    _y("whitespace_around", "array", b"[ 1 ,\t2 ,\r3 ]"),
    _y("line_breaks_inside", "array", b"[\n  1,\n  2\n]"),
    # -- accept: objects ---------------------------------------------------------------------
    _y("empty", "object", b"{}"),
    _y("one_member", "object", b'{"qty": 3}'),
    _y("members_of_each_kind", "object",
       b'{"n": 1, "f": 2.5, "s": "x", "b": true, "z": null, "l": [1], "o": {"p": 1}}'),
    _y("empty_key", "object", b'{"": "blank name"}'),
    _y("key_with_space_and_dot", "object", b'{"unit price": 1, "a.b": 2}'),
    _y("unicode_key", "object", b'{"caf\xc3\xa9": 1, "\xe6\x97\xa5": 2}'),
    _y("escaped_key", "object", b'{"say \\"hi\\"": 1}'),
    _y("nested", "object", b'{"a": {"b": {"c": [1, {"d": null}]}}}'),
    _y("spaces_everywhere", "object", b'{ "a" : 1 , "b" :\t[ 2 ] }'),
    _y("null_member", "object", b'{"a": null}'),
    _y("list_of_objects_member", "object", b'{"items": [{"sku": "A"}, {"sku": "B", "n": 2}]}'),
    _y("same_key_in_nested_objects", "object", b'{"a": {"a": {"a": 1}}}'),
    _y("keys_differing_in_case", "object", b'{"Id": 1, "id": 2}'),
    # -- accept: numbers ---------------------------------------------------------------------
    _y("zero", "number", b"0"),
    _y("negative_zero", "number", b"-0"),
    _y("negative_zero_float", "number", b"-0.0"),
    _y("integer", "number", b"42"),
    _y("negative_integer", "number", b"-17"),
    _y("int64_max", "number", b"9223372036854775807"),
    _y("int64_min", "number", b"-9223372036854775808"),
    _y("beyond_float_precision", "number", b"9007199254740993"),
    _y("fraction", "number", b"3.25"),
    _y("negative_fraction", "number", b"-0.125"),
    _y("exponent", "number", b"2e3"),
    _y("capital_exponent", "number", b"2E3"),
    _y("plus_exponent", "number", b"2e+3"),
    _y("minus_exponent", "number", b"25e-2"),
    _y("fraction_and_exponent", "number", b"1.5e10"),
    _y("zero_exponent", "number", b"0e0"),
    _y("largest_double", "number", b"1.7976931348623157e308"),
    _y("smallest_subnormal", "number", b"5e-324"),
    _y("long_fraction", "number", b"0.30000000000000004"),
    _y("integral_float", "number", b"1.0"),
    # -- accept: strings ---------------------------------------------------------------------
    _y("empty", "string", b'""'),
    _y("plain", "string", b'"gadget"'),
    _y("short_escapes", "string", b'"q\\" b\\\\ s\\/ \\b\\f\\n\\r\\t"'),
    _y("unicode_escape_ascii", "string", b'"\\u0041BC"'),
    _y("unicode_escape_latin", "string", b'"caf\\u00e9"'),
    _y("unicode_escape_euro", "string", b'"\\u20AC 5"'),
    _y("surrogate_pair", "string", b'"\\ud83d\\ude00"'),
    _y("surrogate_pair_upper", "string", b'"\\uD834\\uDD1E"'),
    _y("highest_code_point", "string", b'"\\udbff\\udfff"'),
    _y("raw_utf8", "string", b'"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xe6\x97\xa5"'),
    _y("raw_line_separators", "string", b'"a\xe2\x80\xa8b\xe2\x80\xa9c"'),
    _y("escaped_nul", "string", b'"a\\u0000b"'),
    _y("escaped_control", "string", b'"\\u001f\\u0001"'),
    _y("raw_del", "string", b'"a\x7fb"'),
    _y("noncharacter", "string", b'"\\uffff\\ufdd0"'),
    _y("backslash_u_text", "string", b'"\\\\u0041"'),
    _y("quote_only", "string", b'"\\""'),
    _y("looks_like_a_number", "string", b'"00123"'),
    _y("looks_like_json", "string", b'"{\\"a\\": [1]}"'),
    _y("looks_like_a_date", "string", b'"2024-02-29"'),
    _y("long", "string", b'"' + b"abc " * 5000 + b'"'),
    # -- accept: literals and structure ------------------------------------------------------
    _y("true", "structure", b"true"),
    _y("false", "structure", b"false"),
    _y("null", "structure", b"null"),
    _y("leading_and_trailing_space", "structure", b" \t 7 \t "),
    _y("crlf_inside", "structure", b"[1,\r\n2]"),
    # -- reject: arrays ----------------------------------------------------------------------
    _n("trailing_comma", "array", b"[1,]"),
    _n("leading_comma", "array", b"[,1]"),
    _n("double_comma", "array", b"[1,,2]"),
    _n("missing_comma", "array", b"[1 2]"),
    _n("strings_without_comma", "array", b'["a" "b"]'),
    _n("unclosed", "array", b"[1, 2"),
    _n("extra_close", "array", b"[1]]"),
    _n("colon_inside", "array", b'["a": 1]'),
    _n("only_comma", "array", b"[,]"),
    # -- reject: objects ---------------------------------------------------------------------
    _n("trailing_comma", "object", b'{"a": 1,}'),
    _n("missing_colon", "object", b'{"a" 1}'),
    _n("double_colon", "object", b'{"a":: 1}'),
    _n("comma_for_colon", "object", b'{"a", 1}'),
    _n("unquoted_key", "object", b"{a: 1}"),
    _n("single_quoted_key", "object", b"{'a': 1}"),
    _n("number_key", "object", b"{1: 1}"),
    _n("missing_value", "object", b'{"a":}'),
    _n("missing_member", "object", b'{"a": 1,, "b": 2}'),
    _n("unclosed", "object", b'{"a": 1'),
    _n("extra_close", "object", b'{"a": 1}}'),
    _n("line_comment", "object", b'{"a": 1 // note\n}'),
    _n("block_comment", "object", b'{"a": /* note */ 1}'),
    _n("two_objects", "object", b'{"a": 1} {"b": 2}'),
    # -- reject: numbers ---------------------------------------------------------------------
    _n("leading_zero", "number", b"012"),
    _n("negative_leading_zero", "number", b"-012"),
    _n("plus_sign", "number", b"+1"),
    _n("bare_point", "number", b".5"),
    _n("trailing_point", "number", b"1."),
    _n("point_then_exponent", "number", b"1.e3"),
    _n("bare_exponent", "number", b"1e"),
    _n("signed_bare_exponent", "number", b"1e+"),
    _n("hex", "number", b"0x1F"),
    _n("two_points", "number", b"1.2.3"),
    _n("minus_alone", "number", b"-"),
    _n("double_minus", "number", b"--1"),
    _n("space_after_minus", "number", b"- 1"),
    _n("underscore", "number", b"1_000"),
    _n("arabic_digit", "number", b"\xd9\xa1"),
    _n("nan", "number", b"NaN"),
    _n("negative_nan", "number", b"-NaN"),
    _n("lower_nan", "number", b"nan"),
    _n("infinity", "number", b"Infinity"),
    _n("negative_infinity", "number", b"-Infinity"),
    _n("plus_infinity", "number", b"+Infinity"),
    _n("inf", "number", b"Inf"),
    _n("lower_inf", "number", b"inf"),
    _n("nan_in_a_list", "number", b"[1.5, NaN]"),
    # -- reject: strings ---------------------------------------------------------------------
    _n("unterminated", "string", b'"abc'),
    _n("single_quotes", "string", b"'abc'"),
    _n("raw_tab", "string", b'"a\tb"'),
    _n("raw_control", "string", b'"a\x01b"'),
    _n("raw_line_break", "string", b'"a\nb"'),
    _n("escaped_x", "string", b'"\\x41"'),
    _n("unknown_escape", "string", b'"\\a"'),
    _n("short_unicode_escape", "string", b'"\\u12"'),
    _n("non_hex_escape", "string", b'"\\uZZZZ"'),
    _n("escaped_end_quote", "string", b'"abc\\"'),
    _n("capital_u_escape", "string", b'"\\U0041"'),
    # -- reject: literals and structure ------------------------------------------------------
    _n("truncated_true", "structure", b"tru"),
    _n("capital_true", "structure", b"True"),
    _n("capital_null", "structure", b"NULL"),
    _n("undefined", "structure", b"undefined"),
    _n("python_none", "structure", b"None"),
    _n("two_values", "structure", b"1 2"),
    _n("value_then_garbage", "structure", b"[1] x"),
    _n("empty", "structure", b""),
    _n("form_feed_as_space", "structure", b"\x0c1"),
    _n("no_break_space", "structure", b"\xc2\xa01"),
    # -- implementation-defined: numbers beyond the types --------------------------------------
    _i("beyond_int64", "number", b"9223372036854775808", "accept", 9223372036854775808.0),
    _i("below_int64", "number", b"-9223372036854775809", "accept", -9223372036854775809.0),
    _i("thirty_digits", "number", b"123456789012345678901234567890", "accept",
       1.2345678901234568e29),
    _i("beyond_float64", "number", b"1e400", "reject"),
    _i("below_float64", "number", b"-1e400", "reject"),
    _i("underflow", "number", b"1e-400", "accept", 0.0),
    _i("huge_exponent", "number", b"1e99999999999999999999", "reject"),
    _i("four_hundred_digits", "number", b"1" * 400, "reject"),
    _i("five_thousand_digits", "number", b"7" * 5000, "reject"),
    _i("long_fraction_digits", "number", b"0." + b"3" * 600, "accept", 0.3333333333333333),
    # -- implementation-defined: strings that no UTF-8 holds, or that are not UTF-8 --------------
    _i("lone_high_surrogate", "string", b'"\\ud800"', "reject"),
    _i("lone_low_surrogate", "string", b'"\\udc00"', "reject"),
    _i("two_high_surrogates", "string", b'"\\ud800\\ud800"', "reject"),
    _i("high_then_other", "string", b'"\\ud888\\u1234"', "reject"),
    _i("reversed_pair", "string", b'"\\ude00\\ud83d"', "reject"),
    _i("surrogate_then_text", "string", b'"\\ud800abc"', "reject"),
    _i("invalid_utf8_byte", "string", b'"\xff"', "InputFormatError"),
    _i("overlong_utf8", "string", b'"\xc0\xaf"', "InputFormatError"),
    _i("truncated_utf8", "string", b'"\xe2\x82"', "InputFormatError"),
    _i("utf8_encoded_surrogate", "string", b'"\xed\xa0\x80"', "InputFormatError"),
    _i("beyond_unicode", "string", b'"\xf4\x90\x80\x80"', "InputFormatError"),
    # NUL bytes are UTF-8 but no JSON outside a string; a .json head holding them is refused
    _i("nul_bytes", "string", b'\x00"\x00a\x00"', "reject", array_verdict="InputFormatError"),
    _i("escaped_nul_in_key", "string", b'{"a\\u0000b": 1}', "accept"),
    _i("bom_inside_string", "string", b'"\xef\xbb\xbfx"', "accept"),
    # -- implementation-defined: nesting, duplicate keys, a byte-order mark ----------------------
    _i("arrays_47_deep", "structure", _nested(47, b"[", b"]"), "accept"),
    _i("arrays_48_deep", "structure", _nested(48, b"[", b"]"), "reject"),
    _i("objects_47_deep", "structure", _objects(47), "accept"),
    _i("objects_48_deep", "structure", _objects(48), "reject"),
    _i("arrays_1000_deep", "structure", _nested(1000, b"[", b"]"), "reject"),
    _i("arrays_100000_deep", "structure", _nested(100_000, b"[", b"]"), "reject"),
    _i("objects_20000_deep", "structure", _objects(20_000), "reject"),
    _i("unclosed_20000_deep", "structure", b"[" * 20_000, "reject"),
    _i("duplicate_key", "object", b'{"a": 1, "a": 2}', "reject"),
    _i("duplicate_key_nested", "object", b'{"o": {"a": 1, "a": 1}}', "reject"),
    _i("duplicate_key_by_escape", "object", b'{"a": 1, "\\u0061": 2}', "reject"),
    _i("bom_before_value", "structure", b"\xef\xbb\xbf7", "reject"),
]
