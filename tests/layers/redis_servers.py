"""Throwaway Redis processes on 127.0.0.1 for the channel-layer tests.

Everything here is synchronous: plain :mod:`subprocess` calls, no event loop. Each
server runs ``redis-server`` on a free loopback port, in a temporary directory of its
own, with ``--save "" --appendonly no`` so nothing persists, and its stdout and stderr
(Redis logs to stdout) in ``output.log`` there; :meth:`RedisServer.describe` returns
the tail of that log for failure reports. Administrative queries go through
``redis-cli`` subprocesses (:func:`redis_cli`), never a hand-written protocol client.

* :class:`RedisServer`: one server (or, with ``sentinel=True``, one Sentinel).
* :class:`RedisCluster`: N masters joined by ``redis-cli --cluster create``.
* :class:`RedisSentinelSetup`: a primary, one replica and three Sentinels.

Each waits, bounded, until it is ready, and raises :class:`RedisSetupError` (with the
logs) if it is not; each is a context manager that stops its processes and removes
its directories on exit.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "CLUSTER_SLOTS",
    "HOST",
    "MASTER_NAME",
    "RedisCluster",
    "RedisSentinelSetup",
    "RedisServer",
    "RedisSetupError",
    "free_port",
    "info",
    "redis_available",
    "redis_cli",
    "wait_until",
]

HOST = "127.0.0.1"
#: How long a server may take to answer PING after it was started.
READY_WITHIN = 10.0
#: How long a server may take to exit after SIGTERM before it is killed.
STOP_WITHIN = 5.0
#: How long one ``redis-cli`` call may take.
CLI_TIMEOUT = 10.0
#: How long a cluster or a Sentinel group may take to agree.
SETTLE_WITHIN = 20.0
#: A cluster node also listens on its port plus this, for the cluster bus.
CLUSTER_BUS_OFFSET = 10000
CLUSTER_SLOTS = 16384
MASTER_NAME = "mymaster"
#: Options every server gets: nothing persists.
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")
#: Start a full sync at once, not after the default 5 s wait for more replicas.
QUICK_SYNC = ("--repl-diskless-sync-delay", "0")
LOG_TAIL_LINES = 40
POLL_INTERVAL = 0.05


class RedisSetupError(RuntimeError):
    """A Redis process did not start, did not answer, or did not reach the wanted state."""


def redis_available() -> bool:
    """Return whether ``redis-server`` and ``redis-cli`` are on ``PATH``."""
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


def free_port(*, cluster_bus: bool = False) -> int:
    """Return a loopback port that was free a moment ago (the kernel's pick for port 0).

    With ``cluster_bus=True`` the port plus 10000 (the cluster bus) is free as well.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((HOST, 0))
            port: int = probe.getsockname()[1]
        if not cluster_bus:
            return port
        bus = port + CLUSTER_BUS_OFFSET
        if bus <= 65535 and _port_is_free(bus):
            return port


def redis_cli(
    port: int, *args: str, timeout: float = CLI_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``redis-cli -e -h 127.0.0.1 -p PORT ARGS...``; an error reply exits non-zero."""
    argv = ["redis-cli", "-e", "-h", HOST, "-p", str(port), *args]
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def info(text: str) -> dict[str, str]:
    """Parse the ``key:value`` lines of an ``INFO`` or ``CLUSTER INFO`` reply."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep and not key.startswith("#"):
            fields[key] = value
    return fields


def wait_until(
    check: Callable[[], bool], timeout: float, what: str, describe: Callable[[], str]
) -> None:
    """Poll ``check`` until it returns true; raise :class:`RedisSetupError` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RedisSetupError(f"timed out after {timeout:g}s waiting for {what}\n{describe()}")
        time.sleep(POLL_INTERVAL)


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port``, in a temporary directory.

    ``args`` are extra command-line options; ``config`` is written to ``redis.conf``
    in the directory and passed first (Sentinel needs a config file it can rewrite);
    ``sentinel=True`` runs it as a Sentinel. Nothing runs until :meth:`start`.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        name: str = "redis",
        args: Sequence[str] = (),
        config: str | None = None,
        sentinel: bool = False,
        directory: Path | None = None,
    ) -> None:
        self.port = free_port() if port is None else port
        self.name = name
        self.args = list(args)
        self.config = config
        self.sentinel = sentinel
        self._own_directory = directory is None
        self.directory = (
            Path(tempfile.mkdtemp(prefix=f"{name}-")) if directory is None else directory
        )
        self.process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<RedisServer {self.name} {self.url}>"

    @property
    def url(self) -> str:
        """The server's URL, ``redis://127.0.0.1:PORT``."""
        return f"redis://{HOST}:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        """The ``(host, port)`` pair."""
        return (HOST, self.port)

    @property
    def log_path(self) -> Path:
        """The file that receives the server's stdout and stderr (its log)."""
        return self.directory / "output.log"

    def argv(self) -> list[str]:
        """Return the ``redis-server`` command line."""
        first = [str(self._write_config())] if self.config is not None else []
        mode = ["--sentinel"] if self.sentinel else []
        options = ["--port", str(self.port), "--bind", HOST, "--dir", str(self.directory)]
        return ["redis-server", *first, *mode, *options, *NO_PERSISTENCE, *self.args]

    def _write_config(self) -> Path:
        path = self.directory / "redis.conf"
        if not path.exists():  # a Sentinel rewrites it; a restart keeps what it learned
            path.write_text(self.config or "")
        return path

    def is_running(self) -> bool:
        """Return whether the process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = READY_WITHIN) -> Self:
        """Start the process and wait until it answers PING; return ``self``."""
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> None:
        """Start the process without waiting for it (then call :meth:`wait_ready`)."""
        if self.is_running():
            raise RedisSetupError(f"{self!r} is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def ping(self) -> bool:
        """Return whether the server answers PING with PONG right now."""
        try:
            reply = redis_cli(self.port, "PING", timeout=2.0)
        except subprocess.TimeoutExpired:
            return False
        return reply.returncode == 0 and reply.stdout.strip() == "PONG"

    def wait_ready(self, timeout: float = READY_WITHIN) -> None:
        """Wait until the server answers PING; raise :class:`RedisSetupError` if it died."""
        wait_until(self._ready, timeout, f"{self.name} to answer PING", self.describe)

    def _ready(self) -> bool:
        if not self.is_running():
            raise RedisSetupError(f"{self.name} is not running\n{self.describe()}")
        return self.ping()

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT) -> str:
        """Run one command through ``redis-cli``; return its output, raise on an error reply."""
        reply = redis_cli(self.port, *args, timeout=timeout)
        if reply.returncode != 0:
            output = (reply.stdout + reply.stderr).strip()
            raise RedisSetupError(f"{self.name}: {' '.join(args)} failed: {output}")
        return reply.stdout

    def info(self, section: str = "") -> dict[str, str]:
        """Return ``INFO [section]`` as a dict."""
        return info(self.cli("INFO", *([section] if section else [])))

    def stop(self, timeout: float = STOP_WITHIN) -> None:
        """Send SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Keeps the directory."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Send SIGKILL and reap the process. Keeps the directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_WITHIN)

    def restart(self, timeout: float = READY_WITHIN) -> Self:
        """Stop (if running) and start again on the same port; wait until it answers PING."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop the process and remove the directory if this object created it."""
        self.stop()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def describe(self, lines: int = LOG_TAIL_LINES) -> str:
        """Return the command, the process state and the log's last ``lines`` lines."""
        if self.process is None:
            state = "never started"
        else:
            status = self.process.poll()
            state = "running" if status is None else f"exited with {status}"
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError as exc:
            tail = [f"<cannot read {self.log_path}: {exc}>"]
        return "\n".join([f"== {self.name} on port {self.port} ({state})", *tail])

    def __enter__(self) -> Self:
        return self if self.is_running() else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Group(ABC):
    """Some servers started and stopped together."""

    @abstractmethod
    def servers(self) -> list[RedisServer]:
        """Return every server of the group."""

    @abstractmethod
    def start(self) -> Self:
        """Start every server and wait until the group is ready."""

    def stop(self) -> None:
        """Stop every process and remove every directory."""
        for server in self.servers():
            server.close()

    def __repr__(self) -> str:
        ports = ", ".join(str(server.port) for server in self.servers())
        return f"<{type(self).__name__} on ports {ports}>"

    def describe(self) -> str:
        """Return every server's :meth:`RedisServer.describe`."""
        return "\n".join(server.describe() for server in self.servers())

    def _start_all(self, servers: Sequence[RedisServer]) -> None:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_ready()

    def _start_or_stop(self, start: Callable[[], None]) -> Self:
        try:
            start()
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RedisCluster(_Group):
    """``size`` (at least 3) cluster masters without replicas, sharing all 16384 slots."""

    def __init__(self, size: int = 3) -> None:
        if size < 3:
            raise ValueError("a Redis cluster needs at least 3 masters")
        options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        options += ["--cluster-node-timeout", "2000"]
        self.nodes = [
            RedisServer(free_port(cluster_bus=True), name=f"cluster-node-{i}", args=options)
            for i in range(size)
        ]

    def servers(self) -> list[RedisServer]:
        return list(self.nodes)

    @property
    def url(self) -> str:
        """The first node's URL (a cluster client discovers the others from it)."""
        return self.nodes[0].url

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Every node's ``(host, port)``."""
        return [node.address for node in self.nodes]

    def start(self, timeout: float = SETTLE_WITHIN) -> Self:
        """Start the nodes, create the cluster, wait until every node reports it ok."""
        return self._start_or_stop(lambda: self._start(timeout))

    def _start(self, timeout: float) -> None:
        self._start_all(self.nodes)
        self._create()
        wait_until(self.is_ok, timeout, "cluster_state:ok on every node", self.describe)

    def _create(self) -> None:
        hosts = [f"{HOST}:{node.port}" for node in self.nodes]
        args = ["--cluster", "create", *hosts, "--cluster-replicas", "0", "--cluster-yes"]
        self.nodes[0].cli(*args, timeout=SETTLE_WITHIN)

    def is_ok(self) -> bool:
        """Return whether every node reports ``cluster_state:ok`` and all slots assigned."""
        return all(self._node_ok(node) for node in self.nodes)

    def _node_ok(self, node: RedisServer) -> bool:
        state = info(node.cli("CLUSTER", "INFO"))
        return (
            state.get("cluster_state") == "ok"
            and state.get("cluster_slots_assigned") == str(CLUSTER_SLOTS)
            and state.get("cluster_known_nodes") == str(len(self.nodes))
        )


def _sentinel_config(primary_port: int) -> str:
    return "".join(
        f"{line}\n"
        for line in [
            "sentinel resolve-hostnames no",
            f"sentinel monitor {MASTER_NAME} {HOST} {primary_port} 2",
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000",
            f"sentinel failover-timeout {MASTER_NAME} 5000",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]
    )


def _records(text: str) -> list[dict[str, str]]:
    """Split redis-cli's flat output of a list of maps (``SENTINEL REPLICAS``) into dicts."""
    lines = text.splitlines()
    records: list[dict[str, str]] = []
    for key, value in zip(lines[::2], lines[1::2], strict=False):
        if key == "name":
            records.append({})
        if records:
            records[-1][key] = value
    return records


class RedisSentinelSetup(_Group):
    """A primary, one replica and three Sentinels monitoring them as ``mymaster``.

    After :meth:`failover`, :attr:`primary` is the promoted server and :attr:`replica`
    the former primary.
    """

    master_name = MASTER_NAME

    def __init__(self, sentinels: int = 3) -> None:
        self.primary = RedisServer(name="primary", args=QUICK_SYNC)
        replicaof = ["--replicaof", HOST, str(self.primary.port)]
        self.replica = RedisServer(name="replica", args=[*QUICK_SYNC, *replicaof])
        config = _sentinel_config(self.primary.port)
        self.sentinel_servers = [
            RedisServer(name=f"sentinel-{i}", config=config, sentinel=True)
            for i in range(sentinels)
        ]

    def servers(self) -> list[RedisServer]:
        return [self.primary, self.replica, *self.sentinel_servers]

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """Every Sentinel's ``(host, port)``."""
        return [sentinel.address for sentinel in self.sentinel_servers]

    def start(self, timeout: float = SETTLE_WITHIN) -> Self:
        """Start everything; wait until the replica is in sync and the Sentinels agree."""
        return self._start_or_stop(lambda: self._start(timeout))

    def _start(self, timeout: float) -> None:
        self._start_all([self.primary, self.replica])
        wait_until(self.replica_in_sync, timeout, "the replica to sync", self.describe)
        self._start_all(self.sentinel_servers)
        wait_until(self.sentinels_ready, timeout, "the Sentinels to agree", self.describe)

    def replica_in_sync(self) -> bool:
        """Return whether the replica reports ``master_link_status:up``."""
        return self.replica.info("replication").get("master_link_status") == "up"

    def master_port(self, sentinel: RedisServer) -> int | None:
        """Return the master's port according to ``sentinel`` (None if it has none)."""
        reply = sentinel.cli("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME).split()
        return int(reply[1]) if len(reply) == 2 else None

    def sentinels_ready(self) -> bool:
        """Return whether every Sentinel knows the primary, the replica and its peers."""
        return all(self._sentinel_ready(sentinel) for sentinel in self.sentinel_servers)

    def _sentinel_ready(self, sentinel: RedisServer) -> bool:
        if self.master_port(sentinel) != self.primary.port:
            return False
        replicas = _records(sentinel.cli("SENTINEL", "REPLICAS", MASTER_NAME))
        peers = _records(sentinel.cli("SENTINEL", "SENTINELS", MASTER_NAME))
        replica = {"name": f"{HOST}:{self.replica.port}", "flags": "slave"}
        known = any(replica.items() <= record.items() for record in replicas)
        return known and len(peers) == len(self.sentinel_servers) - 1

    def wait_master(self, port: int, timeout: float = SETTLE_WITHIN) -> None:
        """Wait until every running Sentinel reports ``127.0.0.1:port`` as the master."""
        wait_until(
            lambda: all(
                self.master_port(s) == port for s in self.sentinel_servers if s.is_running()
            ),
            timeout,
            f"every Sentinel to report port {port} as master",
            self.describe,
        )

    def failover(self, timeout: float = SETTLE_WITHIN) -> RedisServer:
        """Run ``SENTINEL FAILOVER`` and wait until every Sentinel names the replica master.

        Returns the promoted server, which is then :attr:`primary`.
        """
        promoted = self.replica
        wait_until(self._request_failover, timeout, "SENTINEL FAILOVER to start", self.describe)
        self.wait_master(promoted.port, timeout)
        wait_until(self._promoted, timeout, "the replica to become master", self.describe)
        self.primary, self.replica = promoted, self.primary
        return promoted

    def _request_failover(self) -> bool:
        # -NOGOODSLAVE or -INPROG while the Sentinel's view settles: try again.
        first = self.sentinel_servers[0].port
        return redis_cli(first, "SENTINEL", "FAILOVER", MASTER_NAME).returncode == 0

    def _promoted(self) -> bool:
        return self.replica.info("replication").get("role") == "master"

    def kill_primary(self) -> RedisServer:
        """SIGKILL the primary (the Sentinels fail over after ~1 s); return it."""
        self.primary.kill()
        return self.primary
