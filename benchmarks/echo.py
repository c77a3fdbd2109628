"""The echo benchmark: what achannels costs per WebSocket message, next to a raw ASGI app.

    python benchmarks/echo.py                 # 3 servers x 3 apps, 3 repeats of 5 s
    python benchmarks/echo.py --quick         # one short round, under a minute
    python benchmarks/echo.py --servers uvicorn --apps raw,achannels --repeats 5

For each server (hypercorn's trio and asyncio workers, uvicorn) and each app of
``benchmarks/apps.py`` (raw ASGI, achannels function consumer, achannels
``AsyncWebsocketConsumer``, Channels ``AsyncWebsocketConsumer`` when installed), the
app is served by a fresh server subprocess on a free 127.0.0.1 port and driven by
the ping-pong load client (``benchmarks/wsload.py``) in another process: N
connections, each sending a small text frame and waiting for its echo, for a fixed
time after a warm-up. The apps of
one server run alternately, one round per repeat (order reversed every other round),
so each ratio to raw compares runs made side by side; the table shows medians.

Columns: messages/s; % of raw (median of the per-round ratios, with their range);
round-trip p50/p99; server CPU per message (µs, from /proc, warm-up included), what
the app adds over raw, and raw's CPU per message over the app's (the throughput
ratio a saturated server would show; it holds up better than messages/s when other
processes compete for the CPU); how busy the server process was (near 100% means it,
not the client, was the bottleneck; well below means the machine was not quiet and
messages/s is unreliable); how busy the load client was (its CPU over wall time: well
below 100% means it was not the bottleneck). On two or more cores the server is pinned to
CPU 0 and the client to CPU 1 (``--no-pin`` to leave them to the scheduler).

Every server subprocess is stopped (SIGTERM, then SIGKILL) whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVERS = ("hypercorn-trio", "hypercorn-asyncio", "uvicorn")
APPS = ("raw", "achannels", "achannels_class", "channels")
#: Channels runs on asyncio only.
UNSUPPORTED = {("hypercorn-trio", "channels")}


@dataclass(frozen=True)
class Run:
    server: str
    app: str
    round: int
    msgs_per_s: float
    p50_us: float
    p99_us: float
    server_cpu_us_per_msg: float | None
    server_busy: float | None
    client_busy: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float | None:
    """Return user+system CPU seconds of ``pid`` (Linux), or None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pin(pid: int, cpu: int, enabled: bool) -> None:
    if enabled and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(pid, {cpu})


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        # start_new_session made the server its own process group: ours to kill.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


@contextlib.contextmanager
def running_server(server: str, app: str, *, pin: bool) -> Iterator[tuple[int, int]]:
    """Serve ``app`` with ``server`` in a subprocess; yield (port, pid); always stop it."""
    port = _free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, str(HERE / "serve.py"), server, app, "--port", str(port)],
            cwd=ROOT,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        try:
            _pin(process.pid, 0, pin)
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(
                        f"{server}/{app} did not start:\n{log.read().decode(errors='replace')}"
                    )
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    time.sleep(0.05)
            yield port, process.pid
        finally:
            _stop(process)


def measure(server: str, app: str, round_: int, args: argparse.Namespace) -> Run:
    """Run the load client once against a fresh server."""
    with running_server(server, app, pin=args.pin) as (port, pid):
        command = [
            sys.executable,
            str(HERE / "wsload.py"),
            f"--port={port}",
            f"--connections={args.connections}",
            f"--duration={args.duration}",
            f"--warmup={args.warmup}",
            f"--size={args.size}",
        ]
        cpu_before = _cpu_seconds(pid)
        started = time.monotonic()
        client = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE)
        try:
            _pin(client.pid, 1, args.pin)
            out, _ = client.communicate(timeout=args.duration + args.warmup + 60)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        wall = time.monotonic() - started
        cpu_after = _cpu_seconds(pid)
        if client.returncode != 0:
            raise RuntimeError(f"load client failed against {server}/{app}")
    result = json.loads(out)
    cpu_per_msg = busy = None
    if cpu_before is not None and cpu_after is not None and result["total_messages"]:
        cpu_per_msg = (cpu_after - cpu_before) / result["total_messages"] * 1e6
        busy = (cpu_after - cpu_before) / wall
    return Run(
        server,
        app,
        round_,
        result["msgs_per_s"],
        result["p50_us"],
        result["p99_us"],
        cpu_per_msg,
        busy,
        result["client_cpu_s"] / wall,
    )


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def table(runs: list[Run], servers: list[str], apps: list[str]) -> str:
    """Return the Markdown table of medians per server and app."""
    lines = [
        "| server | app | msgs/s | % of raw (range) | p50 µs | p99 µs "
        "| server CPU µs/msg | + µs/msg vs raw | % of raw by CPU | server busy | client busy |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for server in servers:
        raw = {r.round: r for r in runs if r.server == server and r.app == "raw"}
        for app in apps:
            mine = [r for r in runs if r.server == server and r.app == app]
            if not mine:
                continue
            ratios = [r.msgs_per_s / raw[r.round].msgs_per_s for r in mine if r.round in raw]
            added = [
                r.server_cpu_us_per_msg - raw[r.round].server_cpu_us_per_msg
                for r in mine
                if r.round in raw
                and r.server_cpu_us_per_msg is not None
                and raw[r.round].server_cpu_us_per_msg is not None
            ]
            cpu_ratios = [
                raw[r.round].server_cpu_us_per_msg / r.server_cpu_us_per_msg
                for r in mine
                if r.round in raw
                and r.server_cpu_us_per_msg
                and raw[r.round].server_cpu_us_per_msg is not None
            ]
            ratio = cpu_ratio = "-"
            if cpu_ratios and app != "raw":
                cpu_ratio = f"{statistics.median(cpu_ratios):.0%}"
            if ratios and app != "raw":
                ratio = f"{statistics.median(ratios):.0%}"
                if len(ratios) > 1:
                    ratio += f" ({min(ratios):.0%}-{max(ratios):.0%})"
            lines.append(
                f"| {server} | {app} "
                f"| {statistics.median(r.msgs_per_s for r in mine):,.0f} | {ratio} "
                f"| {statistics.median(r.p50_us for r in mine):.0f} "
                f"| {statistics.median(r.p99_us for r in mine):.0f} "
                f"| {_fmt(_median([r.server_cpu_us_per_msg for r in mine]), '.1f')} "
                f"| {'-' if app == 'raw' else _fmt(_median(list(added)), '+.1f')} "
                f"| {cpu_ratio} "
                f"| {_fmt(_median([r.server_busy for r in mine]), '.0%')} "
                f"| {_fmt(_median([r.client_busy for r in mine]), '.0%')} |"
            )
    return "\n".join(lines)


def _versions() -> str:
    names = ("achannels", "anyio", "trio", "hypercorn", "uvicorn", "websockets", "channels")
    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return f"Python {platform.python_version()}, {os.cpu_count()} CPUs; " + ", ".join(found)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per server")
    parser.add_argument("--size", type=int, default=16, help="payload bytes (at most 125)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated (raw is added)")
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s: under a minute")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="no CPU pinning")
    parser.add_argument("--json", metavar="FILE", help="also write every run to FILE")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.repeats = 2.0, 0.5, 1
    args.servers = [s for s in args.servers.split(",") if s]
    args.apps = ["raw"] + [a for a in args.apps.split(",") if a and a != "raw"]
    for name in args.servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}; choose from {', '.join(SERVERS)}")
    for name in args.apps:
        if name not in APPS:
            parser.error(f"unknown app {name!r}; choose from {', '.join(APPS)}")
    return args


def _available_apps(wanted: list[str]) -> list[str]:
    probe = subprocess.run(
        [sys.executable, "-c", "from benchmarks.apps import AVAILABLE; print(*AVAILABLE)"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    available = probe.stdout.split()
    for name in wanted:
        if name not in available:
            print(f"skipping {name}: not installed", file=sys.stderr)
    return [name for name in wanted if name in available]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every `finally` stops its server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    apps = _available_apps(args.apps)
    runs: list[Run] = []
    started = time.monotonic()
    for server in args.servers:
        server_apps = [a for a in apps if (server, a) not in UNSUPPORTED]
        for round_ in range(args.repeats):
            order = server_apps if round_ % 2 == 0 else server_apps[::-1]
            for app in order:
                run = measure(server, app, round_, args)
                runs.append(run)
                print(
                    f"{server:17} {app:9} round {round_ + 1}: {run.msgs_per_s:9,.0f} msgs/s"
                    f"  p50 {run.p50_us:6.0f} µs  p99 {run.p99_us:6.0f} µs"
                    f"  server {_fmt(run.server_cpu_us_per_msg, '5.1f')} µs/msg"
                    f" busy {_fmt(run.server_busy, '.0%')}"
                    f"  client busy {run.client_busy:.0%}",
                    file=sys.stderr,
                    flush=True,
                )
    print(
        f"\nEcho ping-pong, {args.connections} connections x {args.duration:g} s "
        f"(+{args.warmup:g} s warm-up), {args.size}-byte text frames, "
        f"median of {args.repeats} round(s); {_versions()}; "
        f"{time.monotonic() - started:.0f} s in all.\n"
    )
    print(table(runs, args.servers, apps))
    busy = [r.server_busy for r in runs if r.server_busy is not None]
    if busy and min(busy) < 0.85:
        print(
            f"\nWarning: a server was only {min(busy):.0%} busy in some run: other processes"
            " took CPU time, so messages/s is noisy; trust the CPU columns more."
        )
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in runs], indent=1))


if __name__ == "__main__":
    main()
