"""``manage.py runserver``: the example project on hypercorn through Django's command.

The end-to-end tests start ``examples/django_project/manage.py runserver`` as a
subprocess in a session of its own (the autoreloader's two processes in one process
group, as under a terminal) with ``tests.django.runserver_settings`` on the SQLite
test database. The server's worker class is the test's AnyIO backend; the client is
httpx + httpx-ws, logged in with a session made in this process, sending the site's
``Origin`` as a browser does. The module the settings import from a temporary folder
is what a test touches to make the autoreloader restart the server.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.core import checks
from django.core.management import CommandError, call_command, get_commands, load_command_class
from django.http import HttpRequest
from django.test.utils import override_settings
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect

from achannels._asgi import Message, Receive, Scope, Send
from achannels.db import database_sync_to_async
from achannels.django.apps import check_runserver
from achannels.django.management.commands.runserver import (
    GOING_AWAY,
    SERVICE_RESTART,
    Command,
    StaticFilesHandler,
)
from achannels.testing import HttpCommunicator
from tests.django import conftest
from tests.django.conftest import Database
from tests.e2e.clients import WAIT, open_ws
from tests.e2e.servers import HOST, REPO, Server, free_port, use_server

pytestmark = [pytest.mark.django]

MANAGE = REPO / "examples" / "django_project" / "manage.py"
CSS = REPO / "examples" / "django_project" / "chat" / "static" / "chat" / "chat.css"
WATCHED = "achannels_runserver_watched"
#: How long the server may take to answer (Django's checks and cold imports on a
#: loaded 2-core machine), and to reload or stop.
READY_WITHIN = 30.0
STOP_WITHIN = 20.0


@dataclass
class Runserver(Server):
    """A ``manage.py runserver`` process group on ``127.0.0.1:port``."""

    watched: Path = Path()

    def touch_watched(self) -> None:
        """Move the watched module's mtime forward (the reloader compares mtimes)."""
        mtime = self.watched.stat().st_mtime + 1
        os.utime(self.watched, (mtime, mtime))

    def wait_group_gone(self) -> None:
        """Wait, bounded, until no process of the group is left (the child included)."""
        deadline = time.monotonic() + STOP_WITHIN
        while True:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            assert time.monotonic() < deadline, f"processes left:\n{self.describe()}"
            time.sleep(0.05)


def make_watched(folder: Path) -> Path:
    """Write the module the settings import into ``folder`` (made); return its path."""
    folder.mkdir()
    watched = folder / f"{WATCHED}.py"
    watched.write_text('"""Touched by the tests to make runserver reload."""\n')
    return watched


def runserver_environ(database: Database, folder: Path) -> dict[str, str]:
    """The environment of a runserver process; ``folder`` holds the watched module."""
    return {
        **os.environ,
        **database.environ(),
        "DJANGO_SETTINGS_MODULE": "tests.django.runserver_settings",
        "ACHANNELS_TEST_WATCHED_MODULE": WATCHED,
        "PYTHONPATH": os.pathsep.join([str(folder), str(REPO)]),
        "PYTHONUNBUFFERED": "1",
        "DJANGO_COLORS": "nocolor",
    }


@pytest.fixture
def sqlite(test_databases: conftest.TestDatabases) -> Database:
    return test_databases.get("sqlite")


@pytest.fixture
def start_runserver(
    tmp_path: Path, sqlite: Database, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Runserver]]:
    """Return a function that starts ``runserver`` with options; kill what is left after."""
    started: list[Runserver] = []

    def start(*options: str, env: dict[str, str] | None = None) -> Runserver:
        port = free_port()
        watched = make_watched(tmp_path / f"watched-{port}")
        argv = [sys.executable, str(MANAGE), "runserver", f"{HOST}:{port}", *options]
        output = tmp_path / f"runserver-{port}.log"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**runserver_environ(sqlite, watched.parent), **(env or {})},
                start_new_session=True,  # a process group, as a terminal makes
            )
        server = Runserver("runserver", port, process, output, argv, watched=watched)
        started.append(server)
        use_server(request, server)  # its output goes into a failure's report
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(STOP_WITHIN)


@database_sync_to_async
def logged_in_session() -> str:
    """Make a user and log them in as Django's ``login()`` does; return the session key."""
    user = get_user_model().objects.create_user(f"runserver-{secrets.token_hex(4)}")
    request = HttpRequest()
    request.session = SessionStore()
    auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    request.session.save()
    key: str = request.session.session_key
    return key


@asynccontextmanager
async def open_browser(server: Runserver) -> AsyncIterator[httpx.AsyncClient]:
    """A logged-in client that sends the site's ``Origin``, as a page of the site does."""
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as client:
        client.headers["origin"] = server.url
        client.cookies.set(settings.SESSION_COOKIE_NAME, await logged_in_session())
        yield client


async def wait_serving(server: Runserver) -> None:
    """Poll (bounded) until the server answers ``/``: started, or back after a reload."""
    with anyio.fail_after(READY_WITHIN):
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as client:
            while True:
                server.check_running()
                try:
                    if (await client.get("/")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.1)


async def say_and_hear(speaker: AsyncWebSocketSession, listener: AsyncWebSocketSession) -> None:
    """Send a chat message on ``speaker``; wait (bounded) until ``listener`` gets it."""
    text = f"hello {secrets.token_hex(4)}"
    await speaker.send_text(json.dumps({"message": text}))
    with anyio.fail_after(WAIT):
        while json.loads(await listener.receive_text()).get("message") != text:
            pass  # the history and join events come first


async def chat(alice_ws: AsyncWebSocketSession, bob: httpx.AsyncClient, room: str) -> None:
    """Bob joins ``room``, where Alice is, and each hears the other; then Bob leaves.

    Returns once Alice has heard Bob leave, so that no event of the room is on its way
    to her consumer when the server closes her socket. (An event that comes after
    the server's close frame makes the consumer's send fail, a known limitation.)
    """
    async with open_ws(bob, f"/ws/chat/{room}/") as bob_ws:
        await say_and_hear(alice_ws, bob_ws)
        await say_and_hear(bob_ws, alice_ws)
    with anyio.fail_after(WAIT):
        while json.loads(await alice_ws.receive_text()).get("type") != "leave":
            pass


async def touch_until_reloaded(server: Runserver) -> None:
    while True:
        server.touch_watched()
        await anyio.sleep(0.5)


async def close_code(ws: AsyncWebSocketSession, *, within: float = STOP_WITHIN) -> int:
    """Read (bounded) until the server's close frame; return its code."""
    with anyio.fail_after(within):
        while True:
            try:
                await ws.receive()  # other users' join and leave events may come first
            except WebSocketDisconnect as closed:
                return closed.code


# -- end to end: the example project under runserver ---------------------------------


@pytest.mark.anyio
@pytest.mark.e2e
async def test_serves_websockets_http_static_reloads_and_stops(
    start_runserver: Callable[..., Runserver], anyio_backend: str
) -> None:
    server = start_runserver("--worker-class", anyio_backend)
    await wait_serving(server)
    room = f"room-{secrets.token_hex(4)}"
    async with open_browser(server) as alice, open_browser(server) as bob:
        page = await alice.get("/")
        assert (page.status_code, page.text) == (200, "achannels Django example\n")
        static = await alice.get("/static/chat/chat.css")
        assert (static.status_code, static.content) == (200, CSS.read_bytes())

        async with open_ws(alice, f"/ws/chat/{room}/") as alice_ws:
            await chat(alice_ws, bob, room)
            # The reloader first sees the file after it starts: touch until it reloads.
            async with anyio.create_task_group() as touching:
                touching.start_soon(touch_until_reloaded, server)
                assert await close_code(alice_ws) == SERVICE_RESTART
                touching.cancel_scope.cancel()

        await wait_serving(server)  # the new child process
        async with open_ws(alice, f"/ws/chat/{room}/") as alice_ws:
            await chat(alice_ws, bob, room)
            if anyio_backend == "trio":  # Ctrl-C in a terminal: both processes get it
                os.killpg(server.process.pid, signal.SIGINT)
            else:  # ``kill`` of the first process: it passes the stop on
                server.process.send_signal(signal.SIGTERM)
            assert await close_code(alice_ws) == GOING_AWAY

    assert server.wait(STOP_WITHIN) == 0, server.read_output()
    server.wait_group_gone()
    output = server.read_output()
    assert f"{WATCHED}.py changed, reloading." in output
    banner = (
        f"Starting ASGI/achannels development server on hypercorn ({anyio_backend}) "
        f"at http://{HOST}:{server.port}/"
    )
    assert output.count(banner) == 2, output  # before and after the reload
    assert "Traceback" not in output, output


@pytest.mark.anyio
@pytest.mark.e2e
@pytest.mark.parametrize(
    ("static_options", "static_status"),
    [(["--insecure"], 200), (["--insecure", "--nostatic"], 404)],
    ids=["insecure", "nostatic"],
)
async def test_noreload_static_files_without_debug_and_stop(
    start_runserver: Callable[..., Runserver],
    anyio_backend: str,
    static_options: list[str],
    static_status: int,
) -> None:
    """Without DEBUG the URLconf serves no static files: only ``--insecure`` does."""
    server = start_runserver(
        "--noreload", "-k", anyio_backend, *static_options, env={"DJANGO_DEBUG": "0"}
    )
    await wait_serving(server)
    async with open_browser(server) as client:
        static = await client.get("/static/chat/chat.css")
        assert static.status_code == static_status
        if static_status == 200:
            assert static.content == CSS.read_bytes()
            assert "x-frame-options" not in static.headers  # no middleware, as Django's
        async with open_ws(client, f"/ws/chat/room-{secrets.token_hex(4)}/") as ws:
            await say_and_hear(ws, ws)  # connect() has finished: the room is joined
            server.process.send_signal(signal.SIGINT)
            assert await close_code(ws) == GOING_AWAY
    assert server.wait(STOP_WITHIN) == 0, server.read_output()
    output = server.read_output()
    assert f"on hypercorn ({anyio_backend}) at http://{HOST}:{server.port}/" in output
    assert "Traceback" not in output, output


@pytest.mark.e2e
def test_a_port_in_use_is_an_error_not_a_traceback(sqlite: Database, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        argv = [sys.executable, str(MANAGE), "runserver", f"{HOST}:{taken.getsockname()[1]}"]
        done = subprocess.run(
            argv,
            cwd=REPO,
            env=runserver_environ(sqlite, make_watched(tmp_path / "watched").parent),
            capture_output=True,
            text=True,
            timeout=READY_WITHIN,
        )
    # The child process exits with 1, and so the first one.
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Error: That port is already in use." in done.stderr
    assert "Traceback" not in done.stderr


# -- in process ----------------------------------------------------------------------


def test_the_example_project_gets_achannels_runserver() -> None:
    assert get_commands()["runserver"] == "achannels"
    assert check_runserver() == []


@pytest.mark.parametrize("label", ["achannels", "achannels.django"])
def test_either_app_provides_runserver_before_staticfiles(label: str) -> None:
    with override_settings(INSTALLED_APPS=[label, "django.contrib.staticfiles"]):
        assert get_commands()["runserver"] == label
        assert isinstance(load_command_class(label, "runserver"), Command)
        assert check_runserver() == []


def test_a_warning_when_staticfiles_comes_first() -> None:
    assert check_runserver in checks.registry.registry.get_checks()
    with override_settings(INSTALLED_APPS=["django.contrib.staticfiles", "achannels"]):
        [warning] = check_runserver()
    assert warning.id == "achannels.W001"
    assert warning.level == checks.WARNING
    assert "django.contrib.staticfiles" in warning.msg
    assert warning.hint == (
        "List 'achannels' before 'django.contrib.staticfiles' in INSTALLED_APPS."
    )


def test_asgi_application_is_required() -> None:
    with (
        override_settings(ASGI_APPLICATION=None),
        pytest.raises(CommandError, match="You have not set ASGI_APPLICATION"),
    ):
        call_command(Command(), "--noreload")


class InnerApp:
    """The application behind the static files handler; records the scopes it gets."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"inner"})


@pytest.mark.anyio
async def test_static_files_handler_serves_static_url_and_passes_the_rest() -> None:
    inner = InnerApp()
    handler = StaticFilesHandler(inner)

    async def get(path: str) -> dict[str, Any]:
        headers = [(b"host", b"testserver")]
        async with HttpCommunicator(handler, "GET", path, headers=headers) as communicator:
            response: dict[str, Any] = await communicator.get_response(timeout=WAIT)
        return response

    found = await get("/static/chat/chat.css")
    assert (found["status"], found["body"]) == (200, CSS.read_bytes())
    assert (await get("/static/chat/missing.css"))["status"] == 404
    assert inner.scopes == []
    assert (await get("/chat/"))["body"] == b"inner"

    async def receive() -> Message:
        raise AssertionError("not called")

    async def send(message: Message) -> None:
        raise AssertionError("not called")

    await handler({"type": "websocket", "path": "/static/x"}, receive, send)
    assert inner.scopes == ["http", "websocket"]
