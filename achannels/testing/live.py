"""``ChannelsLiveServerTestCase``: a Django test case with the project served live by hypercorn.

``from channels.testing import ChannelsLiveServerTestCase`` becomes
``from achannels.testing import ChannelsLiveServerTestCase``. Before each test the
project's ``settings.ASGI_APPLICATION`` is served on ``127.0.0.1`` (a free port) for
real clients (a browser through Selenium or Playwright, httpx, ``websockets``)::

    class ChatTests(ChannelsLiveServerTestCase):
        def test_page(self) -> None:
            response = httpx.get(self.live_server_url + "/")
            with websockets.sync.client.connect(self.live_server_ws_url + "/ws/chat/1/") as ws:
                ...

How it differs from Channels', which runs Daphne in a child process:

* hypercorn runs **in a thread of the test process, with its own event loop**
  (``worker_class``: ``"asyncio"``, the default, or ``"trio"``). So the server sees
  exactly the test's settings, test database names and database routers (also
  changes made after Django was set up), and starting it costs milliseconds, not a
  process start-up: it is started for each test (``_pre_setup``) and stopped after it
  (``_post_teardown``), as older Channels releases did (4.3 keeps one per class), so
  no connection or consumer outlives the test that opened it.
* Stopping is graceful and bounded: live achannels connections are closed with 1001,
  consumers get ``shutdown_grace`` seconds, and if the thread has not ended within
  ``stop_timeout`` seconds the test fails with ``RuntimeError`` (the thread, a daemon,
  is left behind; a thread cannot be killed). An error of the server fails the test.
* Static files (``serve_static``, default true) are served from the
  ``staticfiles`` finders under ``STATIC_URL`` by an AnyIO handler
  (:class:`StaticFilesHandler`; Django's ``ASGIStaticFilesHandler`` runs on asyncio
  only), and only when ``django.contrib.staticfiles`` is installed.

The server shares the process with the test: its requests, consumers and the test's
own queries use the same databases from different threads and connections, and the
test data a ``TransactionTestCase`` commits is visible to it. As with Channels, an
in-memory SQLite database is refused (``ImproperlyConfigured``): use a file
(``DATABASES[...]["TEST"]["NAME"]``). The channel layer is the process's one, also
shared; the server's consumers use it from the server's event loop, so the test
should not call the same in-memory layer from its own loop at the same time.

Written for Django 5.2, where ``TransactionTestCase._pre_setup`` is a classmethod
that ``setUpClass`` runs for the first test.
"""

from __future__ import annotations

import contextlib
import importlib
import socket
import threading
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import anyio
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test.testcases import TransactionTestCase
from django.test.utils import modify_settings

from achannels._asgi import ASGIApp
from achannels._connection import Connections, server_connections
from achannels.django import StaticFilesHandler, get_default_application

__all__ = ["ChannelsLiveServerTestCase", "StaticFilesHandler"]

WorkerClass = Literal["asyncio", "trio"]


class _HypercornThread:
    """hypercorn serving ``app`` in a daemon thread with its own event loop."""

    def __init__(
        self, app: ASGIApp, *, host: str, port: int, worker_class: WorkerClass, grace: float
    ) -> None:
        self.app = app
        self.worker_class = worker_class
        self.grace = grace
        # Bound and listening before the thread starts: a client never sees a
        # refused connection, its connect waits in the backlog until hypercorn runs.
        self.listener = socket.create_server((host, port))
        self.port: int = self.listener.getsockname()[1]
        # A byte on this pair asks the server to stop: writing never waits for the
        # server's event loop, even when a misbehaving application blocks it.
        self._wakeup, self._stop_request = socket.socketpair()
        self.error: BaseException | None = None
        self._running = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"achannels live server :{self.port}", daemon=True
        )

    def start(self, within: float) -> None:
        """Start the thread; return once its event loop runs.

        Raises:
            RuntimeError: the server failed, or its loop did not start within ``within``
                seconds.
        """
        self._thread.start()
        if not self._running.wait(within):
            raise RuntimeError(f"the live server did not start within {within} s")
        if self.error is not None:
            raise RuntimeError("the live server failed to start") from self.error

    def stop(self, within: float) -> None:
        """Ask the server to shut down gracefully and wait up to ``within`` seconds.

        Raises:
            RuntimeError: the thread is still running after ``within`` seconds, or the
                server failed while it ran (chained to its exception).
        """
        if self._thread.ident is None:  # never started
            for sock in (self.listener, self._wakeup):
                sock.close()
        with contextlib.suppress(OSError):
            self._stop_request.send(b"\0")
        self._stop_request.close()  # end of stream: wakes the server up as well
        self._thread.join(within)
        if self._thread.is_alive():
            raise RuntimeError(f"the live server did not stop within {within} s")
        if self.error is not None:
            raise RuntimeError("the live server failed") from self.error

    def _run(self) -> None:
        try:
            anyio.run(self._serve, backend=self.worker_class)
        except BaseException as exc:  # reported to the test by start() or stop()
            self.error = exc
        finally:
            # This thread's sockets: closed here, once its event loop stopped using them.
            self.listener.close()
            self._wakeup.close()
            self._running.set()

    async def _serve(self) -> None:
        from hypercorn.config import Config, Sockets

        listener = self.listener

        class ListenerConfig(Config):
            def create_sockets(self) -> Sockets:
                return Sockets(secure_sockets=[], insecure_sockets=[listener], quic_sockets=[])

        config = ListenerConfig()
        config.graceful_timeout = self.grace
        config.loglevel = "WARNING"
        connections = Connections()
        # hypercorn's tasks inherit this context: every achannels connection served
        # registers here, so that shutting down can close them with a close frame.
        server_connections.set(connections)

        async def shutdown_trigger() -> None:
            await anyio.wait_readable(self._wakeup)
            await connections.close_all(code=1001, grace=self.grace)

        serve: Any = importlib.import_module(f"hypercorn.{self.worker_class}").serve
        self._running.set()
        await serve(self.app, config, shutdown_trigger=shutdown_trigger)


class ChannelsLiveServerTestCase(TransactionTestCase):  # type: ignore[misc]
    """A ``TransactionTestCase`` with ``settings.ASGI_APPLICATION`` served by hypercorn.

    Attributes:
        host: the address served (added to ``ALLOWED_HOSTS`` during the test).
        port: the port, 0 for a free one.
        worker_class: the server's event loop, ``"asyncio"`` or ``"trio"``.
        serve_static: serve static files under ``STATIC_URL`` (with
            ``django.contrib.staticfiles`` installed) through ``static_wrapper``.
        static_wrapper: wraps the application to serve static files.
        shutdown_grace: seconds consumers get after the server closed their
            connections (1001) at the end of a test, and hypercorn's graceful timeout.
        start_timeout, stop_timeout: bounds, in seconds, on starting and stopping.
    """

    host: ClassVar[str] = "127.0.0.1"
    port: ClassVar[int] = 0
    worker_class: ClassVar[WorkerClass] = "asyncio"
    serve_static: ClassVar[bool] = True
    static_wrapper: ClassVar[Callable[[ASGIApp], ASGIApp]] = StaticFilesHandler
    shutdown_grace: ClassVar[float] = 1.0
    start_timeout: ClassVar[float] = 10.0
    stop_timeout: ClassVar[float] = 10.0

    _live_server: ClassVar[_HypercornThread | None] = None
    _live_server_settings: ClassVar[Any] = None

    @property
    def live_server_url(self) -> str:
        """``http://host:port`` of the running server."""
        return f"http://{self.host}:{self._live_port()}"

    @property
    def live_server_ws_url(self) -> str:
        """``ws://host:port`` of the running server."""
        return f"ws://{self.host}:{self._live_port()}"

    @classmethod
    def _live_port(cls) -> int:
        if cls._live_server is None:
            raise RuntimeError("the live server runs only during a test")
        return cls._live_server.port

    @classmethod
    def get_application(cls) -> ASGIApp:
        """Return the application to serve: ``ASGI_APPLICATION``, maybe with static files."""
        application = get_default_application()
        if cls.serve_static and apps.is_installed("django.contrib.staticfiles"):
            application = cls.static_wrapper(application)
        return application

    @classmethod
    def _pre_setup(cls) -> None:
        for connection in connections.all():
            if connection.vendor == "sqlite" and connection.is_in_memory_db():
                raise ImproperlyConfigured(
                    "ChannelsLiveServerTestCase can not be used with in memory databases"
                )
        super()._pre_setup()
        cls._live_server_settings = modify_settings(ALLOWED_HOSTS={"append": cls.host})
        cls._live_server_settings.enable()
        try:
            server = _HypercornThread(
                cls.get_application(),
                host=cls.host,
                port=cls.port,
                worker_class=cls.worker_class,
                grace=cls.shutdown_grace,
            )
            cls._live_server = server
            server.start(cls.start_timeout)
        except BaseException:
            cls._stop_live_server()
            raise

    def _post_teardown(self) -> None:
        try:
            self._stop_live_server()
        finally:
            super()._post_teardown()

    @classmethod
    def tearDownClass(cls) -> None:
        # A skipped first test leaves the server that setUpClass started running.
        try:
            cls._stop_live_server()
        finally:
            super().tearDownClass()

    @classmethod
    def _stop_live_server(cls) -> None:
        server, cls._live_server = cls._live_server, None
        modified, cls._live_server_settings = cls._live_server_settings, None
        try:
            if server is not None:
                server.stop(cls.stop_timeout)
        finally:
            if modified is not None:
                modified.disable()
