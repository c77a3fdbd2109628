"""Background workers: consumers fed by named layer channels (``@router.channel``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

if TYPE_CHECKING:
    from ._connection import Connections
    from .layers import ChannelLayer

__all__ = ["ChannelWorker", "serve_channel_workers"]

logger = logging.getLogger("achannels.worker")

WorkerHandler = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ChannelWorker:
    """A handler for every message arriving on one layer channel."""

    channel: str
    handler: WorkerHandler
    concurrency: int = 1


async def serve_channel_workers(
    layer: ChannelLayer,
    workers: Sequence[ChannelWorker],
    counters: Connections,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``workers`` until cancelled; report started once each worker task started.

    A handler that raises is logged with its traceback and counted in
    ``statistics().errors``; the worker goes on with the next message. A message is
    taken off its channel only when a handler slot is free, so a busy worker leaves
    messages queued in the layer (where capacity and ``ChannelFull`` apply) rather
    than buffering them itself.
    """
    async with anyio.create_task_group() as task_group:
        for worker in workers:
            counters.tasks_started += 1
            counters.tasks_live += 1
            task_group.start_soon(_serve_channel, layer, worker, counters)
        task_status.started()


async def _serve_channel(layer: ChannelLayer, worker: ChannelWorker, counters: Connections) -> None:
    try:
        slots = anyio.Semaphore(worker.concurrency)
        async with anyio.create_task_group() as task_group:
            while True:
                await slots.acquire()
                try:
                    message = await layer.receive(worker.channel)
                except BaseException:
                    slots.release()
                    raise
                if worker.concurrency == 1:
                    await _handle(worker, message, counters, slots)
                else:
                    counters.tasks_started += 1
                    counters.tasks_live += 1
                    task_group.start_soon(_handle_in_task, worker, message, counters, slots)
    finally:
        counters.tasks_live -= 1


async def _handle(
    worker: ChannelWorker, message: dict[str, Any], counters: Connections, slots: anyio.Semaphore
) -> None:
    try:
        await worker.handler(message)
    except Exception:
        counters.errors += 1
        logger.exception(
            "worker for channel %r failed on a %r message; continuing",
            worker.channel,
            message.get("type"),
        )
    finally:
        counters.worker_messages += 1
        slots.release()


async def _handle_in_task(
    worker: ChannelWorker, message: dict[str, Any], counters: Connections, slots: anyio.Semaphore
) -> None:
    try:
        await _handle(worker, message, counters, slots)
    finally:
        counters.tasks_live -= 1
