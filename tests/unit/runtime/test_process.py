"""engine.runtime.process.loading: no cyclic collection while an entry point loads modules."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from engine.runtime import process


@pytest.fixture
def thawed() -> Iterator[None]:
    """Leave the test process's objects collectable again afterwards."""
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
        import engine.no_such_module  # noqa: F401
    assert gc.isenabled()


def test_collector_the_caller_turned_off_stays_off(thawed: None) -> None:
    gc.disable()
    gc.unfreeze()
    with process.loading():
        pass
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0
