"""The Redis layer benchmark: achannels' RedisChannelLayer next to channels_redis, one Redis.

    python benchmarks/bench_redis.py                  # 3 rounds of every scenario
    python benchmarks/bench_redis.py --quick          # 1 short round, under 2 minutes
    python benchmarks/bench_redis.py --scenarios group --repeats 5

Three implementations, alternated in every round (order reversed every other round)
so each ratio compares runs made side by side: achannels on trio, achannels on
asyncio, and channels_redis 4.3 (asyncio only). achannels' layer is always owned
(``async with layer``, as ``Router(layer=...)``'s lifespan runs it). Every run gets
its own key prefix on the same Redis, and its keys are deleted after it.

Scenarios (``benchmarks/redis_apps/`` holds the scripts and apps):

- ``throughput``: one process; one task sends M messages to one channel while
  another receives them (msgs/s, first send to last receipt), to a process channel
  (``new_channel()``, how consumers are reached) and to a normal channel (a worker's).
- ``group``: ``group_send`` to 100 and 1,000 members held by two member processes
  (half each, one receiving task per channel), sent from a third; latency per
  ``group_send`` until every member has the message (p50/p99).
- ``fanout``: the chat app served by two hypercorn processes (one worker each, on two
  ports; achannels on the trio and the asyncio worker, Channels 4.3 on asyncio); K
  ``websockets`` clients in one room, half on each server; one sends, latency until
  all K have it (p50/p99).

Ratio: ours over theirs for throughput, theirs over ours for latency and CPU, so
above 1 means achannels is faster; the median of the per-round ratios, for trio /
asyncio. Ratios under the target (``--target``, 1.5) are marked ``*``. The CPU rows
(user+system time of the processes involved, Redis excluded) hold up better than
msgs/s and latency when other processes compete for the two cores.

Every subprocess runs in its own process group and is stopped (SIGTERM, then SIGKILL
of the whole group) whatever happens; the run ends by deleting every key it created
and checking that none is left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APPS = HERE / "redis_apps"
IMPLS = ("achannels-trio", "achannels-asyncio", "channels_redis")
#: implementation -> (layer, event loop)
RUNS_ON = {
    "achannels-trio": ("achannels", "trio"),
    "achannels-asyncio": ("achannels", "asyncio"),
    "channels_redis": ("channels_redis", "asyncio"),
}
CHAT_APPS = {"achannels": "benchmarks.redis_apps.chat_achannels:app",
             "channels_redis": "benchmarks.redis_apps.chat_channels:app"}  # fmt: skip
SCENARIOS = ("throughput", "group", "fanout")
THEIRS = "channels_redis"


@dataclass(frozen=True)
class Case:
    """One measured setting of a scenario, run once per implementation per round."""

    scenario: str
    label: str
    options: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class Run:
    case: str
    impl: str
    round: int
    values: dict[str, float]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool
    scale: float = 1.0  # divide the stored value by this to print it
    spec: str = ",.0f"


P50 = Metric("p50_us", "p50 ms", False, 1000.0, ".2f")
P99 = Metric("p99_us", "p99 ms", False, 1000.0, ".2f")
METRICS = {
    "throughput": (
        Metric("msgs_per_s", "msgs/s", True),
        Metric("cpu_us_per_msg", "CPU µs/msg", False, 1.0, ".0f"),
    ),
    "group": (P50, P99, Metric("cpu_us", "CPU ms/send (3 processes)", False, 1000.0, ".2f")),
    "fanout": (P50, P99, Metric("server_cpu_us", "server CPU ms/msg", False, 1000.0, ".2f")),
}


# -- subprocesses ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop ``process`` (SIGTERM, then SIGKILL) and kill whatever is left in its group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    # start_new_session made it a group leader: the group (its members, hypercorn's
    # worker) is ours to kill, even after the leader exited.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@contextlib.contextmanager
def _spawned(command: list[str], env: dict[str, str], log: IO[bytes]) -> Iterator[Any]:
    """Start ``command`` in its own process group; always stop the whole group."""
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        _stop(process)


def _env(prefix: str, args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["BENCH_REDIS_URL"] = args.redis
    env["BENCH_REDIS_PREFIX"] = prefix
    return env


def _read_log(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-4000:]


def _log_has(log: IO[bytes], text: bytes) -> bool:
    log.seek(0)
    return text in log.read()


def _run_json(command: list[str], env: dict[str, str], timeout: float) -> dict[str, float]:
    """Run a script that prints one JSON object; return it."""
    with tempfile.TemporaryFile() as log, _spawned(command, env, log) as process:
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"timed out: {' '.join(command)}\n{_read_log(log)}") from None
        if process.returncode != 0:
            raise RuntimeError(f"failed: {' '.join(command)}\n{_read_log(log)}")
        result: dict[str, float] = json.loads(out)
        return result


@contextlib.contextmanager
def _hypercorn(app: str, worker_class: str, env: dict[str, str]) -> Iterator[tuple[int, int]]:
    """Serve ``app`` with the hypercorn CLI (one worker process); yield (port, group id)."""
    port = _free_port()
    command = [
        sys.executable, "-m", "hypercorn", "--worker-class", worker_class, "--workers", "1",
        "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "2", "--log-level", "info", app,
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log, _spawned(command, env, log) as process:
        deadline = time.monotonic() + 30
        # The worker logs "Running on" once lifespan startup (the layer's owner) is done.
        while not _log_has(log, b"Running on"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"hypercorn {app} did not start:\n{_read_log(log)}")
            time.sleep(0.05)
        yield port, process.pid


# -- Redis -----------------------------------------------------------------------------


def _redis(args: argparse.Namespace) -> Any:
    import redis

    return redis.Redis.from_url(args.redis)


def _delete_keys(client: Any, pattern: str) -> int:
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            deleted += client.delete(*batch)
            batch = []
    if batch:
        deleted += client.delete(*batch)
    return deleted


# -- the scenarios ---------------------------------------------------------------------


def _driver(mode: str, impl: str, prefix: str, *options: str) -> list[str]:
    layer, backend = RUNS_ON[impl]
    return [
        sys.executable, str(APPS / "driver.py"), mode, f"--layer={layer}",
        f"--backend={backend}", f"--prefix={prefix}", *options,
    ]  # fmt: skip


def measure(case: Case, impl: str, prefix: str, args: argparse.Namespace) -> dict[str, float]:
    """Run ``case`` once for ``impl`` with keys under ``prefix``; return its numbers."""
    env = _env(prefix, args)
    opts = case.options
    if case.scenario == "throughput":
        command = _driver("throughput", impl, prefix, f"--channel={opts['channel']}",
                          f"--messages={args.messages}")  # fmt: skip
        return _run_json(command, env, timeout=300)
    if case.scenario == "group":
        command = _driver("group", impl, prefix, f"--members={opts['members']}",
                          f"--rounds={args.rounds}", f"--warmup={args.warmup}")  # fmt: skip
        return _run_json(command, env, timeout=300)
    layer, backend = RUNS_ON[impl]
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(_hypercorn(CHAT_APPS[layer], backend, env)) for _ in (1, 2)]
        command = [
            sys.executable, str(APPS / "fanout_client.py"),
            f"--ports={','.join(str(port) for port, _ in servers)}",
            f"--server-pgids={','.join(str(pgid) for _, pgid in servers)}",
            f"--clients={opts['clients']}", f"--rounds={args.fanout_rounds}",
            f"--warmup={args.warmup}",
        ]  # fmt: skip
        return _run_json(command, env, timeout=300)


def cases(args: argparse.Namespace) -> list[Case]:
    found: list[Case] = []
    if "throughput" in args.scenarios:
        found += [
            Case("throughput", "send/receive, process channel", {"channel": "process"}),
            Case("throughput", "send/receive, normal channel", {"channel": "normal"}),
        ]
    if "group" in args.scenarios:
        found += [
            Case("group", f"group_send to {n:,} members, 2 processes", {"members": n})
            for n in args.members
        ]
    if "fanout" in args.scenarios:
        found += [
            Case("fanout", f"fan-out to {k:,} WebSockets, 2 hypercorn workers", {"clients": k})
            for k in args.clients
        ]
    return found


# -- the table -------------------------------------------------------------------------


def _ratio(ours: Run, theirs: Run, metric: Metric) -> float | None:
    a, b = ours.values.get(metric.key), theirs.values.get(metric.key)
    if not a or not b:
        return None
    return a / b if metric.higher_is_better else b / a


def table(runs: list[Run], found: list[Case], impls: list[str], target: float) -> str:
    """Return the Markdown table: medians per implementation, median per-round ratios."""
    ours = [i for i in impls if i != THEIRS]
    header = ["scenario", *(i.replace("-", " ") for i in impls)]
    if THEIRS in impls and ours:
        header.append(f"ratio ({' / '.join(i.split('-')[1] for i in ours)})")
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for case in found:
        for metric in METRICS[case.scenario]:
            by_impl = {i: [r for r in runs if r.case == case.label and r.impl == i] for i in impls}
            cells = [f"{case.label}, {metric.label}"]
            for impl in impls:
                values = [r.values[metric.key] / metric.scale
                          for r in by_impl[impl] if metric.key in r.values]  # fmt: skip
                cells.append(format(statistics.median(values), metric.spec) if values else "-")
            if THEIRS in impls and ours:
                theirs = {r.round: r for r in by_impl[THEIRS]}
                shown = []
                for impl in ours:
                    pairs = [(r, theirs[r.round]) for r in by_impl[impl] if r.round in theirs]
                    ratios = [x for a, b in pairs if (x := _ratio(a, b, metric)) is not None]
                    if not ratios:
                        shown.append("-")
                        continue
                    ratio = statistics.median(ratios)
                    shown.append(f"{ratio:.2f}x" + ("*" if ratio < target else ""))
                cells.append(" / ".join(shown))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _versions(args: argparse.Namespace) -> str:
    names = ("achannels", "anyio", "trio", "coredis", "hypercorn", "websockets",
             "channels", "channels_redis", "redis")  # fmt: skip
    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    with contextlib.suppress(Exception):
        found.append(f"Redis server {_redis(args).info('server')['redis_version']}")
    return f"Python {platform.python_version()}, {os.cpu_count()} CPUs; " + ", ".join(found)


def _load() -> str:
    with contextlib.suppress(OSError):
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    return "n/a"


# -- main ------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every scenario")
    parser.add_argument("--messages", type=int, default=10_000, help="messages per throughput run")
    parser.add_argument("--members", type=_int_list, default=[100, 1000], help="group sizes")
    parser.add_argument("--rounds", type=int, default=200, help="group_sends per group run")
    parser.add_argument("--clients", type=_int_list, default=[100], help="fan-out room sizes")
    parser.add_argument("--fanout-rounds", type=int, default=100, help="messages per fan-out run")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured rounds first")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    parser.add_argument("--impls", default=",".join(IMPLS), help="comma-separated")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="the Redis to use")
    parser.add_argument("--target", type=float, default=1.5, help="ratio to mark below (*)")
    parser.add_argument("--quick", action="store_true", help="1 short round: under 2 minutes")
    parser.add_argument("--json", metavar="FILE", help="also write every run to FILE")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.messages, args.rounds, args.fanout_rounds, args.warmup = (
            1, 2_000, 60, 40, 5
        )  # fmt: skip
    if args.warmup < 1 or args.repeats < 1:
        parser.error("--warmup and --repeats must be at least 1")
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    args.impls = [i for i in args.impls.split(",") if i]
    for name in args.scenarios:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    for name in args.impls:
        if name not in IMPLS:
            parser.error(f"unknown implementation {name!r}; choose from {', '.join(IMPLS)}")
    return args


def _describe(run: Run) -> str:
    v = run.values
    if "msgs_per_s" in v:
        return f"{v['msgs_per_s']:9,.0f} msgs/s  {v['cpu_us_per_msg']:5.0f} µs CPU/msg"
    text = f"p50 {v['p50_us'] / 1000:7.2f} ms  p99 {v['p99_us'] / 1000:7.2f} ms"
    if "cpu_us" in v:
        text += f"  CPU {v['cpu_us'] / 1000:6.2f} ms/send"
    if "call_p50_us" in v:
        text += f"  group_send() call p50 {v['call_p50_us'] / 1000:6.2f} ms"
    if "server_cpu_us" in v:
        text += f"  server CPU {v['server_cpu_us'] / 1000:6.2f} ms/msg"
    return text


def run_all(args: argparse.Namespace, run_prefix: str, client: Any) -> list[Run]:
    runs: list[Run] = []
    found = cases(args)
    number = 0
    for case in found:
        for round_ in range(args.repeats):
            order = args.impls if round_ % 2 == 0 else args.impls[::-1]
            for impl in order:
                number += 1
                prefix = f"{run_prefix}{number}-"
                try:
                    values = measure(case, impl, prefix, args)
                finally:
                    _delete_keys(client, f"{prefix}*")
                run = Run(case.label, impl, round_, values)
                runs.append(run)
                print(f"{case.label:48} {impl:17} round {round_ + 1}: {_describe(run)}",
                      file=sys.stderr, flush=True)  # fmt: skip
    return runs


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every `finally` stops its subprocesses.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    client = _redis(args)
    try:
        client.ping()
    except Exception as exc:
        raise SystemExit(f"no Redis at {args.redis}: {exc}") from exc
    run_prefix = f"achbench-{secrets.token_hex(4)}-"
    load_before = _load()
    started = time.monotonic()
    try:
        runs = run_all(args, run_prefix, client)
    finally:
        _delete_keys(client, f"{run_prefix}*")
        left = sum(1 for _ in client.scan_iter(match=f"{run_prefix}*", count=1000))
        if left:
            print(f"Warning: {left} Redis keys under {run_prefix}* remain", file=sys.stderr)
    print(
        f"\nRedis layers, median of {args.repeats} round(s): throughput {args.messages:,} "
        f"messages; group {args.rounds} group_sends; fan-out {args.fanout_rounds} messages "
        f"(+{args.warmup} warm-up rounds each); {_versions(args)}; "
        f"{time.monotonic() - started:.0f} s in all; load average before the run "
        f"{load_before} (other processes competing for the CPUs make latencies noisy).\n"
    )
    print(table(runs, cases(args), args.impls, args.target))
    print(
        f"\nRatio: ours/theirs for msgs/s, theirs/ours for latency (>1: achannels faster);"
        f" * below the {args.target:g}x target. Redis keys left under {run_prefix}*: {left}."
    )
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in runs], indent=1))


if __name__ == "__main__":
    main()
