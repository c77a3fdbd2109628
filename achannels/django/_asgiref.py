"""Django's async paths under trio: asgiref's ``sync_to_async`` and ``Signal.asend``.

Django's async API (the async ORM: ``aget``, ``acreate``, ``async for`` over a
queryset, ``aupdate``...; async auth, sessions and cache calls; ``Signal.asend``) is
built on asgiref's ``SyncToAsync``, which runs on asyncio only: it starts with
``asyncio.get_running_loop()``, so under trio every one of those calls raises
``RuntimeError: no running event loop``. :func:`install_trio_support` patches two
classes so that they also work under trio. Each patched method first asks sniffio
which library is running and, unless it is trio, calls asgiref's or Django's own
code: asyncio behaviour is unchanged.

``SyncToAsync.__call__`` on trio runs the function in a worker thread, with
asgiref's semantics:

* thread-sensitive calls (the default, and what the ORM uses) run one at a time on
  one dedicated thread, as asgiref's single-thread executor does, so that a
  database connection (one per thread in Django) is used by a single thread;
* other calls run in AnyIO worker threads under AnyIO's default thread limiter
  (``anyio.to_thread.current_default_thread_limiter()``, the limiter
  ``achannels.db.database_sync_to_async`` uses by default), or in the ``executor``
  given to ``sync_to_async``;
* context variables are copied into the thread and the function's changes copied
  back; an exception being handled by the caller is visible to the function
  (``sys.exc_info()``), as Django's error handling expects;
* cancelling the caller drops a call still waiting for its thread, and otherwise
  waits for the function to return (a thread cannot be interrupted), then raises
  the cancellation: nothing is left running, as with ``anyio.to_thread.run_sync``
  (asgiref on asyncio stops waiting and leaves the thread running).

``Signal.asend`` and ``Signal.asend_robust`` on trio call the sync receivers in one
``sync_to_async`` call, then the async receivers concurrently in an AnyIO task group
(Django uses ``asyncio.gather`` or an ``asyncio.TaskGroup``). One receiver's
exception propagates as itself; several propagate as an ``ExceptionGroup``, as in
Django 6. Each async receiver runs in a copy of the caller's context.

Differences from asgiref on asyncio: ``ThreadSensitiveContext`` has no effect (every
thread-sensitive call shares the one thread); a thread-sensitive call made from code
that the dedicated thread is waiting for raises ``RuntimeError`` instead of
deadlocking, as asgiref does; asgiref's ``async_to_sync`` called in those threads
runs its coroutine in a private asyncio event loop, as it does in any thread.
"""

# asgiref and Django run on asyncio only, so this module asks which async library
# runs (sniffio) and, under trio, routes their calls through AnyIO.

from __future__ import annotations

import contextlib
import contextvars
import functools
import sys
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from asgiref import sync as asgiref_sync
from asgiref.sync import SyncToAsync, sync_to_async

try:  # trio depends on sniffio: without sniffio, trio is not running
    import sniffio
except ImportError:  # pragma: no cover - the session without trio
    sniffio = None  # type: ignore[assignment]

__all__ = ["install_trio_support"]

P = ParamSpec("P")
R = TypeVar("R")

_install_lock = threading.Lock()
_asgiref_call: Callable[..., Coroutine[Any, Any, Any]] = SyncToAsync.__call__

#: Runs every thread-sensitive call made on trio, one at a time, on one thread (its
#: thread starts at the first call and lives as long as the process, as asgiref's).
_thread_sensitive_executor = ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="achannels-thread-sensitive"
)


def install_trio_support() -> None:
    """Make asgiref's ``sync_to_async`` and Django's ``Signal.asend`` work under trio.

    Idempotent and thread-safe. Called by ``AppConfig.ready()`` of the ``achannels``
    and ``achannels.django`` apps and by ``achannels.django.get_asgi_application()``;
    call it yourself only when a project uses none of them.
    """
    with _install_lock:
        if SyncToAsync.__call__ is _call:
            return
        SyncToAsync.__call__ = _call  # type: ignore[method-assign]
        _patch_signal()


def _running_trio() -> bool:
    """Return whether the calling thread runs trio (sniffio's answer)."""
    if sniffio is None:  # pragma: no cover - the session without trio
        return False
    try:
        return sniffio.current_async_library() == "trio"
    except sniffio.AsyncLibraryNotFoundError:
        return False


# -- SyncToAsync ---------------------------------------------------------------------


async def _call(self: SyncToAsync[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``SyncToAsync.__call__``: asgiref's own, or through AnyIO's threads on trio."""
    __traceback_hide__ = True  # Django's debug page skips this frame
    if not _running_trio():
        result: R = await _asgiref_call(self, *args, **kwargs)
        return result
    return await _call_in_thread(self, functools.partial(self.func, *args, **kwargs))


async def _call_in_thread(converter: SyncToAsync[..., R], child: Callable[[], R]) -> R:
    """Run ``child`` as asgiref would, in the thread that ``converter`` asks for."""
    thread_sensitive: bool = converter._thread_sensitive
    if thread_sensitive:
        # asgiref's own flag: it is in the context that the dedicated thread runs
        # with, and so in code that thread waits for (``anyio.from_thread.run``).
        if SyncToAsync.deadlock_context.get(False):
            raise RuntimeError("Single thread executor already being used, would deadlock")
        SyncToAsync.deadlock_context.set(True)
    given_context: contextvars.Context | None = getattr(converter, "context", None)
    context = contextvars.copy_context() if given_context is None else given_context
    job = functools.partial(_run_in_context, context, sys.exc_info()[1], child)
    try:
        if thread_sensitive:
            return await _run_in_executor(_thread_sensitive_executor, job)
        if converter._executor is not None:
            return await _run_in_executor(converter._executor, job)
        return await anyio.to_thread.run_sync(job)
    finally:
        if given_context is None:
            _copy_back(context)
        if thread_sensitive:
            SyncToAsync.deadlock_context.set(False)


def _run_in_context(
    context: contextvars.Context, handling: BaseException | None, child: Callable[[], R]
) -> R:
    """Run ``child`` in ``context``; called in the worker thread."""
    return context.run(_enter_and_run, context, handling, child)


def _enter_and_run(
    context: contextvars.Context, handling: BaseException | None, child: Callable[[], R]
) -> R:
    __traceback_hide__ = True
    if sniffio is not None:
        # No async library runs in this thread (trio's own worker threads do this):
        # an asyncio loop started here (asgiref's async_to_sync) must not look like trio.
        sniffio.current_async_library_cvar.set(None)
    # asgiref re-homes its Local storage onto the thread that the work moved to.
    asgiref_sync._restore_context(context)
    if handling is None:
        return child()
    try:
        raise handling
    except BaseException:
        return child()


def _copy_back(context: contextvars.Context) -> None:
    """Copy the function's context changes into the caller's, as asgiref does."""
    # asgiref's own (private) helper, so that its semantics follow asgiref's version.
    if sniffio is None:  # pragma: no cover - the session without trio
        asgiref_sync._restore_context(context)
        return
    library = sniffio.current_async_library_cvar.get()
    asgiref_sync._restore_context(context)
    sniffio.current_async_library_cvar.set(library)


async def _run_in_executor(executor: Executor, job: Callable[[], R]) -> R:
    """Run ``job`` in ``executor`` and wait for it without blocking the event loop.

    A checkpoint; trio only. Cancelled while ``job`` waits for the executor, the call
    drops it; cancelled while ``job`` runs, it waits for it to finish (a thread cannot
    be interrupted); then it raises the cancellation.
    """
    call_soon = _loop_call_soon()
    done = anyio.Event()
    outcome: list[tuple[bool, Any]] = []

    def run_and_report() -> None:
        try:
            outcome.append((True, job()))
        except BaseException as exc:  # delivered to the caller below
            outcome.append((False, exc))
        call_soon(done.set)

    future = executor.submit(run_and_report)
    try:
        await done.wait()
    except anyio.get_cancelled_exc_class():
        if not future.cancel():  # it runs already
            with anyio.CancelScope(shield=True):
                await done.wait()
        raise
    ok, value = outcome[0]
    if ok:
        result: R = value
        return result
    raise value


def _loop_call_soon() -> Callable[[Callable[[], object]], None]:
    """Return "run this on the calling event loop" for a thread to report back with.

    AnyIO's ``from_thread.run_sync`` with the loop's token: the reporting thread waits
    for one loop turn. That costs the dedicated thread-sensitive thread about three
    quarters of its throughput under heavy concurrency (about 8k calls/s instead of
    32k with trio's non-blocking ``run_sync_soon``), the price of importing no
    backend directly.
    """
    token = anyio.lowlevel.current_token()

    def call_soon(callback: Callable[[], object]) -> None:
        with contextlib.suppress(RuntimeError):  # the caller's event loop has ended
            anyio.from_thread.run_sync(callback, token=token)

    return call_soon


# -- Signal.asend / asend_robust -----------------------------------------------------


def _patch_signal() -> None:
    from django.dispatch import Signal

    if not hasattr(Signal, "asend"):  # Django before 5.0 has no async signals
        return
    original_asend = Signal.asend
    original_asend_robust = Signal.asend_robust

    @functools.wraps(original_asend)
    async def asend(self: Any, sender: Any, **named: Any) -> list[tuple[Any, Any]]:
        if not _running_trio():
            responses: list[tuple[Any, Any]] = await original_asend(self, sender, **named)
            return responses
        return await _send(self, sender, named, robust=False)

    @functools.wraps(original_asend_robust)
    async def asend_robust(self: Any, sender: Any, **named: Any) -> list[tuple[Any, Any]]:
        if not _running_trio():
            responses: list[tuple[Any, Any]] = await original_asend_robust(self, sender, **named)
            return responses
        return await _send(self, sender, named, robust=True)

    Signal.asend = asend
    Signal.asend_robust = asend_robust


async def _send(
    signal: Any, sender: Any, named: dict[str, Any], *, robust: bool
) -> list[tuple[Any, Any]]:
    """Django's ``asend``/``asend_robust``, with an AnyIO task group for async receivers."""
    from django.dispatch.dispatcher import NO_RECEIVERS

    if not signal.receivers or signal.sender_receivers_cache.get(sender) is NO_RECEIVERS:
        return []
    sync_receivers, async_receivers = signal._live_receivers(sender)
    responses: list[tuple[Any, Any]] = []
    if sync_receivers:
        call_all = functools.partial(_call_receivers, signal, sync_receivers, sender, named)
        responses = await sync_to_async(call_all)(robust=robust)
    if async_receivers:
        results = await _await_receivers(signal, async_receivers, sender, named, robust=robust)
        responses.extend(zip(async_receivers, results, strict=True))
    return responses


async def _await_receivers(
    signal: Any, receivers: list[Any], sender: Any, named: dict[str, Any], *, robust: bool
) -> list[Any]:
    """Await the async ``receivers`` concurrently; return their results in order."""
    results: list[Any] = [None] * len(receivers)

    async def call(index: int, receiver: Any) -> None:
        try:
            results[index] = await receiver(signal=signal, sender=sender, **named)
        except Exception as exc:
            if not robust:
                raise
            signal._log_robust_failure(receiver, exc)
            results[index] = exc

    try:
        async with anyio.create_task_group() as tg:
            for index, receiver in enumerate(receivers):
                tg.start_soon(call, index, receiver)
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:  # as Django 6 does
            raise group.exceptions[0] from None
        raise
    return results


def _call_receivers(
    signal: Any, receivers: list[Any], sender: Any, named: dict[str, Any], *, robust: bool
) -> list[tuple[Any, Any]]:
    """Call the sync ``receivers`` in turn (in a worker thread), as Django does."""
    responses: list[tuple[Any, Any]] = []
    for receiver in receivers:
        try:
            response = receiver(signal=signal, sender=sender, **named)
        except Exception as exc:
            if not robust:
                raise
            signal._log_robust_failure(receiver, exc)
            response = exc
        responses.append((receiver, response))
    return responses
