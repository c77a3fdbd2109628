"""Bridges between sync and async code that work on asyncio and trio.

Channels code calls asgiref's ``async_to_sync(self.channel_layer.group_send)(...)``
inside sync consumers. asgiref's bridge runs on asyncio only (and, from a thread
achannels started, on the wrong event loop), so migrated sync code replaces
``from asgiref.sync import async_to_sync`` with
``from achannels.sync import async_to_sync``: the one extra import change a
migration needs.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio.from_thread
import anyio.to_thread
from anyio import CapacityLimiter

__all__ = ["async_to_sync", "sync_to_async"]

P = ParamSpec("P")
R = TypeVar("R")


def async_to_sync(func: Callable[P, Awaitable[R]]) -> Callable[P, R]:
    """Return a sync callable that runs ``func`` on the event loop and waits for it.

    Call it from a worker thread started by AnyIO (sync consumer handlers,
    ``database_sync_to_async``, ``anyio.to_thread.run_sync``).

    Raises:
        RuntimeError: called from the event loop thread or a thread AnyIO did not start.
    """

    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return await func(*args, **kwargs)

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return anyio.from_thread.run(functools.partial(call, *args, **kwargs))

    return wrapper


def sync_to_async(
    func: Callable[P, R], *, limiter: CapacityLimiter | None = None
) -> Callable[P, Awaitable[R]]:
    """Return a coroutine function that runs ``func`` in a worker thread.

    A checkpoint; cancelling the caller abandons the wait, not the thread.
    """

    @functools.wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        call = functools.partial(func, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=limiter)

    return wrapper
