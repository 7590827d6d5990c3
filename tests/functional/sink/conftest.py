"""Fixtures shared by the S3 sink tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the spool goes (``tempfile.gettempdir()``, Lambda's ``/tmp``), watched by the test."""
    directory = tmp_path / "ephemeral"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory
