"""Django database access from async code: ``database_sync_to_async``.

``from channels.db import database_sync_to_async`` becomes
``from achannels.db import database_sync_to_async``. The function runs in a worker
thread through AnyIO, so it works under trio as well as asyncio, and stale Django
database connections are closed before and after it, as Channels does.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar, overload

import anyio.to_thread
from anyio import CapacityLimiter

__all__ = ["aclose_old_connections", "close_old_connections", "database_sync_to_async"]

P = ParamSpec("P")
R = TypeVar("R")


def close_old_connections() -> None:
    """Close Django database connections past their lifetime; a no-op without Django."""
    try:
        from django.conf import settings
        from django.db import close_old_connections as close
    except ImportError:
        return
    if settings.configured:
        close()


async def aclose_old_connections() -> None:
    """Close stale connections of the thread that runs Django's async ORM.

    As Channels' function: asgiref's thread-sensitive ``sync_to_async``, which
    achannels routes to one dedicated thread under trio (see
    ``achannels.django.install_trio_support``), so the connection that
    ``aget``/``acreate`` use is the one recycled when broken or too old.
    """
    if not _has_database():
        return
    from asgiref.sync import sync_to_async

    from achannels.django._asgiref import install_trio_support

    install_trio_support()  # idempotent: a project may use neither app nor handler
    await sync_to_async(close_old_connections, thread_sensitive=True)()


_NO_DATABASE: bool | None = None


def _has_database() -> bool:
    """Whether Django has a database ``close_old_connections()`` could act on.

    With no ``DATABASES`` (only Django's dummy backend) nothing can ever be opened,
    so the thread hop is skipped. Read once settings are configured.
    """
    global _NO_DATABASE
    if _NO_DATABASE is None:
        try:
            from django.conf import settings
            from django.db import connections
        except ImportError:
            return False
        if not settings.configured:
            return True  # not known yet: do not cache
        _NO_DATABASE = all(
            database.get("ENGINE") == "django.db.backends.dummy"
            for database in connections.settings.values()
        )
    return not _NO_DATABASE


@overload
def database_sync_to_async(
    func: Callable[P, R], *, limiter: CapacityLimiter | None = None
) -> Callable[P, Awaitable[R]]: ...


@overload
def database_sync_to_async(
    func: None = None, *, limiter: CapacityLimiter | None = None
) -> Callable[[Callable[P, R]], Callable[P, Awaitable[R]]]: ...


def database_sync_to_async(
    func: Callable[P, R] | None = None, *, limiter: CapacityLimiter | None = None
) -> Callable[P, Awaitable[R]] | Callable[[Callable[P, R]], Callable[P, Awaitable[R]]]:
    """Wrap a sync function so that awaiting it runs it in a worker thread.

    Usable as ``@database_sync_to_async`` or ``database_sync_to_async(f)``. The call is
    a checkpoint; cancelling it abandons the wait but the thread runs the function to
    its end (threads cannot be interrupted). ``limiter`` bounds how many such calls
    run at once (default: AnyIO's shared thread limiter).
    """

    def decorate(function: Callable[P, R]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(function)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            call = functools.partial(_with_fresh_connections, function, *args, **kwargs)
            return await anyio.to_thread.run_sync(call, limiter=limiter)

        return wrapper

    return decorate if func is None else decorate(func)


def _with_fresh_connections(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    close_old_connections()
    try:
        return function(*args, **kwargs)
    finally:
        close_old_connections()
