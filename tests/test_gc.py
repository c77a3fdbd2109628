"""``tune_gc()``: the collector's thresholds for a server with many long-lived connections."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from achannels import Router, tune_gc
from achannels._gc import PYTHON_DEFAULT_THRESHOLDS, TUNED_THRESHOLDS
from achannels.testing import ApplicationCommunicator


@pytest.fixture(autouse=True)
def python_defaults(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start each test at CPython's thresholds; put back what the process had."""
    saved = gc.get_threshold()
    monkeypatch.delenv("ACHANNELS_GC_THRESHOLD", raising=False)
    gc.set_threshold(*PYTHON_DEFAULT_THRESHOLDS)
    yield
    gc.set_threshold(*saved)


def test_raises_the_default_thresholds() -> None:
    assert tune_gc() == TUNED_THRESHOLDS
    assert gc.get_threshold() == TUNED_THRESHOLDS
    assert tune_gc() == TUNED_THRESHOLDS  # idempotent


def test_leaves_thresholds_the_process_chose() -> None:
    gc.set_threshold(1234, 5, 6)
    assert tune_gc() == (1234, 5, 6)
    assert gc.get_threshold() == (1234, 5, 6)


def test_the_environment_turns_it_off_or_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACHANNELS_GC_THRESHOLD", "off")
    assert tune_gc() == PYTHON_DEFAULT_THRESHOLDS
    monkeypatch.setenv("ACHANNELS_GC_THRESHOLD", "20000, 15, 30")
    assert tune_gc() == (20000, 15, 30)
    assert gc.get_threshold() == (20000, 15, 30)


def test_a_malformed_environment_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACHANNELS_GC_THRESHOLD", "lots")
    with pytest.raises(ValueError, match="ACHANNELS_GC_THRESHOLD must be 'off' or three"):
        tune_gc()
    assert gc.get_threshold() == PYTHON_DEFAULT_THRESHOLDS


@pytest.mark.anyio
@pytest.mark.parametrize("app", ["router", "protocol_type_router"])
async def test_lifespan_startup_tunes_the_collector(app: str) -> None:
    if app == "router":
        served: object = Router()
    else:
        pytest.importorskip("django")
        from achannels.routing import ProtocolTypeRouter

        served = ProtocolTypeRouter({})
    communicator = ApplicationCommunicator(served, {"type": "lifespan"})  # type: ignore[arg-type]
    await communicator.send_input({"type": "lifespan.startup"})
    assert (await communicator.receive_output())["type"] == "lifespan.startup.complete"
    assert gc.get_threshold() == TUNED_THRESHOLDS
    await communicator.send_input({"type": "lifespan.shutdown"})
    assert (await communicator.receive_output())["type"] == "lifespan.shutdown.complete"
    await communicator.wait()
