"""A contract is data: nothing in it imports or runs code, except an explicit ``python`` step.

YAML is read with a safe loader (no ``!!python/...`` tags), expressions call registered
``pyarrow.compute`` functions only, an options class comes from the function (never from the
contract), type names are parsed (never looked up as attributes), and every string of a contract
without a ``python`` step can name a module without that module being imported. The ``python``
step imports its module, by design: that is the trusted code docs/contracts.md describes.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from engine import transform
from engine.contract import load_contract
from engine.errors import ContractError

SENTINEL = "chunkwise_sentinel_module"


@pytest.fixture
def sentinel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable module that leaves a file behind when it is imported."""
    marker = tmp_path / "imported"
    (tmp_path / f"{SENTINEL}.py").write_text(textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("imported")

        def touch(batch):
            return batch
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, SENTINEL, raising=False)
    return marker


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("tag", [
    f"!!python/object/apply:{SENTINEL}.touch [1]",
    f"!!python/name:{SENTINEL}.touch",
    f"!!python/module:{SENTINEL}",
    "!!python/object/apply:os.system ['true']",
])
def test_yaml_python_tags_are_refused_before_anything_runs(tmp_path: Path, sentinel: Path,
                                                           tag: str):
    path = write(tmp_path, f"""
        dataset: d
        columns:
          a: {{type: int64, default: {tag}}}
    """)
    with pytest.raises(ContractError):
        load_contract(path)
    assert not sentinel.exists()


@pytest.mark.parametrize("call", ["os.system", "__import__", "eval", f"{SENTINEL}.touch",
                                  "exec", "builtins.open"])
def test_expressions_call_pyarrow_compute_functions_only(tmp_path: Path, sentinel: Path,
                                                         call: str):
    path = write(tmp_path, f"""
        dataset: d
        columns:
          a: {{type: string}}
        transforms:
          - derive: {{name: b, expr: {{call: "{call}", args: [{{field: a}}]}}}}
    """)
    with pytest.raises(ContractError, match="unknown pyarrow.compute function"):
        load_contract(path)
    assert not sentinel.exists()


def test_an_options_class_cannot_be_named_by_the_contract(tmp_path: Path):
    path = write(tmp_path, """
        dataset: d
        columns:
          a: {type: string}
        transforms:
          - derive: {name: b, expr: {call: utf8_upper, args: [{field: a}],
                                     options: {options_class: os.system}}}
    """)
    with pytest.raises(ContractError, match="takes no options"):
        load_contract(path)


@pytest.mark.parametrize("type_name", [f"{SENTINEL}.touch", "os.system", "__import__('os')"])
def test_type_names_are_parsed_not_looked_up(tmp_path: Path, sentinel: Path, type_name: str):
    path = write(tmp_path, f"""
        dataset: d
        columns:
          a: {{type: "{type_name}"}}
    """)
    with pytest.raises(ContractError, match="unknown type"):
        load_contract(path)
    assert not sentinel.exists()


def test_module_names_anywhere_but_a_python_step_import_nothing(tmp_path: Path,
                                                               sentinel: Path):
    """Every string a contract holds (names, regexes, literals, paths) is data."""
    (tmp_path / "in.csv").write_text(f"{SENTINEL},b\nx,1\ny,2\n")
    path = write(tmp_path, f"""
        dataset: {SENTINEL}
        match: "{SENTINEL}/*"
        columns:
          {SENTINEL}: {{type: string, regex: "^{SENTINEL}|[xy]$", in: [x, y, {SENTINEL}]}}
          b: {{type: int64}}
        rejects: {{path: "{SENTINEL}/"}}
        transforms:
          - rename: {{b: {SENTINEL}_b}}
          - derive: {{name: c, expr: {{call: binary_join_element_wise,
                      args: [{{field: {SENTINEL}}}, {{literal: "{SENTINEL}"}}, {{literal: ":"}}]}}}}
          - filter: {{call: not_equal, args: [{{field: c}}, {{literal: "{SENTINEL}:"}}]}}
        aggregate: {{path: "{SENTINEL}.parquet", by: [{SENTINEL}],
                     metrics: {{n: {{count: {SENTINEL}_b}}}}}}
    """)
    report = transform(str(tmp_path / "in.csv"), str(tmp_path / "out/"), contract=str(path))
    assert report.rows_out == 2
    assert SENTINEL not in sys.modules and not sentinel.exists()


def test_a_python_step_is_the_one_way_to_run_code_and_only_when_the_run_starts(
        tmp_path: Path, sentinel: Path):
    (tmp_path / "in.csv").write_text("a\n1\n2\n")
    path = write(tmp_path, f"""
        dataset: d
        columns:
          a: {{type: int64}}
        transforms:
          - python: {{function: "{SENTINEL}:touch"}}
    """)
    load_contract(path)
    assert not sentinel.exists()  # loading (and validating) a contract runs nothing
    report = transform(str(tmp_path / "in.csv"), str(tmp_path / "out.parquet"),
                       contract=str(path))
    assert report.rows_out == 2
    assert sentinel.exists()  # the explicit python step imported its module: trusted code
