"""Background workers fed by named layer channels."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from achannels import Router
from achannels.exceptions import InvalidChannelLayerError
from achannels.layers import InMemoryChannelLayer

from .helpers import RawConnection, wait_until

pytestmark = pytest.mark.anyio


async def test_worker_handles_messages_in_order_and_survives_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = InMemoryChannelLayer()
    router = Router(layer=layer)
    done: list[int] = []

    @router.channel("thumbnails")
    async def make_thumbnail(message: dict[str, Any]) -> None:
        if message["n"] == 2:
            raise OSError("disk full")
        done.append(message["n"])

    async with anyio.create_task_group() as tg:
        await tg.start(router.serve_workers)
        for n in range(5):
            await layer.send("thumbnails", {"type": "thumbnail.make", "n": n})
        await wait_until(lambda: router.statistics().worker_messages == 5)
        tg.cancel_scope.cancel()
    assert done == [0, 1, 3, 4]
    assert router.statistics().errors == 1
    assert "disk full" in caplog.text
    assert router.statistics().tasks_live == 0


async def test_concurrent_worker_handles_several_at_once() -> None:
    layer = InMemoryChannelLayer()
    router = Router(layer=layer)
    running = 0
    peak = 0
    release = anyio.Event()

    @router.channel("jobs", concurrency=3)
    async def job(message: dict[str, Any]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    async with anyio.create_task_group() as tg:
        await tg.start(router.serve_workers)
        for n in range(5):
            await layer.send("jobs", {"type": "job", "n": n})
        await wait_until(lambda: running == 3)
        await anyio.wait_all_tasks_blocked()
        assert peak == 3, "never more than the concurrency limit"
        release.set()
        await wait_until(lambda: router.statistics().worker_messages == 5)
        tg.cancel_scope.cancel()
    assert router.statistics().tasks_live == 0


async def test_workers_run_between_lifespan_startup_and_shutdown() -> None:
    layer = InMemoryChannelLayer()
    router = Router(layer=layer)
    seen: list[str] = []

    @router.channel("emails")
    async def send_email(message: dict[str, Any]) -> None:
        seen.append(message["to"])

    conn = RawConnection({"type": "lifespan", "asgi": {"version": "3.0"}})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, router)
        conn.send_input({"type": "lifespan.startup"})
        assert (await conn.output())["type"] == "lifespan.startup.complete"
        await layer.send("emails", {"type": "email", "to": "ann@example.com"})
        await wait_until(lambda: seen == ["ann@example.com"])
        conn.send_input({"type": "lifespan.shutdown"})
        assert (await conn.output())["type"] == "lifespan.shutdown.complete"
    assert router.statistics().tasks_live == 0
    conn.close()


async def test_worker_configuration_errors() -> None:
    router = Router()

    @router.channel("a")
    async def a(message: dict[str, Any]) -> None: ...

    with pytest.raises(InvalidChannelLayerError, match="workers need a channel layer"):
        await router.serve_workers()
    with pytest.raises(ValueError, match="already registered"):
        router.channel("a")
    with pytest.raises(ValueError, match="at least 1"):
        router.channel("b", concurrency=0)
    layered = Router(layer=InMemoryChannelLayer())
    with pytest.raises(ValueError, match=r"no worker for channel\(s\) \['nope'\]"):
        await layered.serve_workers(["nope"])


async def test_run_workers_is_a_deprecated_name_of_serve_workers() -> None:
    router = Router(layer=InMemoryChannelLayer())

    @router.channel("a")
    async def a(message: dict[str, Any]) -> None: ...

    with (
        pytest.warns(DeprecationWarning, match="serve_workers"),
        pytest.raises(ValueError, match="no worker"),
    ):
        await router.run_workers(["nope"])


async def test_lifespan_startup_fails_when_workers_have_no_layer() -> None:
    router = Router()

    @router.channel("jobs")
    async def job(message: dict[str, Any]) -> None: ...

    conn = RawConnection({"type": "lifespan", "asgi": {"version": "3.0"}})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, router)
        conn.send_input({"type": "lifespan.startup"})
        failed = await conn.output()
    assert failed["type"] == "lifespan.startup.failed"
    assert "need a layer" in failed["message"]
    conn.close()


def test_worker_channel_names_are_checked() -> None:
    with pytest.raises(TypeError):
        Router().channel("not a valid name!")
