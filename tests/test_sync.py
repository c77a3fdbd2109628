"""The sync/async bridges, on both backends."""

from __future__ import annotations

import threading

import anyio.to_thread
import pytest

from achannels.layers import InMemoryChannelLayer
from achannels.sync import async_to_sync, sync_to_async

pytestmark = pytest.mark.anyio


async def test_async_to_sync_runs_a_layer_call_from_a_worker_thread() -> None:
    layer = InMemoryChannelLayer()

    def sync_code() -> str:
        async_to_sync(layer.send)("jobs", {"type": "job", "n": 1})
        return threading.current_thread().name

    thread = await anyio.to_thread.run_sync(sync_code)
    assert thread != threading.current_thread().name
    assert (await layer.receive("jobs"))["n"] == 1


async def test_async_to_sync_refuses_the_event_loop_thread() -> None:
    async def noop() -> None: ...

    with pytest.raises(RuntimeError):
        async_to_sync(noop)()


async def test_sync_to_async_runs_in_a_thread() -> None:
    def where(prefix: str, *, suffix: str) -> str:
        return prefix + threading.current_thread().name + suffix

    name = await sync_to_async(where)("<", suffix=">")
    assert name.startswith("<")
    assert name.endswith(">")
    assert name != f"<{threading.current_thread().name}>"
