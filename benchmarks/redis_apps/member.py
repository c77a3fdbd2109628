"""One side of the group-send benchmark: N channels of one process in one group.

    python benchmarks/redis_apps/member.py --layer achannels --backend trio \\
        --prefix P --group G --members 500

Creates ``--members`` process channels (``new_channel``), adds each to the group,
starts one receiving task per channel (as a server runs one per connection), then
prints ``ready``. For every message (``{"seq": n, ...}``) it prints
``done <seq> <perf_counter_ns> <process_time_ns>`` once all of its channels have
received it; the clock is CLOCK_MONOTONIC, shared by every process of the machine, so
the driver compares it with its own, and the CPU time lets it count this process's
work per message. Exits when its stdin closes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


async def serve_members(args: argparse.Namespace) -> None:
    import anyio

    from benchmarks.redis_apps.layers import open_layer, reader

    members = args.members
    counts: dict[int, int] = {}
    out = sys.stdout

    async def receive_forever(read: Any) -> None:
        while True:
            message = await read()
            seq = message["seq"]
            got = counts.get(seq, 0) + 1
            if got == members:
                now = time.perf_counter_ns()
                del counts[seq]
                out.write(f"done {seq} {now} {time.process_time_ns()}\n")
                out.flush()
            else:
                counts[seq] = got

    async with open_layer(args.layer, args.prefix, capacity=args.capacity) as layer:
        channels = [await layer.new_channel() for _ in range(members)]
        for channel in channels:
            await layer.group_add(args.group, channel)
        async with anyio.create_task_group() as task_group:
            for channel in channels:
                task_group.start_soon(receive_forever, reader(layer, channel))
            await anyio.sleep(0.2)  # every receiver parked (or holding channels_redis's lock)
            out.write("ready\n")
            out.flush()
            await anyio.to_thread.run_sync(sys.stdin.buffer.read)  # until the driver closes it
            task_group.cancel_scope.cancel()
        for channel in channels:
            await layer.group_discard(args.group, channel)


def main(argv: list[str] | None = None) -> None:
    import anyio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", choices=("achannels", "channels_redis"), required=True)
    parser.add_argument("--backend", choices=("trio", "asyncio"), required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--members", type=int, required=True)
    parser.add_argument("--capacity", type=int, default=100)
    args = parser.parse_args(argv)
    anyio.run(serve_members, args, backend=args.backend)


if __name__ == "__main__":
    main()
