"""Graceful shutdown of ``python -m achannels serve`` on SIGTERM.

Each test starts its own server (it is stopped by the test), with the trio and the
asyncio worker, the default close code and ``--shutdown-close-code 1012``.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from .clients import WAIT, open_client, open_ws, receive_close
from .servers import ECHO_APP, Server, start_server, use_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

#: ``--shutdown-grace``: how long consumers get after the close before cancellation.
GRACE = 3.0
#: The grace when a test waits it out.
SHORT_GRACE = 1.0


@dataclass(frozen=True)
class Shutdown:
    """A server to shut down and the close code its clients should see."""

    server: Server
    close_code: int


def start(
    request: pytest.FixtureRequest, tmp_path: Path, worker: str, code: int | None, grace: float
) -> Server:
    options = ["--shutdown-grace", str(grace)]
    if code is not None:
        options += ["--shutdown-close-code", str(code)]
    server = start_server(f"achannels-{worker}", ECHO_APP, output_dir=tmp_path, options=options)
    return use_server(request, server)


@pytest.fixture(
    params=[
        pytest.param(("trio", None), id="trio-default"),
        pytest.param(("asyncio", None), id="asyncio-default"),
        pytest.param(("trio", 1012), id="trio-1012"),
        pytest.param(("asyncio", 1012), id="asyncio-1012"),
    ]
)
def shutdown(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shutdown]:
    """``python -m achannels serve examples.echo.app:app`` of its own, for one test."""
    worker, code = request.param
    server = start(request, tmp_path, worker, code, GRACE)
    try:
        yield Shutdown(server, 1001 if code is None else code)
    finally:
        server.stop()


@pytest.fixture(params=["trio", "asyncio"])
def short_grace(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """Like ``shutdown`` with the default code and a grace of :data:`SHORT_GRACE`."""
    server = start(request, tmp_path, request.param, None, SHORT_GRACE)
    try:
        yield server
    finally:
        server.stop()


def sigterm(server: Server) -> float:
    """Send SIGTERM to the server; return when (``time.monotonic()``)."""
    server.process.send_signal(signal.SIGTERM)
    return time.monotonic()


async def wait_for_exit(server: Server, signalled: float) -> tuple[int, float]:
    """Wait (in a thread, bounded) for the server to exit.

    Returns its exit status and the seconds from the signal to the exit.
    """
    within = GRACE + 5
    try:
        status = await anyio.to_thread.run_sync(server.wait, within, abandon_on_cancel=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the server was still running {within} s after SIGTERM")
    return status, time.monotonic() - signalled


async def test_sigterm_closes_websockets_with_the_shutdown_code(shutdown: Shutdown) -> None:
    server = shutdown.server
    async with open_client(server) as client, open_ws(client, "/ws/echo/") as ws:
        with anyio.fail_after(WAIT):
            await ws.send_text("before")
            assert await ws.receive_text() == "before"
        signalled = sigterm(server)
        code, _ = await receive_close(ws)
        assert code == shutdown.close_code
    status, seconds = await wait_for_exit(server, signalled)
    assert status == 0
    assert seconds < GRACE


async def test_sigterm_ends_a_busy_consumer(shutdown: Shutdown) -> None:
    # The consumer sleeps away from receive(): the close frame still goes out at
    # once (from the connection's task group), and the client's answer ends it.
    server = shutdown.server
    key = secrets.token_hex(8)
    async with open_client(server) as client, open_ws(client, f"/ws/sleep/{key}/") as ws:
        with anyio.fail_after(WAIT):
            assert await ws.receive_text() == "sleeping"
        signalled = sigterm(server)
        code, _ = await receive_close(ws)
        assert code == shutdown.close_code
    status, seconds = await wait_for_exit(server, signalled)
    assert status == 0
    assert seconds < GRACE


async def test_a_client_that_never_answers_the_close_is_cut_off_after_the_grace(
    short_grace: Server,
) -> None:
    # The client keeps the socket open without answering the close frame: the echo
    # consumer waits in receive() until the grace is over, then it is cancelled and
    # the server exits anyway.
    server = short_grace
    async with open_client(server) as client, open_ws(client, "/ws/echo/") as ws:
        with anyio.fail_after(WAIT):
            await ws.send_text("before")
            assert await ws.receive_text() == "before"
        signalled = sigterm(server)
        code, _ = await receive_close(ws)
        assert code == 1001
        status, seconds = await wait_for_exit(server, signalled)
    assert status == 0
    assert SHORT_GRACE * 0.9 <= seconds < SHORT_GRACE + 2
