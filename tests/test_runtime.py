"""The per-connection runtime, driven as a server drives it: errors, tasks, cleanup."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from achannels import Router, WebSocket, WebSocketStateError

from .helpers import RawConnection, http_scope, wait_until, ws_scope

pytestmark = pytest.mark.anyio


async def open_ws(router: Router, tg: anyio.abc.TaskGroup, path: str = "/ws/") -> RawConnection:
    """Start a WebSocket connection to ``router`` and send the connect message."""
    conn = RawConnection(ws_scope(path))
    conn.send_input({"type": "websocket.connect"})
    tg.start_soon(conn.run, router)
    return conn


async def test_consumer_exception_closes_with_1011_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = Router()

    @router.websocket("/ws/")
    async def consumer(ws: WebSocket) -> None:
        await ws.accept()
        raise LookupError("boom")

    async with anyio.create_task_group() as tg:
        conn = await open_ws(router, tg)
        assert (await conn.output())["type"] == "websocket.accept"
        close = await conn.output()
    assert (close["type"], close["code"]) == ("websocket.close", 1011)
    assert router.statistics().errors == 1
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], LookupError)
    conn.close()


async def test_exception_before_accept_answers_500() -> None:
    router = Router()

    @router.websocket("/ws/")
    async def consumer(ws: WebSocket) -> None:
        raise LookupError("boom")

    async with anyio.create_task_group() as tg:
        conn = await open_ws(router, tg)
        start = await conn.output()
        body = await conn.output()
    assert (start["type"], start["status"]) == ("websocket.http.response.start", 500)
    assert body["type"] == "websocket.http.response.body"
    conn.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"text": "{not json"}, 1007),
        ({"bytes": b"{}"}, 1003),
        ({"text": "[" + "1," * 600 + "1]"}, 1009),
    ],
    ids=["malformed-json", "binary-frame", "oversized"],
)
async def test_bad_client_frames_get_their_close_code(frame: dict[str, Any], code: int) -> None:
    router = Router(max_message_size=1000)
    seen: list[Any] = []

    @router.websocket("/ws/")
    async def consumer(ws: WebSocket) -> None:
        await ws.accept()
        async for data in ws.iter_json():
            seen.append(data)

    async with anyio.create_task_group() as tg:
        conn = await open_ws(router, tg)
        await conn.output()
        conn.send_input({"type": "websocket.receive", **frame})
        close = await conn.output()
    assert (close["type"], close["code"]) == ("websocket.close", code)
    assert seen == []
    assert router.statistics().errors == 0, "client errors are not server errors"
    conn.close()


async def test_client_disconnect_cancels_a_busy_consumer_and_its_tasks() -> None:
    router = Router(disconnect_check=0.01)
    cancelled: list[str] = []

    async def background() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.append("task")

    @router.websocket("/ws/")
    async def consumer(ws: WebSocket) -> None:
        await ws.accept()
        ws.start_soon(background)
        try:
            await anyio.sleep(3600)  # busy: never calls receive()
        finally:
            cancelled.append("consumer")

    async with anyio.create_task_group() as tg:
        conn = await open_ws(router, tg)
        await conn.output()
        conn.send_input({"type": "websocket.disconnect", "code": 1001})
        with anyio.fail_after(5):
            await conn.finished.wait()
    assert sorted(cancelled) == ["consumer", "task"]
    assert router.statistics().tasks_live == 0
    conn.close()


async def test_a_failing_background_task_fails_the_connection() -> None:
    router = Router()

    async def background() -> None:
        raise KeyError("in the background")

    @router.websocket("/ws/")
    async def consumer(ws: WebSocket) -> None:
        await ws.accept()
        ws.start_soon(background)
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        conn = await open_ws(router, tg)
        await conn.output()
        close = await conn.output()
    assert close["code"] == 1011
    assert router.statistics().errors == 1
    conn.close()


async def test_returning_consumer_closes_1000_and_cancels_its_tasks() -> None:
    router = Router()
    started = anyio.Event()
    cancelled = anyio.Event()

    async def background() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    @router.websocket("/ws/")
    async def consumer(ws: WebSocket) -> None:
        await ws.accept()
        ws.start_soon(background)
        await started.wait()

    async with anyio.create_task_group() as tg:
        conn = await open_ws(router, tg)
        await conn.output()
        close = await conn.output()
    assert close == {"type": "websocket.close", "code": 1000, "reason": ""}
    assert cancelled.is_set()
    conn.close()


@pytest.mark.parametrize("ending", ["return", "raise", "client leaves"])
async def test_when_the_consumers_tasks_are_cancelled_against_its_cleanup(ending: str) -> None:
    # As delivery.md says: a consumer that fails or is cancelled takes its tasks with
    # it, so they unwind while the cleanups run (a cleanup can wait for them); one
    # that returns has them cancelled after the close frame.
    router = Router(disconnect_check=0.01)
    events: list[str] = []
    started = anyio.Event()
    task_ended = anyio.Event()

    async def background() -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            events.append("task cancelled")
            task_ended.set()

    @router.websocket("/ws/")
    async def consumer(ws: WebSocket) -> None:
        async def cleanup() -> None:
            if ending != "return":
                with anyio.move_on_after(2):  # would time out if the task ran on
                    await task_ended.wait()
            events.append("cleanup")

        await ws.accept()
        ws.add_cleanup(cleanup)
        ws.start_soon(background)
        await started.wait()
        if ending == "raise":
            raise RuntimeError("the consumer fails")
        if ending == "client leaves":
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        conn = await open_ws(router, tg)
        await conn.output()
        if ending == "client leaves":
            await started.wait()
            conn.send_input({"type": "websocket.disconnect", "code": 1001})
        with anyio.fail_after(5):
            await conn.finished.wait()
    if ending == "return":
        assert events == ["cleanup", "task cancelled"]
    else:
        assert events == ["task cancelled", "cleanup"]
    conn.close()


async def test_server_cancelling_the_app_still_runs_cleanup() -> None:
    router = Router()
    cleaned = anyio.Event()

    @router.websocket("/ws/")
    async def consumer(ws: WebSocket) -> None:
        await ws.accept()

        async def cleanup() -> None:
            await anyio.lowlevel.checkpoint()  # cleanup may await: it is shielded
            cleaned.set()

        ws.add_cleanup(cleanup)
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        conn = await open_ws(router, tg)
        await conn.output()
        tg.cancel_scope.cancel()
    assert cleaned.is_set()
    assert router.statistics().connections_live == 0
    conn.close()


async def test_send_before_accept_and_after_close_are_clear_errors() -> None:
    router = Router()
    errors: list[BaseException] = []

    @router.websocket("/ws/")
    async def consumer(ws: WebSocket) -> None:
        with pytest.raises(WebSocketStateError, match="before the WebSocket is accepted"):
            await ws.send_text("too early")
        await ws.accept()
        await ws.close(4000, "done")
        try:
            await ws.send_text("too late")
        except anyio.ClosedResourceError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        conn = await open_ws(router, tg)
        assert (await conn.output())["type"] == "websocket.accept"
        assert (await conn.output())["code"] == 4000
    assert len(errors) == 1
    conn.close()


async def test_unknown_route_is_denied_with_404() -> None:
    router = Router()
    async with anyio.create_task_group() as tg:
        conn = await open_ws(router, tg, "/nowhere/")
        start = await conn.output()
    assert (start["type"], start["status"]) == ("websocket.http.response.start", 404)
    conn.close()


async def test_unknown_route_without_the_denial_extension_is_closed() -> None:
    router = Router()
    conn = RawConnection(ws_scope("/nowhere/", extensions={}))
    conn.send_input({"type": "websocket.connect"})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, router)
        message = await conn.output()
    assert message["type"] == "websocket.close"
    conn.close()


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ({"type": "telnet"}, "cannot serve ASGI scope type 'telnet'"),
        ({"type": "websocket"}, "malformed ASGI scope: 'path'"),
        ({**http_scope(), "path": b"/bytes"}, "malformed ASGI scope: 'path'"),
    ],
)
async def test_malformed_scope_is_a_clear_error(scope: dict[str, Any], message: str) -> None:
    router = Router()

    async def never() -> dict[str, Any]:
        raise AssertionError("not reached")

    async def ignore(message: Any) -> None:
        raise AssertionError("not reached")

    with pytest.raises(ValueError, match=message):
        await router(scope, never, ignore)


async def test_first_message_must_be_connect() -> None:
    router = Router()

    @router.websocket("/ws/")
    async def consumer(ws: WebSocket) -> None:
        await ws.accept()

    conn = RawConnection(ws_scope())
    conn.send_input({"type": "websocket.receive", "text": "hi"})
    with pytest.raises(ValueError, match=r"expected websocket\.connect"):
        await conn.run(router)
    conn.close()


async def test_shutdown_closes_with_1001_and_cancels_after_grace() -> None:
    router = Router(shutdown_grace=0.05)
    stubborn_cancelled = anyio.Event()

    @router.websocket("/ws/polite/")
    async def polite(ws: WebSocket) -> None:
        await ws.accept()
        async for _ in ws:
            pass

    @router.websocket("/ws/stubborn/")
    async def stubborn(ws: WebSocket) -> None:
        await ws.accept()
        try:
            await anyio.sleep_forever()
        finally:
            stubborn_cancelled.set()

    async with anyio.create_task_group() as tg:
        polite_conn = await open_ws(router, tg, "/ws/polite/")
        stubborn_conn = await open_ws(router, tg, "/ws/stubborn/")
        await polite_conn.output()
        await stubborn_conn.output()
        tg.start_soon(router.aclose_connections)
        assert (await polite_conn.output())["code"] == 1001
        polite_conn.send_input({"type": "websocket.disconnect", "code": 1001})
        assert (await stubborn_conn.output())["code"] == 1001
    assert stubborn_cancelled.is_set()
    assert router.statistics().connections_live == 0
    polite_conn.close()
    stubborn_conn.close()


async def test_lifespan_runs_hooks_and_closes_connections() -> None:
    router = Router()
    calls: list[str] = []

    @router.on_startup
    async def start() -> None:
        calls.append("startup")

    @router.on_shutdown
    async def stop() -> None:
        calls.append("shutdown")

    conn = RawConnection({"type": "lifespan", "asgi": {"version": "3.0"}})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, router)
        conn.send_input({"type": "lifespan.startup"})
        assert (await conn.output())["type"] == "lifespan.startup.complete"
        conn.send_input({"type": "lifespan.shutdown"})
        assert (await conn.output())["type"] == "lifespan.shutdown.complete"
    assert calls == ["startup", "shutdown"]
    conn.close()


async def test_failing_startup_hook_reports_startup_failed() -> None:
    router = Router()

    @router.on_startup
    async def start() -> None:
        raise OSError("no database")

    conn = RawConnection({"type": "lifespan", "asgi": {"version": "3.0"}})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, router)
        conn.send_input({"type": "lifespan.startup"})
        failed = await conn.output()
    assert failed["type"] == "lifespan.startup.failed"
    assert "no database" in failed["message"]
    conn.close()


async def test_leak_two_thousand_connections_leave_nothing_running() -> None:
    """Consumers start tasks that raise, sleep forever, or are cancelled mid-send."""
    router = Router(disconnect_check=0.01)

    async def raises() -> None:
        raise RuntimeError("background failure")

    @router.websocket("/ws/{kind}/")
    async def consumer(ws: WebSocket, kind: str) -> None:
        await ws.accept()
        ws.start_soon(anyio.sleep_forever)
        if kind == "raise":
            ws.start_soon(raises)
        async for message in ws.iter_text():
            await ws.send_text(message)

    baseline = len(anyio.get_running_tasks())
    kinds = ["raise", "sleep", "cancel", "disconnect"]
    for batch in range(20):
        async with anyio.create_task_group() as tg:
            conns = []
            for n in range(100):
                kind = kinds[(batch * 100 + n) % 4]
                conn = await open_ws(router, tg, f"/ws/{kind}/")
                conns.append((kind, conn))
            for kind, conn in conns:
                await conn.output()  # accepted
                conn.send_input({"type": "websocket.receive", "text": "x"})
                if kind == "disconnect":
                    conn.send_input({"type": "websocket.disconnect", "code": 1000})
            failures = 25 * (batch + 1)
            await wait_until(lambda: router.statistics().errors >= failures)  # noqa: B023
            tg.cancel_scope.cancel()  # the server cancels whatever is still running
        for _, conn in conns:
            conn.close()
    stats = router.statistics()
    assert stats.connections_total == 2000
    assert stats.tasks_started >= 2000 * 2
    assert (stats.connections_live, stats.tasks_live) == (0, 0)
    assert len(anyio.get_running_tasks()) == baseline


async def test_a_cleanup_over_its_time_is_abandoned_and_the_client_still_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = Router(cleanup_timeout=0.05)
    later: list[str] = []

    @router.websocket("/ws/")
    async def consumer(ws: WebSocket) -> None:
        async def stuck() -> None:
            await anyio.sleep_forever()

        async def quick() -> None:  # added first, so runs after the stuck one
            later.append("ran")

        ws.add_cleanup(quick)
        ws.add_cleanup(stuck)
        await ws.accept()

    async with anyio.create_task_group() as tg:
        conn = await open_ws(router, tg)
        assert (await conn.output())["type"] == "websocket.accept"
        close = await conn.output()
        await conn.finished.wait()
    assert (close["type"], close["code"]) == ("websocket.close", 1000)
    assert later == []  # the rest of the cleanup was abandoned with the stuck one
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "did not finish within 0.05 s; abandoned" in record.getMessage()
    assert router.statistics().connections_live == 0
    conn.close()
