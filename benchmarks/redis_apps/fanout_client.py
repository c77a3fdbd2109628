"""K ``websockets`` clients in one chat room; one sends, time until all K have it.

    python benchmarks/redis_apps/fanout_client.py --ports 8001,8002 --clients 100 \\
        --rounds 100 --warmup 10

Client ``i`` connects to the ``i % len(ports)``-th server, so with two servers
(two hypercorn worker processes) half the room is on each and every message crosses
Redis. Each round client 0 sends ``{"message": "r<n>"}``; the round's latency is
from just before that send until the last of the K clients (the sender included)
has received the relayed message. Rounds run one after another. Prints one JSON
object: p50_us, p99_us, the client's CPU seconds and, given ``--server-pgids`` (the
servers' process groups, Linux only), the servers' CPU µs per message (server_cpu_us).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any


def group_cpu_seconds(pgids: set[int]) -> float | None:
    """Return the user+system CPU seconds of every process in ``pgids`` (Linux), or None."""
    total = 0.0
    try:
        stats = list(Path("/proc").glob("[0-9]*/stat"))
    except OSError:
        return None
    for stat in stats:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it exited
        if int(fields[2]) in pgids:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK") if stats else None


class _Round:
    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.expected = ""
        self.count = 0
        self.finished_ns = 0
        self.done = asyncio.Event()

    def start(self, token: str) -> None:
        self.expected, self.count, self.done = token, 0, asyncio.Event()

    def got(self, token: str) -> None:
        if token != self.expected:
            raise ValueError(f"received {token!r} during round {self.expected!r}")
        self.count += 1
        if self.count == self.clients:
            self.finished_ns = time.perf_counter_ns()
            self.done.set()


async def _connect(url: str, within: float) -> Any:
    from websockets.asyncio.client import connect

    deadline = time.monotonic() + within
    while True:
        try:
            return await connect(url, compression=None, ping_interval=None, open_timeout=within)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    ports = [int(p) for p in args.ports.split(",")]
    state = _Round(args.clients)
    sockets: list[Any] = []

    async def read(ws: Any) -> None:
        async for raw in ws:
            state.got(json.loads(raw)["message"])

    readers: list[asyncio.Task[None]] = []
    try:
        for i in range(args.clients):
            url = f"ws://127.0.0.1:{ports[i % len(ports)]}/ws/chat/{args.room}/"
            sockets.append(await _connect(url, 30.0))
        readers = [asyncio.create_task(read(ws)) for ws in sockets]
        latencies: list[float] = []
        pgids = {int(p) for p in args.server_pgids.split(",") if p}
        cpu = time.process_time()
        server_cpu: float | None = None
        for n in range(args.warmup + args.rounds):
            if n == args.warmup:
                server_cpu = group_cpu_seconds(pgids) if pgids else None
            token = f"r{n}"
            state.start(token)
            started = time.perf_counter_ns()
            await sockets[0].send(json.dumps({"message": token}))
            waiting = asyncio.ensure_future(state.done.wait())
            finished, _ = await asyncio.wait(
                [waiting, *readers], timeout=30, return_when=asyncio.FIRST_COMPLETED
            )
            if waiting not in finished:
                waiting.cancel()
                failed = [t for t in finished if t is not waiting]
                if failed:
                    failed[0].result()  # a reader's exception, or a closed socket
                    raise ConnectionError("a server closed a connection mid-run")
                raise TimeoutError(f"round {n}: {state.count} of {args.clients} got it in 30 s")
            if n >= args.warmup:
                latencies.append((state.finished_ns - started) / 1e3)
        cpu = time.process_time() - cpu
        if server_cpu is not None:
            after = group_cpu_seconds(pgids)
            server_cpu = None if after is None else (after - server_cpu) / args.rounds * 1e6
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        await asyncio.gather(*readers, return_exceptions=True)
    ordered = sorted(latencies)
    return {
        "p50_us": statistics.median(ordered),
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "client_cpu_s": cpu,
        **({} if server_cpu is None else {"server_cpu_us": server_cpu}),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", required=True, help="comma-separated")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--room", default="bench")
    parser.add_argument("--server-pgids", default="", help="comma-separated, for server CPU")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
