"""CSV conformance cases, in chunkwise's own bytes, by class, each with what must come out.

The classes follow public CSV conformance material (the csv-spectrum style of files with
expected values, and RFC 4180's grammar): simple records with each line ending, headers, quoting,
line breaks and quotes inside values, empty fields, whitespace, UTF-8, delimiters, numbers.
None of their files is copied; every case here was written for this suite.

``expected`` is the input as RFC 4180 reads it, the header first: Python's ``csv`` module (an
independent reader) is checked to agree with it, and chunkwise must read the same values back.
Outcomes:

- ``accept``: every record written, values exact with an all-string schema, equal as numbers
  with inferred types.
- ``reject``: the records in ``expected`` written, ``rejects`` records rejected (by number).
- ``error``: a typed error (``error``) and nothing written.
- ``defined``: outside RFC 4180; never a crash: a success that accounts for every record, or a
  typed error with nothing written. Where ``expected`` is given, chunkwise's answer is pinned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CASES", "CsvCase"]


@dataclass(frozen=True)
class CsvCase:
    """One input and what chunkwise must make of it."""

    name: str
    klass: str
    data: bytes
    expected: list[list[str]] | None = None
    outcome: str = "accept"
    #: record numbers rejected (``reject``)
    rejects: tuple[int, ...] = ()
    #: the error class (``error``)
    error: str | None = None
    #: reading options (``delimiter``)
    options: dict[str, str] = field(default_factory=dict)
    #: the column names chunkwise gives, where they differ from the header's text
    names: list[str] | None = None
    #: whether RFC 4180 (Python's csv module) reads ``expected`` from ``data``
    rfc: bool = True

    @property
    def id(self) -> str:
        """The pytest id: class/name."""
        return f"{self.klass}/{self.name}"


def _c(name: str, klass: str, data: bytes, expected: list[list[str]] | None = None,
       **kw: object) -> CsvCase:
    return CsvCase(name, klass, data, expected, **kw)  # type: ignore[arg-type]


_WIDE_HEADER = ",".join(f"c{i}" for i in range(60))
_WIDE_ROW = ",".join(str(i * 7) for i in range(60))
_LONG_NOTE = "\n".join(f"line {i} of a long note" for i in range(200))

CASES: list[CsvCase] = [
    # -- records: line endings, the last line break -------------------------------------------
    _c("lf", "records", b"id,city\n1,Oslo\n2,Lima\n",
       [["id", "city"], ["1", "Oslo"], ["2", "Lima"]]),
    _c("crlf", "records", b"id,city\r\n1,Oslo\r\n2,Lima\r\n",
       [["id", "city"], ["1", "Oslo"], ["2", "Lima"]]),
    _c("cr_only", "records", b"id,city\r1,Oslo\r2,Lima\r",
       [["id", "city"], ["1", "Oslo"], ["2", "Lima"]]),
    _c("lf_no_final_break", "records", b"id,city\n1,Oslo\n2,Lima",
       [["id", "city"], ["1", "Oslo"], ["2", "Lima"]]),
    _c("crlf_no_final_break", "records", b"id,city\r\n1,Oslo\r\n2,Lima",
       [["id", "city"], ["1", "Oslo"], ["2", "Lima"]]),
    _c("cr_only_no_final_break", "records", b"id,city\r1,Oslo\r2,Lima",
       [["id", "city"], ["1", "Oslo"], ["2", "Lima"]]),
    _c("lf_and_crlf_mixed", "records", b"id,city\r\n1,Oslo\n2,Lima\r\n",
       [["id", "city"], ["1", "Oslo"], ["2", "Lima"]]),
    _c("one_column", "records", b"sku\nA-1\nB-2\n", [["sku"], ["A-1"], ["B-2"]]),
    _c("sixty_columns", "records", f"{_WIDE_HEADER}\n{_WIDE_ROW}\n".encode(),
       [_WIDE_HEADER.split(","), _WIDE_ROW.split(",")]),
    _c("one_record_no_break", "records", b"k,v\nx,y", [["k", "v"], ["x", "y"]]),

    # -- headers ------------------------------------------------------------------------------
    _c("header_only_lf", "header", b"id,city\n", [["id", "city"]]),
    _c("header_only_crlf", "header", b"id,city\r\n", [["id", "city"]]),
    _c("header_only_no_break", "header", b"id,city", [["id", "city"]]),
    _c("header_only_cr", "header", b"id,city\r", [["id", "city"]]),
    _c("utf8_bom", "header", b"\xef\xbb\xbfid,city\n1,Oslo\n", [["id", "city"], ["1", "Oslo"]]),
    _c("utf8_bom_crlf_header_only", "header", b"\xef\xbb\xbfid,city\r\n", [["id", "city"]]),
    _c("quoted_names", "header", b'"order id","city, country"\n7,"Bergen, NO"\n',
       [["order id", "city, country"], ["7", "Bergen, NO"]]),
    _c("name_with_line_break", "header", b'"first\nline",b\n1,2\n',
       [["first\nline", "b"], ["1", "2"]]),
    _c("repeated_names", "header", b"a,a,b\n1,2,3\n", [["a", "a", "b"], ["1", "2", "3"]],
       names=["a", "a_2", "b"]),
    _c("blank_name", "header", b"a,,c\n1,2,3\n", [["a", "", "c"], ["1", "2", "3"]],
       names=["a", "column_2", "c"]),

    # -- quoting ------------------------------------------------------------------------------
    _c("delimiter_inside_quotes", "quoting", b'id,place\n1,"Trondheim, Norway"\n2,"a,b,,c"\n',
       [["id", "place"], ["1", "Trondheim, Norway"], ["2", "a,b,,c"]]),
    _c("doubled_quotes", "quoting",
       b'id,said\n1,"she said ""yes"" twice"\n2,"""opening"\n3,"closing"""\n',
       [["id", "said"], ["1", 'she said "yes" twice'], ["2", '"opening'], ["3", 'closing"']]),
    _c("a_lone_quote", "quoting", b'id,q\n1,""""\n2,""""""\n',
       [["id", "q"], ["1", '"'], ["2", '""']]),
    _c("every_field_quoted", "quoting", b'"id","v"\r\n"1","plain"\r\n"2","x"\r\n',
       [["id", "v"], ["1", "plain"], ["2", "x"]]),
    _c("json_text", "quoting",
       b'id,payload\n1,"{""k"": [1, 2], ""s"": ""x,y""}"\n2,"[]"\n',
       [["id", "payload"], ["1", '{"k": [1, 2], "s": "x,y"}'], ["2", "[]"]]),
    _c("quoted_spaces", "quoting", b'id,v\n1,"  padded  "\n2," "\n',
       [["id", "v"], ["1", "  padded  "], ["2", " "]]),
    _c("quoted_number", "quoting", b'id,n\n"1","0042"\n"2","7"\n',
       [["id", "n"], ["1", "0042"], ["2", "7"]]),
    _c("single_quote_is_text", "quoting", b"id,v\n1,it's\n2,'quoted'\n",
       [["id", "v"], ["1", "it's"], ["2", "'quoted'"]]),

    # -- line breaks and quotes inside values ------------------------------------------------
    _c("lf_inside", "newlines", b'id,note\n1,"line one\nline two"\n2,after\n',
       [["id", "note"], ["1", "line one\nline two"], ["2", "after"]]),
    _c("crlf_inside", "newlines", b'id,note\r\n1,"line one\r\nline two"\r\n2,after\r\n',
       [["id", "note"], ["1", "line one\r\nline two"], ["2", "after"]]),
    _c("cr_inside_lf_file", "newlines", b'id,note\n1,"left\rright"\n2,x\n',
       [["id", "note"], ["1", "left\rright"], ["2", "x"]]),
    _c("lf_inside_cr_file", "newlines", b'id,note\r1,"left\nright"\r2,x\r',
       [["id", "note"], ["1", "left\nright"], ["2", "x"]]),
    _c("blank_line_inside", "newlines", b'id,note\n1,"para one\n\npara two"\n',
       [["id", "note"], ["1", "para one\n\npara two"]]),
    _c("break_at_edges", "newlines", b'id,note\n1,"\nstarts"\n2,"ends\n"\n3,"\n"\n',
       [["id", "note"], ["1", "\nstarts"], ["2", "ends\n"], ["3", "\n"]]),
    _c("quotes_and_breaks", "newlines", b'id,note\n1,"say ""hi""\nthen ""bye"""\n2,z\n',
       [["id", "note"], ["1", 'say "hi"\nthen "bye"'], ["2", "z"]]),
    _c("two_hundred_lines", "newlines",
       b'id,note\n1,"' + _LONG_NOTE.encode() + b'"\n2,short\n',
       [["id", "note"], ["1", _LONG_NOTE], ["2", "short"]]),
    _c("breaks_in_every_field", "newlines", b'"a\nb","c\nd"\n"1\n2","3\n4"\n',
       [["a\nb", "c\nd"], ["1\n2", "3\n4"]]),

    # -- empty fields -------------------------------------------------------------------------
    _c("empty_middle", "empty", b"a,b,c\n1,,3\n", [["a", "b", "c"], ["1", "", "3"]]),
    _c("empty_last", "empty", b"a,b,c\n1,2,\n", [["a", "b", "c"], ["1", "2", ""]]),
    _c("empty_first", "empty", b"a,b,c\n,2,3\n", [["a", "b", "c"], ["", "2", "3"]]),
    _c("all_empty", "empty", b"a,b,c\n,,\n1,2,3\n", [["a", "b", "c"], ["", "", ""],
                                                    ["1", "2", "3"]]),
    _c("quoted_and_bare_empty", "empty", b'a,b,c\n"",,""\n', [["a", "b", "c"], ["", "", ""]]),
    _c("empty_crlf", "empty", b'a,b,c\r\n1,"",\r\n,,"x"\r\n',
       [["a", "b", "c"], ["1", "", ""], ["", "", "x"]]),
    _c("empty_last_no_break", "empty", b"a,b\n1,", [["a", "b"], ["1", ""]]),

    # -- whitespace ---------------------------------------------------------------------------
    _c("spaces_are_data", "whitespace", b"a,b\n x , y \n  ,z\n",
       [["a", "b"], [" x ", " y "], ["  ", "z"]]),
    _c("tabs_in_values", "whitespace", b"a,b\n\tx,y\t\n", [["a", "b"], ["\tx", "y\t"]]),

    # -- UTF-8 --------------------------------------------------------------------------------
    _c("two_and_three_bytes", "utf8", "by,navn\nÆrøskøbing,Łódź\n東京,Zürich\n".encode(),
       [["by", "navn"], ["Ærøskøbing", "Łódź"], ["東京", "Zürich"]]),
    _c("four_bytes", "utf8", "id,emoji\n1,🦀 crab\n2,𝄞 clef\n".encode(),
       [["id", "emoji"], ["1", "🦀 crab"], ["2", "𝄞 clef"]]),
    _c("combining_and_rtl", "utf8", "id,text\n1,e\u0301te\u0301\n2,שלום עולם\n".encode(),
       [["id", "text"], ["1", "e\u0301te\u0301"], ["2", "שלום עולם"]]),
    _c("utf8_names", "utf8", "größe,prix €\n1,2\n".encode(), [["größe", "prix €"], ["1", "2"]]),
    _c("utf8_quoted_with_break", "utf8", 'id,v\n1,"Ålesund,\nNorge"\n'.encode(),
       [["id", "v"], ["1", "Ålesund,\nNorge"]]),
    _c("nbsp_and_zero_width", "utf8", "id,v\n1,a\u00a0b\u200bc\n".encode(),
       [["id", "v"], ["1", "a\u00a0b\u200bc"]]),

    # -- delimiters ---------------------------------------------------------------------------
    _c("tab", "delimiters", b"a\tb\n1\tx, y\n", [["a", "b"], ["1", "x, y"]],
       options={"delimiter": "\t"}),
    _c("semicolon_decimal_comma", "delimiters", b'a;b\n1;"2,5"\n2;3,75\n',
       [["a", "b"], ["1", "2,5"], ["2", "3,75"]], options={"delimiter": ";"}),
    _c("pipe", "delimiters", b'a|b\n1|"x|y"\n', [["a", "b"], ["1", "x|y"]],
       options={"delimiter": "|"}),

    # -- numbers (inferred types must equal them as numbers) -------------------------------
    _c("integers", "numbers", b"n,m\n1,-2\n0,-0\n42,7\n", [["n", "m"], ["1", "-2"], ["0", "-0"],
                                                         ["42", "7"]]),
    _c("signed_plus", "numbers", b"n\n+3\n4\n", [["n"], ["+3"], ["4"]]),
    _c("floats", "numbers", b"x\n1.5\n-0.25\n1e3\n.5\n5.\n2E-2\n",
       [["x"], ["1.5"], ["-0.25"], ["1e3"], [".5"], ["5."], ["2E-2"]]),
    _c("leading_zeros", "numbers", b"zip,n\n08123,1\n00501,2\n", [["zip", "n"], ["08123", "1"],
                                                                 ["00501", "2"]]),
    _c("leading_zero_among_numbers", "numbers", b"code\n12\n7\n0042\n",
       [["code"], ["12"], ["7"], ["0042"]]),
    _c("zero_padded_decimal", "numbers", b"v\n01.50\n2.25\n", [["v"], ["01.50"], ["2.25"]]),
    _c("zeros_that_are_numbers", "numbers", b"v\n0\n0.5\n-0\n0e3\n",
       [["v"], ["0"], ["0.5"], ["-0"], ["0e3"]]),
    _c("null_markers_as_text", "numbers", b"a,b\nNA,1\nNULL,2\n,3\n",
       [["a", "b"], ["NA", "1"], ["NULL", "2"], ["", "3"]]),
    _c("numbers_with_nulls", "numbers", b"a,b\n1,\n,2.5\nNA,3\n",
       [["a", "b"], ["1", ""], ["", "2.5"], ["NA", "3"]]),
    _c("booleans", "numbers", b"flag\ntrue\nfalse\nTRUE\n", [["flag"], ["true"], ["false"],
                                                            ["TRUE"]]),

    # -- records with the wrong number of fields: rejects, their neighbours kept ---------------
    _c("too_many_fields", "ragged", b"a,b\n1,2\n3,4,5\n6,7\n", [["a", "b"], ["1", "2"], ["6", "7"]],
       outcome="reject", rejects=(2,), rfc=False),
    _c("too_few_fields", "ragged", b"a,b\n1\n2,3\n", [["a", "b"], ["2", "3"]],
       outcome="reject", rejects=(1,), rfc=False),
    _c("ragged_crlf", "ragged", b"a,b\r\n1,2\r\n3\r\n4,5,6\r\n7,8\r\n",
       [["a", "b"], ["1", "2"], ["7", "8"]], outcome="reject", rejects=(2, 3), rfc=False),
    _c("ragged_after_quoted_break", "ragged", b'a,b\n1,"x\ny"\n2,"z",9\n3,w\n',
       [["a", "b"], ["1", "x\ny"], ["3", "w"]], outcome="reject", rejects=(2,), rfc=False),
    _c("ragged_cr_only", "ragged", b"a,b\r1,2\r3\r4,5\r", [["a", "b"], ["1", "2"], ["4", "5"]],
       outcome="reject", rejects=(2,), rfc=False),

    # -- inputs that are not CSV: a typed error, nothing written -------------------------------
    _c("empty_file", "errors", b"", outcome="error", error="InputFormatError"),
    _c("unterminated_quote", "errors", b'a,b\n1,"open\n2,3\n', outcome="error",
       error="InputFormatError"),
    _c("unterminated_quote_in_header", "errors", b'"a,b\n1,2\n', outcome="error",
       error="InputFormatError"),
    _c("invalid_utf8", "errors", b"a,b\n1,caf\xe9\n", outcome="error", error="InputFormatError"),
    _c("nul_in_header", "errors", b"a,\x00b\n1,2\n", outcome="error", error="InputFormatError"),
    _c("blank_header", "errors", b"\n1,2\n", outcome="error", error="SchemaError"),

    # -- outside RFC 4180: never a crash; pinned where chunkwise documents its answer ----------
    _c("blank_lines_are_skipped", "defined", b"a,b\n1,2\n\n3,4\n\n", [["a", "b"], ["1", "2"],
                                                                      ["3", "4"]],
       outcome="defined", rfc=False),
    _c("blank_line_one_column", "defined", b"a\n1\n\n3\n", [["a"], ["1"], ["3"]],
       outcome="defined", rfc=False),
    _c("only_line_breaks", "defined", b"\n\n\n", outcome="defined"),
    _c("quote_inside_bare_field", "defined", b'a,b\n12" pizza,3\n4,5\n', outcome="defined"),
    _c("text_after_closing_quote", "defined", b'a,b\n"x"y,1\n2,3\n', outcome="defined"),
    _c("space_before_opening_quote", "defined", b'a,b\n1, "x"\n2,3\n', outcome="defined"),
    _c("backslash_escape", "defined", b'a,b\n"x\\"y",1\n2,3\n', outcome="defined"),
    _c("cr_header_then_lf", "defined", b"a,b\r1,2\n3,4\n", outcome="defined"),
    _c("nul_in_a_value", "defined", b"a,b\n1,x\x00y\n", outcome="defined"),
    _c("form_feed_and_vertical_tab", "defined", b"a,b\n1,x\x0cy\x0bz\n", outcome="defined"),
]

assert len({c.id for c in CASES}) == len(CASES), "case names repeat"
