"""The benchmark suite: raw ASGI, achannels (native and class consumers) and Channels.

    python benchmarks/suite.py                      # everything (about an hour)
    python benchmarks/suite.py --quick              # a short version (a few minutes)
    python benchmarks/suite.py fanout churn         # some benchmarks only
    python benchmarks/suite.py tenk --ceiling       # the 10k run and its ceiling search
    python benchmarks/suite.py idle --servers hypercorn-asyncio --apps raw,native

Benchmarks (each writes ``benchmarks/results/<name>.md`` and ``<name>.json``, with the
command that produced it, the machine, its load and the versions):

- ``echo``: ``benchmarks/echo.py`` (ping-pong, its own raw-socket load client).
- ``fanout``: N subscribers (100 and 1,000) in one room; a publisher's message is
  broadcast to all (``group_send`` through the in-memory layer; the raw app loops
  over a set of connections); delivery latency from send to each receipt, lost
  messages, server CPU per delivery.
- ``churn``: open and close WebSockets (close handshake), 50 in flight, for a fixed
  time, several rounds on one server; connections/s as % of raw, server RSS at the
  start and after each round (it should stay flat).
- ``idle``: 5,000 idle WebSockets; server RSS per connection, and gc-tracked objects
  per connection (``GET /stats`` of the benchmark app), over raw.
- ``tenk``: 100 rooms of 100 WebSockets, one member of each room sending a message a
  second (10,000 deliveries/s); delivery p50/p99, lost, server CPU, and the handshake
  time of fresh connections opened meanwhile. ``--ceiling`` then steps connections
  (rooms of 100, 1 message/s per room) and the send rate up on fresh servers and
  reports the most each server and app held with delivery p99 <= 100 ms.
- ``memory_layer``: ``benchmarks/bench_memory_layer.py`` (group_send micro-benchmark).

Apps (``benchmarks/suite_apps.py``; ``--apps``): ``raw`` (a hand-written ASGI app),
``native`` (``Router`` + ``@router.websocket``), ``class`` (the Channels tutorial's
``ChatConsumer`` with ``channels`` renamed ``achannels``), ``channels`` (Channels
4.3, asyncio servers only). Servers (``--servers``): hypercorn's trio and asyncio
workers and uvicorn, each a fresh subprocess on a free 127.0.0.1 port, pinned to CPU
0; the load generator (``benchmarks/loadgen.py``, picows on uvloop) is a separate
process pinned to CPU 1, and its CPU is reported beside each figure. The apps of one
server and case alternate round by round (order reversed every other round), so
each ratio to raw compares runs made side by side; tables show medians.

``--achannels-src DIR`` serves the achannels package found in DIR instead of the
installed one (e.g. ``git archive HEAD achannels | tar -x -C DIR`` while the working
tree is being edited); the results record which.

Every server and client subprocess is stopped (SIGTERM, then SIGKILL) whatever
happens. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.echo import running_server  # noqa: E402

RESULTS = HERE / "results"
SERVERS = ("hypercorn-trio", "hypercorn-asyncio", "uvicorn")
APPS = ("raw", "native", "class", "channels")
CHAT_APP = {"raw": "chat-raw", "native": "chat-native", "class": "chat-class",
            "channels": "chat-channels"}  # fmt: skip
ECHO_APP = {"raw": "raw", "native": "achannels", "class": "achannels_class",
            "channels": "channels"}  # fmt: skip
BENCHMARKS = ("echo", "fanout", "churn", "idle", "tenk", "memory_layer")
#: Channels runs on asyncio only.
UNSUPPORTED = {("hypercorn-trio", "channels")}
P99_LIMIT_US = 100_000  # the ceiling search's bound on delivery p99

Row = dict[str, Any]


# -- processes -------------------------------------------------------------------------


def _pin(pid: int, cpu: int, enabled: bool) -> None:
    if enabled and hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(pid, {cpu})


def run_client(mode: str, port: int, server_pid: int, options: dict[str, Any], pin: bool) -> Row:
    """Run ``loadgen.py <mode>`` against the server; return its JSON; always stop it."""
    command = [sys.executable, str(HERE / "loadgen.py"), mode, f"--port={port}"]
    command += [f"--server-pid={server_pid}"]
    command += [f"--{key.replace('_', '-')}={value}" for key, value in options.items()]
    with tempfile.TemporaryFile() as err:
        client = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, start_new_session=True
        )
        try:
            _pin(client.pid, 1, pin)
            out, _ = client.communicate(timeout=900)
        finally:
            if client.poll() is None:
                client.send_signal(signal.SIGTERM)
                try:
                    client.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    client.kill()
                    client.wait()
        if client.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"loadgen {mode} failed:\n{err.read().decode(errors='replace')}")
    result: Row = json.loads(out)
    return result


def measure(server: str, app: str, mode: str, options: dict[str, Any], pin: bool) -> Row:
    """Serve ``app`` on a fresh ``server``, run one load, return the client's figures."""
    with running_server(server, CHAT_APP[app], pin=pin) as (port, pid):
        time.sleep(0.3)  # lifespan start-up ends before the port opens; let it settle
        return run_client(mode, port, pid, options, pin)


def alternate(
    args: argparse.Namespace,
    cases: list[tuple[str, dict[str, Any]]],
    mode: str,
    describe: Callable[[Row], str],
) -> list[Row]:
    """Run every (server, case, app) ``args.repeats`` times, apps alternating by round."""
    runs: list[Row] = []
    for server in args.servers:
        apps = [a for a in args.apps if (server, a) not in UNSUPPORTED]
        for case, options in cases:
            for round_ in range(args.repeats):
                for app in apps if round_ % 2 == 0 else apps[::-1]:
                    try:
                        result = measure(server, app, mode, options, args.pin)
                    except RuntimeError as exc:
                        print(f"{server} {app} {case}: FAILED {exc}", file=sys.stderr)
                        result = {"error": str(exc)[-2000:]}
                    row = {"server": server, "case": case, "app": app, "round": round_, **result}
                    runs.append(row)
                    text = "FAILED" if "error" in row else describe(row)
                    print(f"{server:17} {case:14} {app:8} r{round_ + 1}: {text}", file=sys.stderr)
    return runs


# -- numbers and tables ----------------------------------------------------------------


def median(rows: list[Row], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "n/a" if value is None else format(value / scale, spec)


def ratio(mine: float | None, raw: float | None) -> str:
    if mine is None or raw is None or not raw or not mine:
        return "n/a"
    return f"{mine / raw:.2f}x"


def summarize(runs: list[Row], metrics: list[str]) -> list[Row]:
    """Return one row per (server, case, app): the median of each metric over rounds."""
    keys: list[tuple[str, str, str]] = []
    for run in runs:
        key = (run["server"], run["case"], run["app"])
        if key not in keys:
            keys.append(key)
    rows = []
    for server, case, app in keys:
        mine = [
            r
            for r in runs
            if (r["server"], r["case"], r["app"]) == (server, case, app) and "error" not in r
        ]
        row: Row = {"server": server, "case": case, "app": app, "rounds": len(mine)}
        row.update({metric: median(mine, metric) for metric in metrics})
        rows.append(row)
    return rows


def raw_of(summary: list[Row], row: Row) -> Row:
    for other in summary:
        if (other["server"], other["case"], other["app"]) == (row["server"], row["case"], "raw"):
            return other
    return {}


def markdown_table(summary: list[Row], columns: list[tuple[str, Callable[[Row, Row], str]]]) -> str:
    """Render ``summary`` with (header, cell(row, raw_row)) columns."""
    lines = [
        "| server | case | app | " + " | ".join(h for h, _ in columns) + " |",
        "|---|---|---|" + "---:|" * len(columns),
    ]
    for row in summary:
        raw = raw_of(summary, row)
        cells = " | ".join(cell(row, raw) for _, cell in columns)
        lines.append(f"| {row['server']} | {row['case']} | {row['app']} | {cells} |")
    return "\n".join(lines)


def col(key: str, spec: str, scale: float = 1.0) -> Callable[[Row, Row], str]:
    return lambda row, raw: fmt(row.get(key), spec, scale)


def vs_raw(key: str, *, inverse: bool = False) -> Callable[[Row, Row], str]:
    """The app's figure over raw's (``inverse``: raw's over the app's)."""

    def cell(row: Row, raw: Row) -> str:
        if row["app"] == "raw":
            return "-"
        if inverse:
            return ratio(raw.get(key), row.get(key))
        return ratio(row.get(key), raw.get(key))

    return cell


def minus_raw(key: str, spec: str) -> Callable[[Row, Row], str]:
    def cell(row: Row, raw: Row) -> str:
        if row["app"] == "raw" or row.get(key) is None or raw.get(key) is None:
            return "-"
        return format(row[key] - raw[key], spec)

    return cell


# -- the record of a run ---------------------------------------------------------------


def machine() -> Row:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "platform": platform.platform(),
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
    }


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def versions(args: argparse.Namespace) -> Row:
    names = ("achannels", "anyio", "trio", "hypercorn", "uvicorn", "websockets", "channels",
             "django", "picows", "uvloop")  # fmt: skip
    found: Row = {"python": platform.python_version()}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    )
    found["achannels_tree"] = git.stdout.strip() or "unknown"
    served = args.achannels_src or "the installed package"
    # A snapshot made with `git archive` may say where it came from in a COMMIT file.
    with contextlib.suppress(OSError, TypeError):
        served += f" (commit {(Path(args.achannels_src) / 'COMMIT').read_text().strip()})"
    found["achannels_served_from"] = served
    return found


def write_results(
    name: str, title: str, args: argparse.Namespace, body: str, data: Row, started: float
) -> None:
    """Write ``results/<name>.md`` and ``.json``: the figures and how they were made."""
    RESULTS.mkdir(exist_ok=True)
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    record = {
        "benchmark": name,
        "title": title,
        "command": args.command,
        "date": now,
        "quick": args.quick,
        "seconds": round(time.monotonic() - started),
        "machine": machine(),
        "load_before": args.load_before,
        "load_after": load(),
        "versions": versions(args),
        **data,
    }
    shared = max(record["load_before"][0], record["load_after"][0]) > 1.0
    note = (
        "The machine was shared: other processes ran beside the benchmark (load average "
        f"{record['load_before']} before, {record['load_after']} after; the benchmark's "
        "own server and client account for up to 2), so absolute figures are noisy; the "
        "ratios to raw, from runs made side by side, and the CPU columns hold up better."
        if shared
        else f"Load average before / after: {record['load_before']} / {record['load_after']}."
    )
    vers = ", ".join(f"{k} {v}" for k, v in record["versions"].items())
    mach = record["machine"]
    md = [
        f"# {title}",
        "",
        f"Command: `{args.command}`{' (quick)' if args.quick else ''}  ",
        f"Date: {now}; {record['seconds']} s  ",
        f"Machine: {mach['cpu']}, {mach['cpus']} CPUs, {mach['memory_gb']} GB, "
        f"{mach['platform']}  ",
        f"Versions: {vers}",
        "",
        note,
        "",
        body,
        "",
    ]
    (RESULTS / f"{name}.md").write_text("\n".join(md))
    (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {RESULTS / name}.md and .json", file=sys.stderr)


# -- the benchmarks --------------------------------------------------------------------


def bench_echo(args: argparse.Namespace) -> tuple[str, str, Row]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "echo.json"
        command = [sys.executable, str(HERE / "echo.py"), f"--json={out}"]
        command += [f"--servers={','.join(args.servers)}"]
        command += [f"--apps={','.join(ECHO_APP[a] for a in args.apps)}"]
        command += ["--quick"] if args.quick else []
        command += [] if args.pin else ["--no-pin"]
        text = subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
        runs = json.loads(out.read_text())
    names = {v: k for k, v in ECHO_APP.items()}
    rows = [{**r, "app": names[r["app"]], "case": "16 connections"} for r in runs]
    metrics = ["msgs_per_s", "p50_us", "p99_us", "server_cpu_us_per_msg", "server_busy",
               "client_busy"]  # fmt: skip
    summary = summarize(rows, metrics)
    body = (
        "WebSocket echo ping-pong: 16 connections, 16-byte text frames; load client "
        "`benchmarks/wsload.py` (raw sockets; its CPU share is the client busy column). "
        f"App names as in `benchmarks/apps.py`.\n\n{text.stdout.strip()}"
    )
    return "Echo", body, {"runs": rows, "summary": summary}


def bench_fanout(args: argparse.Namespace) -> tuple[str, str, Row]:
    cases = []
    for subscribers in (100, 1000):
        messages = (50 if subscribers == 100 else 20) if args.quick else 300 // (subscribers // 100)
        cases.append(
            (
                f"{subscribers} subscribers",
                {"subscribers": subscribers, "messages": max(messages, 20), "warmup": 10},
            )
        )
    runs = alternate(
        args,
        cases,
        "fanout",
        lambda r: (
            f"p50 {fmt(r['p50_us'], '.2f', 1000)} ms p99 {fmt(r['p99_us'], '.2f', 1000)}"
            f" ms lost {r['lost']} server {fmt(r['server_cpu_us_per_delivery'], '.1f')} µs/dl"
            f" client {fmt(r['client_cpu_us_per_delivery'], '.1f')} µs/dl"
        ),
    )
    metrics = ["p50_us", "p99_us", "lost", "deliveries", "server_cpu_us_per_delivery",
               "server_busy", "client_cpu_us_per_delivery", "client_busy"]  # fmt: skip
    summary = summarize(runs, metrics)
    table = markdown_table(
        summary,
        [
            ("p50 ms", col("p50_us", ".2f", 1000)),
            ("p99 ms", col("p99_us", ".2f", 1000)),
            ("p50 / raw", vs_raw("p50_us")),
            ("lost", col("lost", ".0f")),
            ("server CPU µs/delivery", col("server_cpu_us_per_delivery", ".1f")),
            ("CPU / raw", vs_raw("server_cpu_us_per_delivery")),
            ("server busy", col("server_busy", ".0%")),
            ("loadgen CPU µs/delivery", col("client_cpu_us_per_delivery", ".1f")),
            ("loadgen busy", col("client_busy", ".0%")),
        ],
    )
    body = (
        "Broadcast fan-out: N subscribers and one publisher in one room on one server "
        "process; the publisher sends a message (its send time inside), the server "
        "broadcasts it to the room, and the publisher sends the next once all N have it "
        "(closed loop, so each broadcast is timed alone). Latency: send to each "
        "subscriber's receipt. Server CPU from /proc over the measured broadcasts only "
        f"(not connection set-up). Median of {args.repeats} round(s).\n\n{table}"
    )
    return "Broadcast fan-out", body, {"runs": runs, "summary": summary}


def bench_churn(args: argparse.Namespace) -> tuple[str, str, Row]:
    rounds, duration = (3, 2.0) if args.quick else (5, 5.0)
    options = {"in_flight": 50, "rounds": rounds, "duration": duration}

    def describe(r: Row) -> str:
        rates = "/".join(f"{x['connections_per_s']:.0f}" for x in r["rounds"])
        return f"conn/s {rates}  rss KB {r['rss_kb']}"

    runs = alternate(args, [("50 in flight", options)], "churn", describe)
    for run in runs:
        if "error" in run:
            continue
        per_round = run["rounds"]
        run["connections_per_s"] = statistics.median(x["connections_per_s"] for x in per_round)
        for key in ("handshake_p50_us", "handshake_p99_us", "server_cpu_us_per_connection",
                    "client_cpu_us_per_connection", "server_busy", "client_busy"):  # fmt: skip
            run[key] = median(per_round, key)
        run["failures"] = sum(x["failures"] for x in per_round)
        run["rss_start_kb"] = run["rss_kb"][0]
        run["rss_first_round_kb"] = run["rss_kb"][1]
        run["rss_last_round_kb"] = run["rss_kb"][-1]
        run["rss_growth_after_first_round_kb"] = run["rss_kb"][-1] - run["rss_kb"][1]
    metrics = ["connections_per_s", "handshake_p50_us", "handshake_p99_us",
               "server_cpu_us_per_connection", "server_busy", "client_cpu_us_per_connection",
               "client_busy", "failures", "rss_start_kb", "rss_first_round_kb",
               "rss_last_round_kb", "rss_growth_after_first_round_kb"]  # fmt: skip
    summary = summarize(runs, metrics)
    for row in summary:
        traces = [r["rss_kb"] for r in runs if _same(r, row) and "error" not in r]
        row["rss_kb_by_round"] = traces[0] if traces else []
    table = markdown_table(
        summary,
        [
            ("conn/s", col("connections_per_s", ",.0f")),
            ("% of raw", lambda r, raw: _percent(r, raw, "connections_per_s")),
            ("handshake p50 ms", col("handshake_p50_us", ".1f", 1000)),
            ("server CPU µs/conn", col("server_cpu_us_per_connection", ".0f")),
            ("server busy", col("server_busy", ".0%")),
            ("loadgen CPU µs/conn", col("client_cpu_us_per_connection", ".0f")),
            ("loadgen busy", col("client_busy", ".0%")),
            ("failed", col("failures", ".0f")),
            ("server RSS MB: start, after each round", _rss_trace),
        ],
    )
    body = (
        f"Connection churn: {options['in_flight']} connections in flight, each opened "
        "(it joins the room), then closed with a close handshake, for "
        f"{duration:g} s a round, {rounds} rounds on one server process. conn/s and CPU: "
        "median of the rounds; RSS: the server's at start (before any connection) and "
        f"after each round (first repeat). Median of {args.repeats} repeat(s).\n\n{table}"
    )
    return "Connection churn", body, {"runs": runs, "summary": summary}


def _same(run: Row, row: Row) -> bool:
    return (run["server"], run["case"], run["app"]) == (row["server"], row["case"], row["app"])


def _percent(row: Row, raw: Row, key: str) -> str:
    if row["app"] == "raw" or not raw.get(key) or row.get(key) is None:
        return "-"
    return f"{row[key] / raw[key]:.0%}"


def _rss_trace(row: Row, raw: Row) -> str:
    return ", ".join(f"{kb / 1024:.0f}" for kb in row.get("rss_kb_by_round", []))


def bench_idle(args: argparse.Namespace) -> tuple[str, str, Row]:
    connections = 1000 if args.quick else 5000
    runs = alternate(
        args,
        [(f"{connections} idle", {"connections": connections, "warm": 200})],
        "idle",
        lambda r: (
            f"{r['kb_per_connection']:.1f} KB/conn, "
            f"{r['gc_objects_per_connection']:.0f} gc objects/conn, failures "
            f"{r['connect_failures']}"
        ),
    )
    metrics = ["kb_per_connection", "gc_objects_per_connection", "connections",
               "connect_failures", "open_seconds", "rss_after_kb"]  # fmt: skip
    summary = summarize(runs, metrics)
    table = markdown_table(
        summary,
        [
            ("KB/conn", col("kb_per_connection", ".1f")),
            ("+ KB/conn over raw", minus_raw("kb_per_connection", "+.1f")),
            ("gc objects/conn", col("gc_objects_per_connection", ".0f")),
            ("+ over raw", minus_raw("gc_objects_per_connection", "+.0f")),
            ("server RSS MB after", col("rss_after_kb", ".0f", 1024)),
            ("open s", col("open_seconds", ".1f")),
            ("failed", col("connect_failures", ".0f")),
        ],
    )
    body = (
        f"Idle memory: 200 warm-up connections, then {connections} more idle WebSockets "
        "in one room; the server's RSS (/proc) and gc-tracked objects (`GET /stats`: "
        "`len(gc.get_objects())` after `gc.collect()`) before and after the "
        f"{connections}, per connection. Median of {args.repeats} round(s).\n\n{table}"
    )
    return "Idle memory per connection", body, {"runs": runs, "summary": summary}


def _rooms_describe(r: Row) -> str:
    return (
        f"{r['connections']} conns, {r['deliveries_per_s']:,.0f} dl/s p50 "
        f"{fmt(r['p50_us'], '.1f', 1000)} ms p99 {fmt(r['p99_us'], '.1f', 1000)} ms lost "
        f"{r['lost']} busy {r['server_busy']:.0%} fresh p50 "
        f"{fmt(r['fresh_connect_p50_us'], '.1f', 1000)} ms"
    )


ROOMS_METRICS = ["connections", "deliveries_per_s", "p50_us", "p99_us", "lost",
                 "connect_failures", "fresh_connect_p50_us", "fresh_connect_p99_us",
                 "server_cpu_us_per_delivery", "server_busy", "server_rss_kb",
                 "client_cpu_us_per_delivery", "client_busy"]  # fmt: skip


def bench_tenk(args: argparse.Namespace) -> tuple[str, str, Row]:
    rooms = 20 if args.quick else 100
    warmup, duration = (2.0, 5.0) if args.quick else (5.0, 20.0)
    options = {"rooms": rooms, "room_size": 100, "rate": 1.0, "warmup": warmup,
               "duration": duration}  # fmt: skip
    case = f"{rooms * 100} conns"
    runs = alternate(args, [(case, options)], "rooms", _rooms_describe)
    summary = summarize(runs, ROOMS_METRICS)
    table = markdown_table(summary, _rooms_columns())
    body = (
        f"{rooms} rooms of 100 WebSockets on one server process (chat app, in-memory "
        f"layer); one member of each room sends a message a second ({rooms * 100:,} "
        f"deliveries/s), {warmup:g} s warm-up then {duration:g} s measured. Fresh "
        "connect: the handshake time of a new WebSocket opened every 0.2 s while the "
        f"load runs. Median of {args.repeats} round(s).\n\n{table}"
    )
    data: Row = {"runs": runs, "summary": summary}
    if args.ceiling:
        text, ceiling = ceiling_search(args)
        body += "\n\n" + text
        data["ceiling"] = ceiling
    return f"{rooms * 100:,} connections", body, data


def _rooms_columns() -> list[tuple[str, Callable[[Row, Row], str]]]:
    return [
        ("conns", col("connections", ",.0f")),
        ("deliveries/s", col("deliveries_per_s", ",.0f")),
        ("p50 ms", col("p50_us", ".1f", 1000)),
        ("p99 ms", col("p99_us", ".1f", 1000)),
        ("lost", col("lost", ".0f")),
        ("server CPU µs/delivery", col("server_cpu_us_per_delivery", ".1f")),
        ("CPU / raw", vs_raw("server_cpu_us_per_delivery")),
        ("server busy", col("server_busy", ".0%")),
        ("fresh connect p50/p99 ms", _fresh),
        ("server RSS MB", col("server_rss_kb", ".0f", 1024)),
        ("loadgen CPU µs/delivery", col("client_cpu_us_per_delivery", ".1f")),
        ("loadgen busy", col("client_busy", ".0%")),
    ]


def _fresh(row: Row, raw: Row) -> str:
    return (
        f"{fmt(row.get('fresh_connect_p50_us'), '.1f', 1000)} / "
        f"{fmt(row.get('fresh_connect_p99_us'), '.1f', 1000)}"
    )


def _holds(result: Row, connections: int) -> bool:
    return (
        "error" not in result
        and result["connections"] >= connections
        and result["p99_us"] is not None
        and result["p99_us"] <= P99_LIMIT_US
        and result["lost"] <= 0.001 * max(result["expected_deliveries"], 1)
    )


def ceiling_search(args: argparse.Namespace) -> tuple[str, list[Row]]:
    """Step connections, then the send rate, up until delivery p99 exceeds 100 ms."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    most_rooms = max(1, (nofile - 500) // 100)
    room_steps = [20, 50, 100, 150, most_rooms] if not args.quick else [10, 20, 40]
    room_steps = sorted({min(r, most_rooms) for r in room_steps})
    rate_steps = [2.0, 4.0, 8.0, 16.0, 32.0] if not args.quick else [4.0, 16.0]
    warmup, duration = (3.0, 10.0) if not args.quick else (1.0, 4.0)
    apps = [a for a in args.apps if a in ("raw", "native", "class")]
    steps: list[Row] = []
    best: list[Row] = []
    for server in args.servers:
        for app in apps:
            held_rooms = held_rate = 0.0
            for rooms in room_steps:
                options = {"rooms": rooms, "rate": 1.0, "warmup": warmup, "duration": duration}
                result = _step(server, app, options, args, steps)
                if not _holds(result, rooms * 100):
                    break
                held_rooms = rooms
            if held_rooms:
                held_rate = 1.0
                for rate in rate_steps:
                    options = {"rooms": held_rooms, "rate": rate, "warmup": warmup,
                               "duration": duration}  # fmt: skip
                    result = _step(server, app, options, args, steps)
                    if not _holds(result, int(held_rooms) * 100):
                        break
                    held_rate = rate
            best.append({"server": server, "app": app, "connections": int(held_rooms) * 100,
                         "deliveries_per_s": held_rooms * 100 * held_rate})  # fmt: skip
    lines = [
        "## Ceiling (delivery p99 <= 100 ms, lost <= 0.1%)",
        "",
        "Rooms of 100, one sender per room; first more rooms at 1 message/s per sender "
        f"({', '.join(str(r * 100) for r in room_steps)} connections), then, at the most "
        f"connections held, the rate per sender ({', '.join(f'{r:g}' for r in rate_steps)}"
        f"/s). Fresh server per step; {warmup:g} s warm-up, {duration:g} s measured.",
        "",
        "| server | app | most connections held | most deliveries/s held |",
        "|---|---|---:|---:|",
    ]
    lines += [
        f"| {b['server']} | {b['app']} | {b['connections']:,} | {b['deliveries_per_s']:,.0f} |"
        for b in best
    ]
    lines += ["", "Every step:", "", markdown_table(steps, _rooms_columns())]
    return "\n".join(lines), [{"best": best, "steps": steps}]


def _step(
    server: str, app: str, options: dict[str, Any], args: argparse.Namespace, steps: list[Row]
) -> Row:
    case = f"{options['rooms'] * 100} x {options['rate']:g}/s"
    try:
        result = measure(server, app, "rooms", options, args.pin)
    except RuntimeError as exc:
        result = {"error": str(exc)[-2000:], "connections": 0}
    row = {"server": server, "case": case, "app": app, **result}
    steps.append(row)
    text = "FAILED" if "error" in result else _rooms_describe(row)
    print(f"ceiling {server:17} {app:8} {case}: {text}", file=sys.stderr)
    return row


def bench_memory_layer(args: argparse.Namespace) -> tuple[str, str, Row]:
    env = dict(os.environ)
    if args.achannels_src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.achannels_src, str(ROOT)]))
    done = subprocess.run(
        [sys.executable, str(HERE / "bench_memory_layer.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    output = done.stdout.strip()
    if done.returncode != 0:
        output += f"\n\nFAILED (exit {done.returncode}):\n{done.stderr.strip()[-3000:]}"
    body = (
        "`python benchmarks/bench_memory_layer.py` (in-process, no server; see its "
        f"docstring), output as printed:\n\n```\n{output}\n```"
    )
    data = {"returncode": done.returncode, "output": output.splitlines()}
    return "In-memory layer micro-benchmarks", body, data


RUNNERS: dict[str, Callable[[argparse.Namespace], tuple[str, str, Row]]] = {
    "echo": bench_echo,
    "fanout": bench_fanout,
    "churn": bench_churn,
    "idle": bench_idle,
    "tenk": bench_tenk,
    "memory_layer": bench_memory_layer,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("benchmarks", nargs="*", metavar="BENCHMARK",
                        help=f"any of {', '.join(BENCHMARKS)} (default: all)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a short version of each")
    parser.add_argument("--repeats", type=int, help="rounds per case (default 3; quick 1)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated (raw added)")
    parser.add_argument("--ceiling", action="store_true", help="tenk: also the ceiling search")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="no CPU pinning")
    parser.add_argument("--achannels-src", help="serve the achannels package found here")
    args = parser.parse_args(argv)
    for name in args.benchmarks:
        if name not in BENCHMARKS:
            parser.error(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    args.benchmarks = args.benchmarks or list(BENCHMARKS)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    args.servers = [s for s in args.servers.split(",") if s]
    args.apps = ["raw"] + [a for a in args.apps.split(",") if a and a != "raw"]
    for name in args.servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}; choose from {', '.join(SERVERS)}")
    for name in args.apps:
        if name not in APPS:
            parser.error(f"unknown app {name!r}; choose from {', '.join(APPS)}")
    if args.achannels_src:
        args.achannels_src = str(Path(args.achannels_src).resolve())
    args.command = shlex.join(["python", "benchmarks/suite.py", *(sys.argv[1:] if argv is None
                                                                  else argv)])  # fmt: skip
    return args


def _available(apps: list[str]) -> list[str]:
    from benchmarks.suite_apps import available

    have = available()
    for app in apps:
        if CHAT_APP[app] not in have:
            print(f"skipping {app}: not installed", file=sys.stderr)
    return [app for app in apps if CHAT_APP[app] in have]


@contextlib.contextmanager
def _environment(args: argparse.Namespace) -> Iterator[None]:
    if args.achannels_src:
        os.environ["BENCH_ACHANNELS_SRC"] = args.achannels_src
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the servers
    yield


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every `finally` stops its subprocesses.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.apps = _available(args.apps)
    failed = []
    with _environment(args):
        for name in args.benchmarks:
            args.load_before = load()
            started = time.monotonic()
            print(f"== {name} ==", file=sys.stderr, flush=True)
            try:
                title, body, data = RUNNERS[name](args)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                print(f"{name} FAILED: {exc}", file=sys.stderr)
                failed.append(name)
                continue
            write_results(name, title, args, body, data, started)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
