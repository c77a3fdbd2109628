"""``python -m achannels serve`` and ``worker`` as a user meets them: real processes.

The help, the version and the errors for a wrong app path are checked on the
command's output; the servers are started as ``tests/e2e/servers.py`` starts them
(output in a file, bounded waits) and stopped with SIGTERM, which must end them with
status 0. The plain-hypercorn logging set-up is the one ``docs/deployment.md`` shows,
read from the page itself.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.e2e.servers import REPO, Server, start_server, use_server
from tests.layers.redis_fixtures import require_redis
from tests.layers.redis_servers import RedisServer

ECHO_APP = "examples.echo.app:app"
CHAT_APP = "examples.chat.app:app"
#: How long a command that does not serve may take (cold imports on a busy box).
COMMAND_WITHIN = 30.0
#: How long a server may take to log a line, or to answer.
WAIT = 10.0
#: The one line of the warning for a process-local layer under several workers.
SPLIT_WARNING = "uses InMemoryChannelLayer, which lives inside one process"


def run_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m achannels ARGS`` from the repository root; return what it did."""
    environment = dict(os.environ, COLUMNS="200", **(env or {}))
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), environment.get("PYTHONPATH")])
    )
    return subprocess.run(
        [sys.executable, "-m", "achannels", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=environment,
        timeout=COMMAND_WITHIN,
        check=False,
    )


# -- help, version, errors ------------------------------------------------------------


def test_serve_help_shows_every_option_with_its_default() -> None:
    done = run_command("serve", "--help")
    assert done.returncode == 0, done.stderr
    expected = {
        "--bind": "(default: 127.0.0.1:8000)",
        "--worker-class": "(default: trio)",
        "--workers": "(default: 1)",
        "--shutdown-close-code": "(default: 1001",
        "--shutdown-grace": "(default: 5.0)",
        "--log-level": "(default: info)",
    }
    options = re.split(r"\n  (?=-)", done.stdout.partition("options:")[2])
    described = {block.split()[0].rstrip(","): block for block in options if block.strip()}
    for option, default in expected.items():
        assert default in described[option], described[option]
    assert "module:app" in done.stdout  # what a bare module means


def test_worker_help_shows_the_defaults() -> None:
    done = run_command("worker", "--help")
    assert done.returncode == 0, done.stderr
    assert "(default: trio)" in done.stdout
    assert "(default: info)" in done.stdout
    assert "(default: all)" in done.stdout


@pytest.mark.parametrize("args", [["--version"], ["serve", "--version"]])
def test_version_is_one_line(args: list[str]) -> None:
    done = run_command(*args)
    assert done.returncode == 0, done.stderr
    achannels = importlib.metadata.version("achannels")
    hypercorn = importlib.metadata.version("hypercorn")
    assert done.stdout.startswith(f"achannels {achannels} (")
    assert f"hypercorn {hypercorn}" in done.stdout
    assert done.stdout.count("\n") == 1


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests.no_such_module:app", "no module named 'tests.no_such_module'"),
        ("no_such_package.app:app", "no module named 'no_such_package'"),
        ("examples.chat.app:nope", "module 'examples.chat.app' has no attribute 'nope'"),
        # A bare module means module:app, as in hypercorn.
        ("examples.chat", "module 'examples.chat' has no attribute 'app'"),
        ("examples.chat.app:ROOM", "examples.chat.app:ROOM is a str, not an ASGI app"),
        ("examples.chat.app:Counter", "is a class, not an ASGI app"),
        ("examples/chat/app.py", "expected 'module:attribute' with a dotted module path"),
    ],
)
def test_a_wrong_app_path_is_one_line_without_a_traceback(target: str, message: str) -> None:
    done = run_command("serve", target, "--bind", "127.0.0.1:1")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("python -m achannels serve: error: ")
    assert message in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


def test_an_import_error_inside_the_app_keeps_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text("import no_such_dependency_of_the_app\n")
    done = run_command("serve", "broken_app:app", env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "No module named 'no_such_dependency_of_the_app'" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["examples.chat.app:app"], "examples.chat.app:app has no @router.channel workers"),
        (["examples.echo.app:ROUTES"], "no attribute 'ROUTES'"),
        (["examples.plain_asgi.app:app"], "not an achannels.Router"),
        (["tests.apps.worker_app:app", "nope"], "no @router.channel worker for nope (known: jobs)"),
    ],
)
def test_worker_errors_are_one_line(args: list[str], message: str) -> None:
    done = run_command("worker", *args)
    assert done.returncode == 1
    assert done.stderr.startswith("python -m achannels worker: error: ")
    assert message in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr


# -- real runs ------------------------------------------------------------------------


def wait_for_output(server: Server, text: str, count: int = 1) -> str:
    """Wait (bounded) until ``text`` is in the server's output ``count`` times; return it."""
    deadline = time.monotonic() + WAIT
    while (output := server.read_output()).count(text) < count:
        server.check_running()
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} x {text!r} not logged within {WAIT} s:\n{output}")
        time.sleep(0.05)
    return output


def stop(server: Server) -> str:
    """SIGTERM the server, check that it exits with 0, and return its whole output."""
    server.process.send_signal(signal.SIGTERM)
    assert server.wait(WAIT + 5) == 0, server.describe()
    return server.read_output()


def refused_websocket(server: Server, path: str) -> int:
    """Open a WebSocket to a path with no route; return the HTTP status it got."""
    url = f"ws://127.0.0.1:{server.port}{path}"
    with pytest.raises(InvalidStatus) as refused, connect(url, open_timeout=WAIT):
        pass
    return refused.value.response.status_code


def echo_then_close_code(server: Server, path: str) -> int:
    """Echo a frame on ``path``, SIGTERM the server, and return the close code seen."""
    with connect(f"ws://127.0.0.1:{server.port}{path}", open_timeout=WAIT) as ws:
        ws.send('{"message": "hello"}')
        assert "hello" in str(ws.recv(timeout=WAIT))
        server.process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


class StartServer(Protocol):
    """The ``start`` fixture: serve ``app`` under server ``kind`` with extra options."""

    def __call__(self, kind: str, app: str, *options: str) -> Server: ...


@pytest.fixture
def start(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartServer]:
    """Return ``start(kind, app, *options)``; every server started is stopped afterwards."""
    started: list[Server] = []

    def start_one(kind: str, app: str, *options: str) -> Server:
        server = start_server(kind, app, output_dir=tmp_path, options=options)
        started.append(use_server(request, server))
        return server

    yield start_one
    for server in started:
        server.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("worker", ["trio", "asyncio"])
def test_serve_logs_running_on_once_and_info_lines_with_level_and_name(
    start: StartServer, worker: str
) -> None:
    # A bare module: examples.echo.app means examples.echo.app:app.
    server = start(f"achannels-{worker}", "examples.echo.app")
    assert refused_websocket(server, "/nowhere/") == 404
    wait_for_output(server, "[INFO] achannels: no WebSocket route for '/nowhere/'")
    output = stop(server)
    assert output.count("Running on") == 1, output
    assert f"[INFO] hypercorn.error: Running on http://127.0.0.1:{server.port}" in output


@pytest.mark.e2e
def test_log_level_warning_hides_info_lines(start: StartServer) -> None:
    server = start("achannels-trio", ECHO_APP, "--log-level", "WARNING")
    assert refused_websocket(server, "/nowhere/") == 404
    output = stop(server)
    assert "Running on" not in output
    assert "no WebSocket route" not in output


@pytest.mark.e2e
@pytest.mark.parametrize("worker", ["trio", "asyncio"])
def test_two_workers_on_the_memory_layer_warn_that_rooms_split(
    start: StartServer, worker: str
) -> None:
    server = start(f"achannels-{worker}", CHAT_APP, "--workers", "2")
    output = wait_for_output(server, "Running on", 2)  # once per worker process
    warning = [line for line in output.splitlines() if SPLIT_WARNING in line]
    assert len(warning) == 1, output
    assert "[WARNING] achannels.serve: examples.chat.app:app uses InMemoryChannelLayer" in output
    assert "RedisChannelLayer" in warning[0]
    # Both workers close their WebSockets with the shutdown code, and exit cleanly.
    assert echo_then_close_code(server, "/ws/chat/lobby/") == 1001
    assert server.wait(WAIT + 5) == 0, server.describe()


@pytest.fixture
def redis_chat(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A fresh Redis the chat demo picks up (``ACHANNELS_REDIS_URL``) in processes started here."""
    require_redis()
    with RedisServer(name="serve-cli") as redis:
        monkeypatch.setenv("ACHANNELS_REDIS_URL", redis.url)
        monkeypatch.setenv("ACHANNELS_REDIS_PREFIX", f"serve-cli-{secrets.token_hex(4)}:")
        yield redis


@pytest.mark.e2e
def test_two_workers_on_redis_do_not_warn(start: StartServer, redis_chat: RedisServer) -> None:
    server = start("achannels-trio", CHAT_APP, "--workers", "2")
    output = wait_for_output(server, "Running on", 2)
    assert echo_then_close_code(server, "/ws/chat/lobby/") == 1001
    assert server.wait(WAIT + 5) == 0, server.describe()
    assert SPLIT_WARNING not in server.read_output(), output


@pytest.mark.e2e
def test_the_worker_command_says_what_it_serves(tmp_path: Path) -> None:
    # Port 0: the worker listens nowhere, so start it by hand rather than wait for a port.
    env = dict(os.environ, ACHANNELS_WORKER_OUTPUT=str(tmp_path / "jobs.txt"))
    argv = [sys.executable, "-m", "achannels", "worker", "tests.apps.worker_app:app", "-k", "trio"]
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO, env=env
        )
    worker = Server("achannels-worker", 0, process, log, argv)
    try:
        wait_for_output(
            worker,
            "[INFO] achannels.worker: Serving channel(s) jobs on trio with InMemoryChannelLayer",
        )
        assert stop(worker).count("Serving channel(s)") == 1
    finally:
        worker.stop()


# -- plain hypercorn, with the logging set-up of docs/deployment.md -------------------


def documented_log_config() -> str:
    """Return the ``toml`` block of ``docs/deployment.md``'s logging section."""
    page = (REPO / "docs" / "deployment.md").read_text(encoding="utf-8")
    blocks: Sequence[str] = re.findall(r"```toml\n(.*?)```", page, flags=re.DOTALL)
    assert len(blocks) == 1, "docs/deployment.md should show one toml block: the log config"
    return blocks[0]


@pytest.mark.e2e
def test_the_documented_log_config_shows_level_and_name_under_hypercorn(
    start: StartServer, tmp_path: Path
) -> None:
    config = tmp_path / "logging.toml"
    config.write_text(documented_log_config(), encoding="utf-8")
    server = start("hypercorn-trio", ECHO_APP, "--log-config", f"toml:{config}")
    assert refused_websocket(server, "/nowhere/") == 404
    wait_for_output(server, "[INFO] achannels: no WebSocket route for '/nowhere/'")
    output = stop(server)
    assert output.count("Running on") == 1, output
    assert "[INFO] hypercorn.error: Running on" in output
