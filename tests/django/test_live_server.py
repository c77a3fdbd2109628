"""``ChannelsLiveServerTestCase`` serving the example project to real clients.

The test classes are Django ``TransactionTestCase`` subclasses, written as for Django's
test runner and collected by pytest: hypercorn (asyncio and trio workers) serves
``settings.ASGI_APPLICATION`` against the SQLite and the PostgreSQL test database,
and httpx and the ``websockets`` sync client talk to it, logged in with the test
client's ``force_login()`` and sending the site's ``Origin`` as a browser does. The
module's functions at the end run such a class by hand to check what happens around
the tests.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import threading
import unittest
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from achannels._asgi import ASGIApp, Receive, Scope, Send
from achannels.testing import ChannelsLiveServerTestCase
from achannels.testing import live as live_module
from examples.django_project.chat.consumers import QUIT_CODE
from examples.django_project.chat.models import Message
from tests.django import conftest
from tests.django.dbrouting import SelectedDatabase

pytestmark = [pytest.mark.django, pytest.mark.e2e]

#: Seconds a client waits for one answer.
WAIT = 10


@pytest.fixture(scope="class", autouse=True)
def live_database(
    request: pytest.FixtureRequest, test_databases: conftest.TestDatabases
) -> Iterator[str]:
    """Create the class's test database (``database_kind``) and route queries to it.

    Class-scoped, so that it runs before ``setUpClass`` (which starts the first
    test's server).
    """
    kind = getattr(request.cls, "database_kind", "sqlite")
    alias = test_databases.get(kind).alias
    SelectedDatabase.alias = alias
    try:
        yield alias
    finally:
        SelectedDatabase.alias = "default"


def new_room() -> str:
    return f"live-{secrets.token_hex(4)}"


def session_cookie(client: Client, name: str) -> str:
    """Log a new user called ``name-...`` in with ``client``; return the ``Cookie`` value."""
    user = get_user_model().objects.create_user(f"{name}-{secrets.token_hex(4)}")
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def open_socket(url: str, cookie: str | None = None) -> ClientConnection:
    """Open a WebSocket as a page of the live server does (its ``Origin``, the cookie)."""
    origin = "http://" + url.removeprefix("ws://").split("/", 1)[0]
    headers = {"Cookie": cookie} if cookie else None
    return connect(url, origin=Origin(origin), additional_headers=headers, open_timeout=WAIT)


def chat_frame(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(ws.recv(timeout=WAIT))
    return frame


class LiveServerTests(ChannelsLiveServerTestCase):
    """The example project on hypercorn's asyncio worker, with SQLite."""

    database_kind: ClassVar[str] = "sqlite"

    def test_http_view(self) -> None:
        response = httpx.get(f"{self.live_server_url}/", timeout=WAIT)
        assert response.status_code == 200
        assert response.text == "achannels Django example\n"

    def test_a_view_reads_what_the_test_wrote(self) -> None:
        room = new_room()
        Message.objects.create(room=room, text="written by the test")
        url = f"{self.live_server_url}/rooms/{room}/messages/"
        cookie = session_cookie(self.client, "alice")
        response = httpx.get(url, headers={"Cookie": cookie}, timeout=WAIT)
        assert response.json() == {"room": room, "count": 1, "texts": ["written by the test"]}
        assert httpx.get(url, timeout=WAIT).status_code == 403

    def test_websocket_round_trip(self) -> None:
        room = new_room()
        Message.objects.create(room=room, text="written by the test")
        url = f"{self.live_server_ws_url}/ws/chat/{room}/"
        alice_cookie = session_cookie(self.client, "alice")
        bob_cookie = session_cookie(Client(), "bob")
        with open_socket(url, alice_cookie) as alice:
            [history] = chat_frame(alice)["messages"]
            assert (history["user"], history["message"]) == (None, "written by the test")
            assert chat_frame(alice)["type"] == "join"
            with open_socket(url, bob_cookie) as bob:
                assert chat_frame(bob)["type"] == "history"
                assert chat_frame(bob)["type"] == "join"
                assert chat_frame(alice)["type"] == "join"
                alice.send(json.dumps({"message": "hello"}))
                for ws in (alice, bob):
                    frame = chat_frame(ws)
                    assert (frame["type"], frame["message"]) == ("message", "hello")
                    assert frame["user"].startswith("alice-")
                alice.send(json.dumps({"message": "/quit"}))
                with pytest.raises(ConnectionClosed) as closed:
                    alice.recv(timeout=WAIT)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == QUIT_CODE
        texts = Message.objects.filter(room=room).values_list("user__username", "text")
        assert [text for _, text in texts] == ["written by the test", "hello"]

    def test_a_consumer_writes_what_the_test_reads(self) -> None:
        room = new_room()
        cookie = session_cookie(self.client, "alice")
        with open_socket(f"{self.live_server_ws_url}/ws/log/{room}/", cookie) as ws:
            ws.send(json.dumps({"text": "over the wire"}))
            reply = json.loads(ws.recv(timeout=WAIT))
        assert reply["count"] == 1
        assert list(Message.objects.filter(room=room).values_list("text", flat=True)) == [
            "over the wire"
        ]

    def test_the_user_logged_in_with_django_reaches_the_consumer(self) -> None:
        cookie = session_cookie(self.client, "alice")
        url = f"{self.live_server_ws_url}/ws/whoami/"
        with open_socket(url, cookie) as ws:
            username = json.loads(ws.recv(timeout=WAIT))["username"]
            assert username.startswith("alice-")
        with open_socket(url) as ws:
            assert json.loads(ws.recv(timeout=WAIT)) == {"username": None}

    def test_the_login_page_and_the_lobby(self) -> None:
        login = httpx.get(f"{self.live_server_url}/chat/", timeout=WAIT, follow_redirects=True)
        assert login.url.path == "/accounts/login/"
        assert 'name="csrfmiddlewaretoken"' in login.text
        cookie = session_cookie(self.client, "alice")
        lobby = httpx.get(f"{self.live_server_url}/chat/", headers={"Cookie": cookie}, timeout=WAIT)
        assert lobby.status_code == 200
        assert 'id="room-form"' in lobby.text

    def test_static_files_are_served(self) -> None:
        response = httpx.get(f"{self.live_server_url}/static/chat/chat.css", timeout=WAIT)
        assert response.status_code == 200
        assert "font-family" in response.text
        missing = httpx.get(f"{self.live_server_url}/static/chat/missing.css", timeout=WAIT)
        assert missing.status_code == 404


class TrioLiveServerTests(LiveServerTests):
    """The same on hypercorn's trio worker."""

    worker_class = "trio"


@pytest.mark.postgres
class PostgresLiveServerTests(LiveServerTests):
    """The same with PostgreSQL."""

    database_kind = "postgres"
    databases: ClassVar[set[str]] = {"postgres"}


@pytest.mark.postgres
class PostgresTrioLiveServerTests(PostgresLiveServerTests):
    """PostgreSQL on hypercorn's trio worker."""

    worker_class = "trio"


# -- around the tests: run a test case by hand ------------------------------------------


def run_case(case_class: type[unittest.TestCase], *names: str) -> unittest.TestResult:
    """Run the named tests of ``case_class`` (with its class set-up and tear-down)."""
    result = unittest.TestResult()
    unittest.TestSuite([case_class(name) for name in names]).run(result)
    return result


def port_is_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.parametrize("worker_class", ["asyncio", "trio"])
def test_each_test_gets_a_server_that_is_stopped_after_it(worker_class: str) -> None:
    seen: list[tuple[int, ClientConnection]] = []

    with contextlib.ExitStack() as clients:

        class Case(ChannelsLiveServerTestCase):
            def test_one(self) -> None:
                url = f"{self.live_server_ws_url}/ws/whoami/"
                # Left open on purpose: the server closes it when the test ends.
                ws = clients.enter_context(open_socket(url))
                assert json.loads(ws.recv(timeout=WAIT)) == {"username": None}
                seen.append((int(self.live_server_url.rsplit(":", 1)[1]), ws))

            test_two = test_one

        Case.worker_class = worker_class  # type: ignore[assignment]
        result = run_case(Case, "test_one", "test_two")
        assert result.errors == []
        assert result.failures == []
        assert len(seen) == 2
        for port, ws in seen:
            assert not port_is_open(port)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=WAIT)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
    assert Case._live_server is None
    names = [thread.name for thread in threading.enumerate()]
    assert not [name for name in names if name.startswith("achannels live server")]


def test_a_server_that_does_not_stop_fails_the_test_within_the_bound() -> None:
    release = threading.Event()

    async def stuck(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            release.wait(WAIT)  # blocks the server's event loop: it cannot shut down

    class Case(ChannelsLiveServerTestCase):
        stop_timeout = 0.5
        shutdown_grace = 0.1

        @classmethod
        def get_application(cls) -> ASGIApp:
            return stuck

        def test_request(self) -> None:
            with pytest.raises(httpx.ReadTimeout):
                httpx.get(self.live_server_url, timeout=0.2)

    try:
        result = run_case(Case, "test_request")
        [(_, error)] = result.errors
        assert "did not stop within 0.5 s" in error
    finally:
        release.set()
        for thread in threading.enumerate():
            if thread.name.startswith("achannels live server"):
                thread.join(WAIT)


def test_in_memory_sqlite_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class InMemory:
        vendor = "sqlite"

        def is_in_memory_db(self) -> bool:
            return True

    class Connections:
        def all(self) -> list[Any]:
            return [InMemory()]

    class Case(ChannelsLiveServerTestCase):
        def test_nothing(self) -> None:
            raise AssertionError("not reached")

    monkeypatch.setattr(live_module, "connections", Connections())
    result = run_case(Case, "test_nothing")
    [(_, error)] = result.errors
    assert ImproperlyConfigured.__name__ in error
    assert "in memory databases" in error


def test_live_server_url_outside_a_test_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="only during a test"):
        _ = LiveServerTests("test_http_view").live_server_url
