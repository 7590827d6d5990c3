"""engine.runtime.process.loading: no cyclic collection while an entry point loads modules."""

from __future__ import annotations

import gc
import importlib
from collections.abc import Iterator

import pytest

from engine.runtime import process


@pytest.fixture
def thawed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A process that has not loaded yet; its objects collectable again afterwards."""
    monkeypatch.setattr(process, "_loaded", False)
    yield
    gc.unfreeze()
    gc.enable()


def test_collector_off_while_loading_then_on_with_what_loaded_frozen(thawed: None) -> None:
    gc.enable()
    gc.unfreeze()
    with process.loading():
        assert not gc.isenabled()
        kept = [[] for _ in range(1000)]  # long-lived, as a module's objects are
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(kept)
    assert gc.get_count()[0] < 700  # nothing left for the next collection to walk


def test_collector_on_again_after_a_failed_import(thawed: None) -> None:
    gc.enable()
    with pytest.raises(ModuleNotFoundError), process.loading():
        importlib.import_module("engine.no_such_module")  # an import that fails mid-load
    assert gc.isenabled()


def test_collector_the_caller_turned_off_stays_off(thawed: None) -> None:
    gc.disable()
    gc.unfreeze()
    with process.loading():
        pass
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_only_the_first_load_freezes(thawed: None) -> None:
    gc.enable()
    gc.unfreeze()
    with process.loading():
        pass
    frozen = gc.get_freeze_count()
    garbage = [[] for _ in range(1000)]
    with process.loading():  # the CLI run again in the same process: nothing new loads
        assert gc.isenabled()
    # what was made since stays collectable: a second freeze would add the 1,001 objects above
    # (the count may fall meanwhile: a frozen object that dies leaves it, as in the full suite)
    assert gc.get_freeze_count() <= frozen
    del garbage
