"""The suite's WebSocket load generator: picows on uvloop, one process, one thread.

    python benchmarks/loadgen.py fanout --port P --server-pid PID --subscribers 100
    python benchmarks/loadgen.py churn  --port P --server-pid PID --in-flight 50
    python benchmarks/loadgen.py idle   --port P --server-pid PID --connections 5000
    python benchmarks/loadgen.py rooms  --port P --server-pid PID --rooms 100

It speaks the chat protocol of ``benchmarks/suite_apps.py``: a member of room R is a
WebSocket on ``/ws/chat/R/``; a message ``{"message": "<send time ns> <seq>"}`` sent
by one member comes back to every member, so each receipt gives its delivery
latency (one clock: the senders and receivers are all in this process). picows
parses frames in C and uvloop runs the loop, so the client stays well below the
server's CPU; it reports its own CPU beside every figure to show it. The server's
CPU (``/proc/<pid>/stat``) and RSS (``/proc/<pid>/status``) are read here, at the
edges of the measured window, so set-up is not counted. Connects only to 127.0.0.1.
Prints one JSON object.

Modes:

- ``fanout``: N subscribers and one publisher in one room; the publisher sends,
  waits until all N have the message (or a timeout), and sends the next (closed
  loop: each message is timed alone, with no queue behind it).
- ``churn``: open and close (close handshake) WebSockets, K in flight, for D seconds,
  R rounds; the server's RSS before the first and after each round.
- ``idle``: open W warm-up connections, then N more that stay idle; the server's RSS
  and gc-tracked objects (``GET /stats``) before and after the N.
- ``rooms``: R rooms of S members; one member per room (``--senders``) sends
  ``--rate`` messages a second; delivery latency, lost messages, and the handshake
  time of fresh connections opened while the load runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

HOST = "127.0.0.1"
Clock = time.perf_counter_ns


def server_cpu_s(pid: int) -> float:
    """Return user+system CPU seconds of ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_rss_kb(pid: int) -> int:
    """Return the resident set size of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(sorted_values: list[int], q: float) -> float | None:
    """Return the ``q`` quantile of ``sorted_values`` (ns) in µs, None if empty."""
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))] / 1000


class Deliveries:
    """Latencies of the messages received in the measured window, and counts per message."""

    def __init__(self) -> None:
        self.window_from = 1 << 62  # nothing counts until the window opens
        self.window_to = 1 << 62
        self.latencies: list[int] = []
        self.received = 0
        self.per_seq: dict[int, int] = {}
        self.waiters: dict[int, tuple[int, asyncio.Event]] = {}
        self.unexpected = 0

    def record(self, payload: bytes, now: int) -> None:
        try:
            # {"message": "<ns> <seq>"}, with or without a space after the colon
            start = payload.index(b'"', payload.index(b":")) + 1
            body = payload[start : payload.index(b'"', start)]
            sent_s, seq_s = body.split()
            sent, seq = int(sent_s), int(seq_s)
        except ValueError:
            self.unexpected += 1
            return
        if self.window_from <= sent <= self.window_to:
            self.latencies.append(now - sent)
            self.received += 1
        count = self.per_seq.get(seq, 0) + 1
        self.per_seq[seq] = count
        waiter = self.waiters.get(seq)
        if waiter is not None and count >= waiter[0]:
            waiter[1].set()


class Member(WSListener):
    """A room member: hands every text frame to ``deliveries`` (if any)."""

    def __init__(self, deliveries: Deliveries | None) -> None:
        self.deliveries = deliveries
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            if self.deliveries is not None:
                self.deliveries.record(frame.get_payload_as_bytes(), Clock())
        elif frame.msg_type == WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()


def message(seq: int) -> bytes:
    return b'{"message": "%d %d"}' % (Clock(), seq)


async def connect(port: int, room: str, deliveries: Deliveries | None) -> WSTransport:
    transport, _ = await ws_connect(
        lambda: Member(deliveries), f"ws://{HOST}:{port}/ws/chat/{room}/"
    )
    return transport


async def connect_many(
    count: int,
    open_one: Callable[[int], Awaitable[WSTransport]],
    *,
    in_flight: int = 100,
) -> tuple[list[WSTransport], int]:
    """Open ``count`` connections, ``in_flight`` at a time; return them and the failures."""
    opened: list[WSTransport] = []
    failures = 0
    next_index = 0

    async def worker() -> None:
        nonlocal next_index, failures
        while next_index < count:
            index = next_index
            next_index += 1
            for _attempt in range(3):
                try:
                    opened.append(await open_one(index))
                    break
                except Exception:  # retried, then counted
                    await asyncio.sleep(0.1)
            else:
                failures += 1

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return opened, failures


def close_all(transports: list[WSTransport]) -> None:
    for transport in transports:
        transport.disconnect(graceful=False)


async def http_stats(port: int) -> dict[str, Any]:
    """GET /stats from the server (its RSS and gc-tracked object count)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(
        f"GET /stats HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()
    )
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise RuntimeError(f"/stats failed: {head!r}")
    if b"chunked" in head.lower():
        body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    result: dict[str, Any] = json.loads(body)
    return result


class Window:
    """The measured window: server and client CPU from its start to its end."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def __enter__(self) -> Window:
        self.wall = time.perf_counter()
        self.server_cpu = server_cpu_s(self.server_pid)
        self.client_cpu = time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.server_cpu = server_cpu_s(self.server_pid) - self.server_cpu
        self.client_cpu = time.process_time() - self.client_cpu


def latency_summary(deliveries: Deliveries) -> dict[str, Any]:
    values = sorted(deliveries.latencies)
    return {
        "p50_us": percentile(values, 0.50),
        "p99_us": percentile(values, 0.99),
        "max_us": values[-1] / 1000 if values else None,
    }


def cpu_summary(window: Window, units: int, unit: str) -> dict[str, Any]:
    return {
        "seconds": window.wall,
        f"server_cpu_us_per_{unit}": window.server_cpu / units * 1e6 if units else None,
        f"client_cpu_us_per_{unit}": window.client_cpu / units * 1e6 if units else None,
        "server_busy": window.server_cpu / window.wall,
        "client_busy": window.client_cpu / window.wall,
    }


# -- modes -----------------------------------------------------------------------------


async def fanout(args: argparse.Namespace) -> dict[str, Any]:
    deliveries = Deliveries()
    subscribers, failures = await connect_many(
        args.subscribers, lambda _: connect(args.port, "fanout", deliveries)
    )
    publisher = await connect(args.port, "fanout", None)
    expected = len(subscribers)
    timed_out = 0

    async def publish(seq: int) -> None:
        nonlocal timed_out
        done = asyncio.Event()
        deliveries.waiters[seq] = (expected, done)
        publisher.send(WSMsgType.TEXT, message(seq))
        try:
            await asyncio.wait_for(done.wait(), args.timeout)
        except TimeoutError:
            timed_out += 1
        del deliveries.waiters[seq]

    for seq in range(args.warmup):
        await publish(seq)
    deliveries.window_from = 0
    with Window(args.server_pid) as window:
        for seq in range(args.warmup, args.warmup + args.messages):
            await publish(seq)
    await asyncio.sleep(0.5)  # late deliveries still count; lost ones stay lost
    close_all([*subscribers, publisher])
    sent = args.messages * expected
    return {
        "subscribers": expected,
        "connect_failures": failures,
        "messages": args.messages,
        "deliveries": deliveries.received,
        "lost": sent - deliveries.received,
        "timeouts": timed_out,
        **latency_summary(deliveries),
        **cpu_summary(window, deliveries.received, "delivery"),
    }


async def churn_round(args: argparse.Namespace) -> dict[str, Any]:
    done = failures = 0
    handshakes: list[int] = []
    stop_at = time.perf_counter() + args.duration

    async def worker() -> None:
        nonlocal done, failures
        while time.perf_counter() < stop_at:
            started = Clock()
            try:
                transport = await connect(args.port, "churn", None)
            except Exception:  # counted, and the run goes on
                failures += 1
                await asyncio.sleep(0.01)
                continue
            handshakes.append(Clock() - started)
            transport.send_close()
            try:
                await asyncio.wait_for(transport.wait_disconnected(), 5)
            except TimeoutError:
                transport.disconnect(graceful=False)
                failures += 1
                continue
            done += 1

    with Window(args.server_pid) as window:
        await asyncio.gather(*(worker() for _ in range(args.in_flight)))
    handshakes.sort()
    return {
        "connections": done,
        "failures": failures,
        "connections_per_s": done / window.wall,
        "handshake_p50_us": percentile(handshakes, 0.5),
        "handshake_p99_us": percentile(handshakes, 0.99),
        **cpu_summary(window, done, "connection"),
    }


async def churn(args: argparse.Namespace) -> dict[str, Any]:
    rss = [server_rss_kb(args.server_pid)]
    rounds = []
    for _ in range(args.rounds):
        rounds.append(await churn_round(args))
        await asyncio.sleep(1.0)  # let the server finish the last closes
        rss.append(server_rss_kb(args.server_pid))
    return {"in_flight": args.in_flight, "rounds": rounds, "rss_kb": rss}


async def idle(args: argparse.Namespace) -> dict[str, Any]:
    warm, warm_failures = await connect_many(args.warm, lambda _: connect(args.port, "idle", None))
    await asyncio.sleep(1.0)
    before = await http_stats(args.port)
    before_rss = server_rss_kb(args.server_pid)
    started = time.perf_counter()
    held, failures = await connect_many(
        args.connections, lambda _: connect(args.port, "idle", None)
    )
    open_s = time.perf_counter() - started
    await asyncio.sleep(2.0)
    after = await http_stats(args.port)
    after_rss = server_rss_kb(args.server_pid)
    count = len(held)
    close_all(warm + held)
    return {
        "connections": count,
        "connect_failures": failures + warm_failures,
        "open_seconds": open_s,
        "rss_before_kb": before_rss,
        "rss_after_kb": after_rss,
        "kb_per_connection": (after_rss - before_rss) / count if count else None,
        "gc_before": before["gc_objects"],
        "gc_after": after["gc_objects"],
        "gc_objects_per_connection": (
            (after["gc_objects"] - before["gc_objects"]) / count if count else None
        ),
    }


async def rooms(args: argparse.Namespace) -> dict[str, Any]:
    deliveries = Deliveries()
    size = args.room_size
    room_members: dict[int, list[WSTransport]] = {}

    async def open_member(index: int) -> WSTransport:
        transport = await connect(args.port, f"r{index // size}", deliveries)
        room_members.setdefault(index // size, []).append(transport)
        return transport

    started = time.perf_counter()
    members, failures = await connect_many(
        args.rooms * size, open_member, in_flight=args.connect_in_flight
    )
    open_s = time.perf_counter() - started
    # (sender, members of its room), the first ``--senders`` members to open in each.
    senders = [
        (transport, len(group))
        for group in room_members.values()
        for transport in group[: args.senders]
    ]
    interval_ns = int(1e9 / (len(senders) * args.rate))  # all senders together
    probes: list[int] = []
    probe_failures = 0
    expected = sent = 0
    start_ns = Clock()
    deliveries.window_from = start_ns + int(args.warmup * 1e9)
    deliveries.window_to = deliveries.window_from + int(args.duration * 1e9)

    async def probe() -> None:
        nonlocal probe_failures
        while Clock() < deliveries.window_to:
            t0 = Clock()
            try:
                transport = await connect(args.port, "probe", None)
            except Exception:  # counted
                probe_failures += 1
            else:
                if t0 >= deliveries.window_from:
                    probes.append(Clock() - t0)
                transport.disconnect(graceful=False)
            await asyncio.sleep(args.probe_interval)

    async def send_loop() -> None:
        nonlocal expected, sent
        seq = 0
        while True:
            due = start_ns + seq * interval_ns
            if due >= deliveries.window_to:
                return
            delay = (due - Clock()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            sender, room_size = senders[seq % len(senders)]
            stamp = Clock()
            sender.send(WSMsgType.TEXT, b'{"message": "%d %d"}' % (stamp, seq))
            if deliveries.window_from <= stamp <= deliveries.window_to:
                expected += room_size
                sent += 1
            seq += 1

    prober = asyncio.ensure_future(probe())
    sending = asyncio.ensure_future(send_loop())
    await asyncio.sleep((deliveries.window_from - Clock()) / 1e9)
    with Window(args.server_pid) as window:
        await sending
    await prober
    await asyncio.sleep(args.drain)
    close_all(members)
    probes.sort()
    return {
        "connections": len(members),
        "connect_failures": failures,
        "open_seconds": open_s,
        "senders": len(senders),
        "messages": sent,
        "expected_deliveries": expected,
        "deliveries": deliveries.received,
        "deliveries_per_s": deliveries.received / args.duration,
        "lost": expected - deliveries.received,
        **latency_summary(deliveries),
        "fresh_connect_p50_us": percentile(probes, 0.5),
        "fresh_connect_p99_us": percentile(probes, 0.99),
        "fresh_connects": len(probes),
        "fresh_connect_failures": probe_failures,
        "server_rss_kb": server_rss_kb(args.server_pid),
        **cpu_summary(window, deliveries.received, "delivery"),
    }


MODES: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]] = {
    "fanout": fanout,
    "churn": churn,
    "idle": idle,
    "rooms": rooms,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    fan = parser.add_argument_group("fanout")
    fan.add_argument("--subscribers", type=int, default=100)
    fan.add_argument("--messages", type=int, default=200, help="measured broadcasts")
    fan.add_argument("--warmup", type=float, default=20, help="broadcasts / seconds first")
    fan.add_argument("--timeout", type=float, default=5.0, help="per broadcast, seconds")
    ch = parser.add_argument_group("churn")
    ch.add_argument("--in-flight", type=int, default=50)
    ch.add_argument("--duration", type=float, default=5.0, help="seconds per round/run")
    ch.add_argument("--rounds", type=int, default=3)
    idl = parser.add_argument_group("idle")
    idl.add_argument("--connections", type=int, default=5000)
    idl.add_argument("--warm", type=int, default=200)
    rm = parser.add_argument_group("rooms")
    rm.add_argument("--rooms", type=int, default=100)
    rm.add_argument("--room-size", type=int, default=100)
    rm.add_argument("--senders", type=int, default=1, help="senders per room")
    rm.add_argument("--rate", type=float, default=1.0, help="messages/s per sender")
    rm.add_argument("--probe-interval", type=float, default=0.2)
    rm.add_argument("--drain", type=float, default=2.0)
    rm.add_argument("--connect-in-flight", type=int, default=100)
    args = parser.parse_args(argv)
    if args.mode == "fanout":
        args.warmup = int(args.warmup)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result: dict[str, Any] = uvloop.run(MODES[args.mode](args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
