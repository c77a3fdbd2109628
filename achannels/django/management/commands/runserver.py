"""``manage.py runserver``: ``ASGI_APPLICATION`` on hypercorn, WebSockets included.

What Daphne's ``runserver`` is to Channels: with ``"achannels"`` (or
``"achannels.django"``) listed before ``"django.contrib.staticfiles"`` in
``INSTALLED_APPS``, ``runserver`` serves ``settings.ASGI_APPLICATION`` with hypercorn,
on trio (``--worker-class asyncio`` for asyncio). It keeps what Django's
``runserver`` gives in development: the address and port argument, ``--ipv6``, the
system and migration checks, the banner, request lines on the ``django.server``
logger, the autoreloader (``--noreload``), and static files while ``DEBUG`` is on
(``--nostatic``, ``--insecure``), served by :class:`StaticFilesHandler`, which works on
trio as well (Django's ``ASGIStaticFilesHandler`` needs asyncio).

Shutdown is graceful, as under ``python -m achannels serve``: on SIGINT or SIGTERM
every live achannels connection is closed with 1001 (going away), on a reload with
1012 (service restart); consumers get ``--shutdown-grace`` seconds, then hypercorn
stops.

Processes and threads, as with Django's autoreloader: the first process only starts
a child process, again each time the child exits with status 3, and passes a stop
signal on to it. The child serves in a thread (``django-main-thread``) while its main
thread watches the files; on a change it asks the server to close its connections,
waits for the server to stop (bounded), then exits with status 3. With
``--noreload`` the server runs in the main thread of the only process.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from argparse import ArgumentParser
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
import anyio.to_thread
from django.apps import apps
from django.conf import settings
from django.core.management.base import CommandError
from django.core.management.commands.runserver import Command as RunserverCommand
from django.db import connections
from django.utils import autoreload

from achannels._asgi import ASGIApp
from achannels._connection import Connections, server_connections
from achannels.django._application import get_default_application
from achannels.django._handler import StaticFilesHandler

__all__ = ["GOING_AWAY", "SERVICE_RESTART", "Command", "StaticFilesHandler"]

#: The close code of every live connection when the server stops.
GOING_AWAY = 1001
#: The close code of every live connection when the autoreloader restarts the server.
SERVICE_RESTART = 1012
#: The child process's exit status that asks the first process for a new child.
RELOAD_STATUS = 3

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_BIND_ERRORS = {
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}
_SignalHandler = Callable[[int, FrameType | None], None]
reload_logger = logging.getLogger("django.utils.autoreload")


class Command(RunserverCommand):  # type: ignore[misc]  # Django has no type stubs here
    """Serve ``ASGI_APPLICATION`` with hypercorn for development, reloading on changes."""

    help = (
        "Starts a development server for ASGI_APPLICATION on hypercorn (HTTP and "
        "WebSockets, trio or asyncio), with the autoreloader and static files."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Add Django's options, the static files ones, and hypercorn's worker class."""
        super().add_arguments(parser)
        parser.add_argument(
            "--nostatic",
            action="store_false",
            dest="use_static_handler",
            help="Tells Django to NOT automatically serve static files at STATIC_URL.",
        )
        parser.add_argument(
            "--insecure",
            action="store_true",
            dest="insecure_serving",
            help="Allows serving static files even if DEBUG is False.",
        )
        parser.add_argument(
            "--worker-class",
            "-k",
            choices=["trio", "asyncio"],
            default="trio",
            help="The event loop hypercorn serves on (default: trio).",
        )
        parser.add_argument(
            "--shutdown-grace",
            type=float,
            default=5.0,
            help="Seconds consumers get to finish after their close frame on a stop or "
            "reload, before they are cancelled (default: 5).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Check ``ASGI_APPLICATION``, then parse the address and run (Django's ``handle``)."""
        if not getattr(settings, "ASGI_APPLICATION", None):
            raise CommandError(
                "You have not set ASGI_APPLICATION, which is needed to run the server."
            )
        self.stop_request = StopRequest()
        self.server_thread: threading.Thread | None = None
        super().handle(*args, **options)

    def run(self, **options: Any) -> None:
        """Serve, under the autoreloader unless ``--noreload``; return once stopped."""
        if not options["use_reloader"]:
            with _stop_signals_call(self._request_stop):
                self.inner_run(**options)
        elif os.environ.get(autoreload.DJANGO_AUTORELOAD_ENV) == "true":
            self._serve_and_watch(options)
        else:
            sys.exit(_restart_on_reload())

    def inner_run(self, *args: Any, **options: Any) -> None:
        """Check, bind, print the banner and serve until a stop is requested."""
        self.server_thread = threading.current_thread()
        # An exception silenced by ManagementUtility.execute for the autoreloader.
        autoreload.raise_last_exception()
        if not options.get("skip_checks"):
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.check_migrations()
        for connection in connections.all(initialized_only=True):
            connection.close()
        application = self.get_application(options)
        listener = self._listen()
        self.on_bind(listener.getsockname()[1], worker_class=options["worker_class"])
        if self.stop_request.is_set():
            listener.close()
        else:
            self._serve(application, listener, options)
        if options.get("shutdown_message"):  # Django's stealth option (``testserver``)
            self.stdout.write(options["shutdown_message"])

    def get_application(self, options: dict[str, Any]) -> ASGIApp:
        """Return ``ASGI_APPLICATION``, serving static files first when Django's would."""
        application = get_default_application()
        static = options.get("use_static_handler", True) and (
            settings.DEBUG or options.get("insecure_serving", False)
        )
        if static and apps.is_installed("django.contrib.staticfiles"):
            return StaticFilesHandler(application)
        return application

    def on_bind(self, server_port: int, *, worker_class: str = "trio") -> None:
        """Print Django's banner, naming achannels, hypercorn and the event loop."""
        if self._raw_ipv6:
            addr = f"[{self.addr}]"
        elif self.addr == "0":
            addr = "0.0.0.0"
        else:
            addr = self.addr
        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        self.stdout.write(
            f"{datetime.now().strftime('%B %d, %Y - %X')}\n"
            f"Django version {self.get_version()}, using settings {settings.SETTINGS_MODULE!r}\n"
            f"Starting ASGI/achannels development server on hypercorn ({worker_class}) "
            f"at {self.protocol}://{addr}:{server_port}/\n"
            f"Quit the server with {quit_command}."
        )
        if os.environ.get("DJANGO_RUNSERVER_HIDE_WARNING") != "true":
            self.stdout.write(
                self.style.WARNING(
                    "WARNING: This is a development server. Do not use it in a production "
                    "setting. Serve ASGI_APPLICATION with hypercorn or "
                    "`python -m achannels serve` instead."
                )
            )

    def _listen(self) -> socket.socket:
        """Bind the listening socket here, for Django's errors and the real port."""
        family = socket.AF_INET6 if self.use_ipv6 else socket.AF_INET
        try:
            return socket.create_server((self.addr, int(self.port)), family=family)
        except OSError as exc:
            self.stderr.write(f"Error: {_BIND_ERRORS.get(exc.errno or 0, exc)}")
            self.stderr.flush()
            self.stdout.flush()
            # As Django's runserver: sys.exit in the server thread would end the thread only.
            os._exit(1)

    def _serve(self, application: ASGIApp, listener: socket.socket, options: Any) -> None:
        from hypercorn.config import Config

        grace: float = options["shutdown_grace"]
        config = Config()
        config.bind = [f"fd://{listener.detach()}"]  # hypercorn owns the socket from here
        config.graceful_timeout = grace
        config.accesslog = logging.getLogger("django.server")  # Django's request lines
        config.access_log_format = '"%(m)s %(Uq)s HTTP/%(H)s" %(s)s %(b)s'
        config.errorlog = logging.getLogger("hypercorn.error")
        worker_class = options["worker_class"]
        stop = self.stop_request
        anyio.run(_serve, application, config, worker_class, stop, grace, backend=worker_class)

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stop_request.request(GOING_AWAY)

    def _serve_and_watch(self, options: dict[str, Any]) -> None:
        """The child process: serve in a thread, watch files here, stop gracefully."""
        reloader = autoreload.get_reloader()
        reload_logger.info("Watching for file changes with %s", type(reloader).__name__)

        def notify_file_changed(path: Path) -> None:
            # Django's BaseReloader.notify_file_changed, with a graceful stop first.
            results = autoreload.file_changed.send(sender=reloader, file_path=path)
            if any(handled for _, handled in results):  # a template: no restart needed
                return
            reload_logger.info("%s changed, reloading.", path)
            self._stop_server(SERVICE_RESTART, options)
            sys.exit(RELOAD_STATUS)

        def interrupt(signum: int, frame: FrameType | None) -> None:
            # Once, as Ctrl-C under Django's runserver: it ends the watching below.
            # Signals that follow (a terminal's SIGINT and the first process's SIGTERM
            # come together) only ask again: they must not interrupt the stop.
            _set_stop_signals(self._request_stop)
            self.stop_request.request(GOING_AWAY)
            raise KeyboardInterrupt

        reloader.notify_file_changed = notify_file_changed
        _set_stop_signals(interrupt)
        try:
            autoreload.start_django(reloader, self.inner_run, **options)
        except KeyboardInterrupt:
            self._stop_server(GOING_AWAY, options)

    def _stop_server(self, code: int, options: dict[str, Any]) -> None:
        """Ask the server thread to close its connections with ``code``; wait, bounded."""
        self.stop_request.request(code)
        if self.server_thread is not None:
            # The grace, hypercorn's graceful timeout and achannels' bounded cleanup.
            self.server_thread.join(2 * options["shutdown_grace"] + 10.0)


class StopRequest:
    """A stop asked for from any thread or signal handler, with the close code to use.

    Made for signal handlers that raise ``KeyboardInterrupt`` wherever the main thread
    is: a request is a byte written to a pipe (one system call, which no exception can
    cut in half, as it can cut a ``threading.Event.set()`` between setting the flag
    and waking the waiter), and every request writes, so that a request an exception
    stopped early is completed by the handler's own.
    """

    def __init__(self) -> None:
        self.code: int | None = None
        # Open for the life of the process: an abandoned waiter may still read.
        self._read_fd, self._write_fd = os.pipe()

    def request(self, code: int) -> None:
        """Ask for a stop with ``code`` (the first request's code wins)."""
        if self.code is None:
            self.code = code
        os.write(self._write_fd, b"\0")

    def is_set(self) -> bool:
        """Whether a stop was requested."""
        return self.code is not None

    async def wait(self) -> int:
        """Wait until a stop is requested; return its close code.

        Waits in a worker thread of its own; cancelling it abandons that thread.
        """
        await anyio.to_thread.run_sync(
            os.read, self._read_fd, 1, abandon_on_cancel=True, limiter=anyio.CapacityLimiter(1)
        )
        return self.code or GOING_AWAY


async def _serve(
    application: ASGIApp, config: Any, worker_class: str, stop: StopRequest, grace: float
) -> None:
    connections = Connections()
    # Every achannels connection served from here also registers with ``connections``.
    server_connections.set(connections)

    async def shutdown_trigger() -> None:
        code = await stop.wait()
        await connections.close_all(code=code, grace=grace)

    hypercorn_serve: Any = importlib.import_module(f"hypercorn.{worker_class}").serve
    await hypercorn_serve(application, config, shutdown_trigger=shutdown_trigger)


def _restart_on_reload() -> int:
    """The first process: run the serving child again each time it exits with status 3."""
    environ = {**os.environ, autoreload.DJANGO_AUTORELOAD_ENV: "true"}
    argv = autoreload.get_child_arguments()
    child = _Child()
    _set_stop_signals(child.stop)
    while not child.stopping:
        status = child.run(argv, environ)
        if status != RELOAD_STATUS:
            return max(status, 0)
    return 0


class _Child:
    """The serving child process, which a stop signal reaches through the first one."""

    def __init__(self) -> None:
        self.stopping = False
        self._process: subprocess.Popen[bytes] | None = None

    def run(self, argv: list[str], environ: dict[str, str]) -> int:
        """Start the child and wait for it to exit; return its status."""
        self._process = subprocess.Popen(argv, env=environ, close_fds=False)
        return self._process.wait()

    def stop(self, signum: int, frame: FrameType | None) -> None:
        """A signal handler: SIGTERM the child the first time, kill it the second.

        A Ctrl-C in a terminal reaches the child too; a second stop signal is harmless
        there.
        """
        process = self._process
        if self.stopping and process is not None:
            process.kill()
        elif process is not None:
            process.send_signal(signal.SIGTERM)
        self.stopping = True


def _set_stop_signals(handler: _SignalHandler) -> None:
    for signum in _STOP_SIGNALS:
        signal.signal(signum, handler)


@contextmanager
def _stop_signals_call(handler: _SignalHandler) -> Iterator[None]:
    """Handle SIGINT and SIGTERM with ``handler`` inside the block, then restore."""
    saved = [signal.getsignal(signum) for signum in _STOP_SIGNALS]
    _set_stop_signals(handler)
    try:
        yield
    finally:
        for signum, handler_before in zip(_STOP_SIGNALS, saved, strict=True):
            signal.signal(signum, handler_before)
