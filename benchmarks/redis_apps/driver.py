"""The layer-level runs of ``bench_redis.py``; each prints one JSON object.

    python benchmarks/redis_apps/driver.py throughput --layer achannels --backend trio \\
        --prefix P --channel process --messages 10000
    python benchmarks/redis_apps/driver.py group --layer channels_redis --backend asyncio \\
        --prefix P --members 1000 --rounds 200 --warmup 20

``throughput``: in one process, one task sends ``--messages`` messages to one channel
(a ``new_channel()`` process channel, or the normal channel ``bench.worker``) while
another receives them; msgs/s from the first send to the last receipt. Capacity is
set above the message count on both layers, so nothing is refused or dropped.

``group``: starts two ``member.py`` processes holding half the members each, then
``group_send``s one message per round from this process and waits until both report
that all their members have it; the latency of a round is from the start of
``group_send`` to the later of the two reports' timestamps; ``cpu_us`` is the CPU
time of all three processes per round (Redis's excluded). ``--warmup`` must be at
least 1. Both members are always stopped (stdin closed, then terminated, then
killed) whatever happens.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MEMBER = Path(__file__).resolve().parent / "member.py"
WARMUP_MESSAGES = 200


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def throughput(args: argparse.Namespace) -> dict[str, Any]:
    import anyio

    from benchmarks.redis_apps.layers import open_layer, reader

    total = args.messages + WARMUP_MESSAGES
    message = {"type": "bench.message", "text": "hello"}
    async with open_layer(args.layer, args.prefix, capacity=total + 100) as layer:
        if args.channel == "process":
            channel = await layer.new_channel()
        else:
            channel = "bench.worker"
        read = reader(layer, channel)

        async def send(count: int) -> None:
            for _ in range(count):
                await layer.send(channel, message)

        async def receive(count: int) -> None:
            for _ in range(count):
                await read()

        async def run(count: int) -> float:
            started = time.perf_counter()
            with anyio.fail_after(120):
                async with anyio.create_task_group() as task_group:
                    task_group.start_soon(receive, count)
                    task_group.start_soon(send, count)
            return time.perf_counter() - started

        await run(WARMUP_MESSAGES)
        cpu = time.process_time()
        elapsed = await run(args.messages)
        cpu = time.process_time() - cpu
    return {
        "msgs_per_s": args.messages / elapsed,
        "seconds": elapsed,
        "cpu_us_per_msg": cpu / args.messages * 1e6,
    }


class _Member:
    """A ``member.py`` process and the lines it prints."""

    def __init__(self, process: Any) -> None:
        from anyio.streams.buffered import BufferedByteReceiveStream

        self.process = process
        self.lines = BufferedByteReceiveStream(process.stdout)

    async def line(self) -> list[str]:
        return (await self.lines.receive_until(b"\n", 4096)).decode().split()

    async def stop(self) -> None:
        import anyio

        with anyio.CancelScope(shield=True):
            process = self.process
            if process.returncode is None:
                await process.stdin.aclose()  # the member leaves its group and exits
                with anyio.move_on_after(5):
                    await process.wait()
            if process.returncode is None:
                process.terminate()
                with anyio.move_on_after(3):
                    await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()


async def group(args: argparse.Namespace) -> dict[str, Any]:
    import anyio

    from benchmarks.redis_apps.layers import open_layer

    group_name = "bench"
    sides = [args.members // 2, args.members - args.members // 2]
    members: list[_Member] = []
    try:
        for count in sides:
            command = [
                sys.executable, str(MEMBER), f"--layer={args.layer}", f"--backend={args.backend}",
                f"--prefix={args.prefix}", f"--group={group_name}", f"--members={count}",
            ]  # fmt: skip
            process = await anyio.open_process(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None
            )
            members.append(_Member(process))
        with anyio.fail_after(60):
            for member in members:
                if await member.line() != ["ready"]:
                    raise RuntimeError("a member process did not get ready")
        latencies: list[float] = []
        calls: list[float] = []
        cpu_ns = 0  # CPU time of the three processes over the measured rounds
        async with open_layer(args.layer, args.prefix) as layer:
            for seq in range(args.warmup + args.rounds):
                if seq == args.warmup:
                    cpu_ns -= time.process_time_ns()
                message = {"type": "bench.message", "seq": seq, "text": "hello"}
                started = time.perf_counter_ns()
                await layer.group_send(group_name, message)
                sent = time.perf_counter_ns()
                with anyio.fail_after(30):
                    reports = [await member.line() for member in members]
                if any(r[:2] != ["done", str(seq)] for r in reports):
                    raise RuntimeError(f"unexpected reports for round {seq}: {reports}")
                if seq == args.warmup - 1:
                    cpu_ns -= sum(int(r[3]) for r in reports)
                if seq >= args.warmup:
                    latencies.append((max(int(r[2]) for r in reports) - started) / 1e3)
                    calls.append((sent - started) / 1e3)
            cpu_ns += time.process_time_ns() + sum(int(r[3]) for r in reports)
    finally:
        for member in members:
            await member.stop()
    return {
        "p50_us": statistics.median(latencies),
        "p99_us": _percentile(latencies, 0.99),
        "call_p50_us": statistics.median(calls),
        "cpu_us": cpu_ns / 1e3 / args.rounds,
    }


def main(argv: list[str] | None = None) -> None:
    import anyio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("throughput", "group"))
    parser.add_argument("--layer", choices=("achannels", "channels_redis"), required=True)
    parser.add_argument("--backend", choices=("trio", "asyncio"), required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--channel", choices=("process", "normal"), default="process")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args(argv)
    if args.warmup < 1:
        parser.error("--warmup must be at least 1")
    if args.layer == "channels_redis" and args.backend != "asyncio":
        parser.error("channels_redis runs on asyncio only")
    run = throughput if args.mode == "throughput" else group
    print(json.dumps(anyio.run(run, args, backend=args.backend)))


if __name__ == "__main__":
    main()
