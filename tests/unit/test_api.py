"""The public API keeps its promises: names stay what they are, and keywords are explicit."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine.config import ReadOptions, RunOptions, WriteOptions

CONTRACT = """dataset: t
format: csv
columns:
  a: {type: int64}
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,x\n2,y\n", encoding="utf-8")
    contract = tmp_path / "t.yaml"
    contract.write_text(CONTRACT, encoding="utf-8")
    return src, contract


def test_validate_is_the_function_after_a_contract_run(files: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    src, contract = files
    # A contract run imports the module that implements validation; engine.validate must
    # still be the function (a submodule of the same name would replace it on the package).
    engine.transform(src, tmp_path / "out.parquet", contract=contract)
    assert callable(engine.validate)
    assert engine.validate(src, contract=contract).status == "succeeded"


def test_the_api_names_are_functions_in_a_fresh_process(files: tuple[Path, Path]) -> None:
    src, contract = files
    code = ("import sys, engine\n"
            "import engine.enforce.validate, engine.enforce.transforms, engine.run\n"
            "print(engine.validate(sys.argv[1], contract=sys.argv[2]).status)\n"
            "print([callable(getattr(engine, n)) for n in ('transform', 'validate', "
            "'read_batches', 'load_contract', 'infer_contract')])")
    done = subprocess.run([sys.executable, "-c", code, str(src), str(contract)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split("\n")[:2] == ["succeeded", "[True, True, True, True, True]"]


@pytest.mark.parametrize("function", [engine.transform, engine.validate, engine.read_batches])
def test_keywords_are_explicit_and_typed(function: object) -> None:
    params = inspect.signature(function).parameters.values()  # type: ignore[arg-type]
    assert not [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
    assert all(p.annotation is not inspect.Parameter.empty for p in params)
    # Each keyword is described in the function's docstring, or in the one it refers to.
    doc = inspect.getdoc(function) or ""
    for name in re.findall(r":func:`(\w+)`", doc):
        doc += inspect.getdoc(getattr(engine, name)) or ""
    missing = [p.name for p in params
               if p.kind is inspect.Parameter.KEYWORD_ONLY and f"{p.name}:" not in doc
               and f"``{p.name}``" not in doc]
    assert not missing, function


def test_transform_takes_every_option_field_by_name() -> None:
    options = {f for cls in (ReadOptions, WriteOptions, RunOptions)
               for f in cls.__dataclass_fields__} - {"read", "write"}
    assert options <= set(inspect.signature(engine.transform).parameters)


def test_an_unknown_keyword_is_a_type_error(files: tuple[Path, Path], tmp_path: Path) -> None:
    src, _ = files
    with pytest.raises(TypeError, match="blocksize"):
        engine.transform(src, tmp_path / "out.parquet", blocksize=1)  # type: ignore[call-arg]


def test_keywords_override_the_options_object(files: tuple[Path, Path], tmp_path: Path) -> None:
    src, _ = files
    options = RunOptions(write=WriteOptions(compression="snappy"))
    report = engine.transform(src, tmp_path / "a.parquet", options=options)
    assert report.compression == "snappy"
    report = engine.transform(src, tmp_path / "b.parquet", options=options, compression="gzip")
    assert report.compression == "gzip"
