"""Real servers in subprocesses on 127.0.0.1, for the end-to-end tests.

Each server runs ``python -m <server> ...`` from the repository root with its
stdout and stderr sent to a log file (a file, not a pipe, so a chatty server never
blocks on a full pipe); :meth:`Server.read_output` returns it for failure reports.
Starting waits, bounded, until the port accepts connections; stopping sends
SIGTERM and waits, bounded, then kills.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "ECHO_APP",
    "HYPERCORN",
    "PLAIN_ASGI_APP",
    "SERVERS",
    "SERVERS_USED",
    "Server",
    "ServerPool",
    "free_port",
    "start_server",
    "use_server",
]

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
ECHO_APP = "examples.echo.app:app"
PLAIN_ASGI_APP = "examples.plain_asgi.app:app"

#: How long a server may take to start listening (cold imports on a busy 2-core box).
READY_WITHIN = 20.0
#: How long a server may take to exit after SIGTERM before it is killed.
STOP_WITHIN = 10.0

HYPERCORN = ("hypercorn-trio", "hypercorn-asyncio")
SERVERS = (*HYPERCORN, "uvicorn")


def server_argv(kind: str, app: str, port: int, options: Sequence[str] = ()) -> list[str]:
    """Return the command line that serves ``app`` on ``port`` with server ``kind``."""
    bind = f"{HOST}:{port}"
    if kind.startswith("hypercorn-"):
        worker = kind.removeprefix("hypercorn-")
        return [sys.executable, "-m", "hypercorn", "-k", worker, "-b", bind, *options, app]
    if kind == "uvicorn":
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--host",
            HOST,
            "--port",
            str(port),
            "--lifespan",
            "on",
            *options,
            app,
        ]
    if kind.startswith("achannels-"):
        worker = kind.removeprefix("achannels-")
        return [sys.executable, "-m", "achannels", "serve", app, "-k", worker, "-b", bind, *options]
    raise ValueError(f"unknown server kind {kind!r}")


def free_port() -> int:
    """Return a port that was free a moment ago (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """A server subprocess listening on ``127.0.0.1:port``."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    output: Path
    argv: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The base URL (``http://``; WebSocket clients upgrade from it)."""
        return f"http://{HOST}:{self.port}"

    def read_output(self) -> str:
        """Return what the server wrote to stdout and stderr so far."""
        try:
            return self.output.read_text(errors="replace")
        except OSError as exc:
            return f"<cannot read {self.output}: {exc}>"

    def describe(self) -> str:
        """Return the command, the exit status and the output, for a failure report."""
        status = self.process.poll()
        state = "still running" if status is None else f"exited with {status}"
        return f"$ {' '.join(self.argv)}\n({state})\n{self.read_output()}"

    def check_running(self) -> None:
        """Raise ``RuntimeError`` with the server's output if it has exited."""
        if self.process.poll() is not None:
            raise RuntimeError(f"server {self.name} is not running:\n{self.describe()}")

    def terminate(self) -> None:
        """Send SIGTERM if the process is still running."""
        if self.process.poll() is None:
            self.process.terminate()

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds for the process to exit; return its status.

        Raises:
            subprocess.TimeoutExpired: it is still running.
        """
        return self.process.wait(timeout)

    def stop(self, timeout: float = STOP_WITHIN) -> int:
        """Terminate, wait up to ``timeout`` seconds, then kill; return the exit status."""
        self.terminate()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(STOP_WITHIN)


def start_server(
    kind: str,
    app: str,
    *,
    output_dir: Path,
    options: Sequence[str] = (),
    ready_within: float = READY_WITHIN,
) -> Server:
    """Start ``app`` under server ``kind`` on a free port; return once it listens.

    Raises:
        RuntimeError: the server exited, or did not listen within ``ready_within``
            seconds (it is stopped first); the message holds its output.
    """
    port = free_port()
    argv = server_argv(kind, app, port, options)
    output = output_dir / f"{kind}-{port}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO, env=env
        )
    server = Server(kind, port, process, output, argv)
    try:
        _wait_listening(server, ready_within)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_listening(server: Server, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        server.check_running()
        try:
            with socket.create_connection((HOST, server.port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"server {server.name} did not listen within {within} s:\n{server.describe()}"
                ) from None
            time.sleep(0.05)


#: The servers a test used, in its item's stash, for the failure report.
SERVERS_USED = pytest.StashKey[list[Server]]()


def use_server(request: pytest.FixtureRequest, server: Server) -> Server:
    """Remember that the running test uses ``server``; return it."""
    request.node.stash.setdefault(SERVERS_USED, []).append(server)
    return server


class ServerPool:
    """Servers started on first use and shared by every test until :meth:`close`."""

    def __init__(self, output_dir: Path) -> None:
        self._output_dir = output_dir
        self._servers: dict[tuple[str, str, tuple[tuple[str, str], ...]], Server] = {}

    def get(self, kind: str, app: str, *, env: Mapping[str, str] | None = None) -> Server:
        """Return the running ``kind`` server for ``app``, starting it if needed.

        ``env`` adds environment variables for the server process; each distinct
        ``env`` gets a server of its own.
        """
        key = (kind, app, tuple(sorted((env or {}).items())))
        server = self._servers.get(key)
        if server is None:
            with pytest.MonkeyPatch.context() as patch:
                for name, value in (env or {}).items():
                    patch.setenv(name, value)
                server = start_server(kind, app, output_dir=self._output_dir)
            self._servers[key] = server
        server.check_running()
        return server

    def close(self) -> None:
        """Stop every server: SIGTERM to all first, then wait for each (bounded)."""
        servers = list(self._servers.values())
        self._servers.clear()
        for server in servers:
            server.terminate()
        for server in servers:
            server.stop()
