"""--apply: a round trip of template.yaml and samconfig.toml that changes one value only."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from engine.errors import ContractError
from engine.sizing.apply import apply_memory, read_memory

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def copies(tmp_path: Path) -> tuple[Path, Path]:
    template, samconfig = tmp_path / "template.yaml", tmp_path / "samconfig.toml"
    shutil.copy(ROOT / "template.yaml", template)
    shutil.copy(ROOT / "samconfig.toml", samconfig)
    return template, samconfig


def _changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(),
                                                  lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_apply_changes_only_the_memory_and_keeps_comments_and_order(copies) -> None:
    template, samconfig = copies
    t0, s0 = template.read_text(), samconfig.read_text()
    current = read_memory(template, samconfig)["template"]
    new = 640 if current != 640 else 704
    applied = apply_memory(new, template, samconfig)
    assert all(a.after == new for a in applied) and len(applied) == 1 + s0.count(
        "parameter_overrides")
    t_diff = _changed_lines(t0, template.read_text())
    assert t_diff == [f"-    Default: {current}", f"+    Default: {new}"]
    s_diff = _changed_lines(s0, samconfig.read_text())
    assert len(s_diff) == 2 * s0.count("parameter_overrides")
    assert all(f"TransformMemorySize={new if line[0] == '+' else current}" in line
               for line in s_diff)
    assert set(read_memory(template, samconfig).values()) == {new}


def test_apply_is_idempotent(copies) -> None:
    template, samconfig = copies
    apply_memory(512, template, samconfig)
    t1, s1 = template.read_bytes(), samconfig.read_bytes()
    again = apply_memory(512, template, samconfig)
    assert not any(a.changed for a in again)
    assert (template.read_bytes(), samconfig.read_bytes()) == (t1, s1)


def test_apply_refuses_a_value_outside_the_parameter_range(copies) -> None:
    template, samconfig = copies
    before = template.read_text()
    with pytest.raises(ContractError, match="outside"):
        apply_memory(64, template, samconfig)
    assert template.read_text() == before


def test_a_missing_override_is_added(tmp_path: Path, copies) -> None:
    template, _ = copies
    samconfig = tmp_path / "sc.toml"
    samconfig.write_text('version = 0.1\n# keep me\n[dev.deploy.parameters]\n'
                         'parameter_overrides = "Environment=dev"\n')
    apply_memory(768, template, samconfig)
    text = samconfig.read_text()
    assert "# keep me" in text
    assert 'parameter_overrides = "Environment=dev TransformMemorySize=768"' in text
