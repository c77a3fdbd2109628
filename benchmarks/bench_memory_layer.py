"""Micro-benchmark: ``InMemoryChannelLayer.group_send`` fan-out, on both backends.

Run ``python benchmarks/bench_memory_layer.py [MEMBERS ...]`` from the repository root
(the default is 100, 1000 and 10000 members). Prints the cost per delivery in µs, as
the median and the best of several rounds (on a shared machine the best is the
steadier figure), for:

* ``idle``: ``group_send`` when every member's channel was drained before the call and
  nobody waits on it, so the channel is retired: the chat-server case (members'
  consumers busy elsewhere) in which a profile found each delivery re-creating the
  member's channel once there were more members than the layer's idle cache holds.
* ``backlog``: ``group_send`` when every member already has messages queued.
* ``woken``: every member has a task parked in ``receive()``; timed from the start of
  ``group_send`` until every task has its message (the fan-out latency, including
  each task's wake-up and its return to ``receive()``).
* ``drain``: ``receive_nowait`` of the queued messages, per message.
* ``gc``: cyclic garbage collections (all generations) per ``idle`` ``group_send``.

The same fan-out over AnyIO memory object streams (``send_nowait``) is printed as a
reference point (``streams``).
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
from anyio.lowlevel import checkpoint
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from achannels.layers import InMemoryChannelLayer

GROUP_SIZES = (100, 1_000, 10_000)
ROUNDS = 50
MESSAGE: dict[str, Any] = {"type": "chat.message", "text": "hello"}


def per_delivery(samples: list[float], members: int) -> str:
    median, best = (value / members * 1e6 for value in (statistics.median(samples), min(samples)))
    return f"{median:5.2f} ({best:4.2f})"


def collections() -> int:
    return sum(generation["collections"] for generation in gc.get_stats())


async def until(condition: Callable[[], bool]) -> None:
    while not condition():
        await checkpoint()


async def grouped_layer(
    members: int, capacity: int = 100
) -> tuple[InMemoryChannelLayer, list[str]]:
    layer = InMemoryChannelLayer(capacity=capacity)
    names = [f"member.{i}" for i in range(members)]
    for name in names:
        await layer.group_add("room", name)
    return layer, names


async def bench_idle(members: int) -> tuple[str, str, str]:
    """Time ``group_send`` to drained members, and the drain after it."""
    layer, names = await grouped_layer(members)
    sends, drains, gcs = [], [], 0
    for _ in range(ROUNDS):
        before = collections()
        start = time.perf_counter()
        await layer.group_send("room", MESSAGE)
        sends.append(time.perf_counter() - start)
        gcs += collections() - before
        start = time.perf_counter()
        for name in names:
            layer.receive_nowait(name)
        drains.append(time.perf_counter() - start)
    gc_rate = f"{gcs / ROUNDS:5.1f}"
    return per_delivery(sends, members), per_delivery(drains, members), gc_rate


async def bench_backlog(members: int) -> str:
    """Time ``group_send`` to members that already hold messages."""
    layer, _ = await grouped_layer(members, capacity=ROUNDS + 1)
    await layer.group_send("room", MESSAGE)
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        await layer.group_send("room", MESSAGE)
        samples.append(time.perf_counter() - start)
    return per_delivery(samples, members)


async def run_woken(
    members: int,
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
            await until(lambda: received[0] == members)
            samples.append(time.perf_counter() - start)
            await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    return per_delivery(samples, members)


async def bench_layer_woken(members: int) -> str:
    layer, names = await grouped_layer(members)

    async def start(tg: anyio.abc.TaskGroup, got: Callable[[], None]) -> None:
        async def receiver(name: str) -> None:
            while True:
                await layer.receive(name)
                got()

        for name in names:
            tg.start_soon(receiver, name)

    return await run_woken(members, start, lambda: layer.group_send("room", MESSAGE))


async def bench_streams_woken(members: int) -> str:
    sends: list[MemoryObjectSendStream[dict[str, Any]]] = []

    async def start(tg: anyio.abc.TaskGroup, got: Callable[[], None]) -> None:
        async def receiver(stream: MemoryObjectReceiveStream[dict[str, Any]]) -> None:
            async for _ in stream:
                got()

        for _ in range(members):
            send, receive = anyio.create_memory_object_stream[dict[str, Any]](100)
            sends.append(send)
            tg.start_soon(receiver, receive)

    async def fan_out() -> None:
        await checkpoint()
        for send in sends:
            send.send_nowait(MESSAGE)

    return await run_woken(members, start, fan_out)


async def main(backend: str, group_sizes: list[int]) -> None:
    for members in group_sizes:
        idle, drain, gc_rate = await bench_idle(members)
        backlog = await bench_backlog(members)
        woken = await bench_layer_woken(members)
        streams = await bench_streams_woken(members)
        print(
            f"{backend:>8} {members:>7}  {idle}  {backlog}  {woken}  {drain}  {gc_rate}"
            f"  |  {streams}"
        )


if __name__ == "__main__":
    sizes = [int(arg) for arg in sys.argv[1:]] or list(GROUP_SIZES)
    print(f"µs per delivery, median (best) of {ROUNDS} rounds; gc: collections per idle send")
    print(
        f"{'backend':>8} {'members':>7}  {'idle':<12}  {'backlog':<12}  {'woken':<12}"
        f"  {'drain':<12}  {'gc':>5}  |  streams woken"
    )
    for backend in ("asyncio", "trio"):
        anyio.run(main, backend, sizes, backend=backend)
