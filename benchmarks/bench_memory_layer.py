"""Micro-benchmark: ``InMemoryChannelLayer.group_send`` to 1,000 members, on both backends.

Run ``python benchmarks/bench_memory_layer.py``. Prints the cost per delivery in µs,
as the median and the best of several rounds (on a shared machine the best is the
steadier figure), for:

* ``buffered``: ``group_send`` when no member has a receiver parked (the members'
  consumers are busy): the cost of the call alone.
* ``woken``: every member has a task parked in ``receive()``; timed from the start of
  ``group_send`` until all 1,000 tasks have their message (the fan-out latency,
  including each task's wake-up and its return to ``receive()``).
* ``drain``: ``receive_nowait`` of the buffered messages, per message.

The same fan-out over 1,000 AnyIO memory object streams (``send_nowait``) is printed
as a reference point.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from anyio.lowlevel import checkpoint
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from achannels.layers import InMemoryChannelLayer

MEMBERS = 1_000
ROUNDS = 50
MESSAGE: dict[str, Any] = {"type": "chat.message", "text": "hello"}


def per_delivery(samples: list[float]) -> str:
    median, best = (value / MEMBERS * 1e6 for value in (statistics.median(samples), min(samples)))
    return f"{median:5.2f} ({best:4.2f})"


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await checkpoint()


async def bench_buffered() -> tuple[str, str]:
    layer = InMemoryChannelLayer(capacity=ROUNDS + 1)
    names = [f"member.{i}" for i in range(MEMBERS)]
    for name in names:
        await layer.group_add("room", name)
    sends, drains = [], []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        await layer.group_send("room", MESSAGE)
        sends.append(time.perf_counter() - start)
        start = time.perf_counter()
        for name in names:
            layer.receive_nowait(name)
        drains.append(time.perf_counter() - start)
    return per_delivery(sends), per_delivery(drains)


async def run_woken(
    start_receivers: Callable[[anyio.abc.TaskGroup, Callable[[], None]], Coroutine[Any, Any, None]],
    fan_out: Callable[[], Coroutine[Any, Any, None]],
) -> str:
    received = [0]

    def got() -> None:
        received[0] += 1

    samples = []
    async with anyio.create_task_group() as tg:
        await start_receivers(tg, got)
        await anyio.wait_all_tasks_blocked()
        for _ in range(ROUNDS):
            received[0] = 0
            start = time.perf_counter()
            await fan_out()
            await until(lambda: received[0] == MEMBERS)
            samples.append(time.perf_counter() - start)
            await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    return per_delivery(samples)


async def bench_layer_woken() -> str:
    layer = InMemoryChannelLayer()

    async def start(tg: anyio.abc.TaskGroup, got: Callable[[], None]) -> None:
        async def receiver(name: str) -> None:
            while True:
                await layer.receive(name)
                got()

        for i in range(MEMBERS):
            await layer.group_add("room", f"member.{i}")
            tg.start_soon(receiver, f"member.{i}")

    return await run_woken(start, lambda: layer.group_send("room", MESSAGE))


async def bench_streams_woken() -> str:
    sends: list[MemoryObjectSendStream[dict[str, Any]]] = []

    async def start(tg: anyio.abc.TaskGroup, got: Callable[[], None]) -> None:
        async def receiver(stream: MemoryObjectReceiveStream[dict[str, Any]]) -> None:
            async for _ in stream:
                got()

        for _ in range(MEMBERS):
            send, receive = anyio.create_memory_object_stream[dict[str, Any]](100)
            sends.append(send)
            tg.start_soon(receiver, receive)

    async def fan_out() -> None:
        await checkpoint()
        for send in sends:
            send.send_nowait(MESSAGE)

    return await run_woken(start, fan_out)


async def main() -> None:
    send, drain = await bench_buffered()
    woken = await bench_layer_woken()
    streams = await bench_streams_woken()
    print(
        f"layer: buffered {send}  drain {drain}  woken {woken}  |  memory streams: woken {streams}"
    )


if __name__ == "__main__":
    print(f"µs per delivery to {MEMBERS} members, median (best) of {ROUNDS} rounds")
    for backend in ("asyncio", "trio"):
        print(f"{backend:>8}:", end=" ")
        anyio.run(main, backend=backend)
