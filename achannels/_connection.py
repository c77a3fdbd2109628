"""The per-connection runtime: one task group per connection, owned tasks, cleanup.

Every connection (WebSocket or HTTP) runs :func:`run_connection`, which opens the
connection's task group, starts the disconnect watcher in it, runs the consumer in a
cancel scope of its own, and on the way out - return, exception, client disconnect,
cancellation or shutdown - runs the connection's closing work shielded and bounded,
then cancels and joins every task the consumer started.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVarTuple

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus

from ._asgi import Message, Receive, Scope, Send, raise_app_errors
from ._layer_client import EventHandler, LayerClient
from ._outcome import Blame, Outcome, outcome_for
from ._receiver import Receiver

if TYPE_CHECKING:
    from .layers import ChannelLayer

__all__ = ["Connection", "Connections", "RuntimeStatistics", "run_connection"]

logger = logging.getLogger("achannels")

PosArgs = TypeVarTuple("PosArgs")
#: A cleanup callback (see :meth:`Connection.add_cleanup`).
Cleanup = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RuntimeStatistics:
    """A snapshot of a runtime's connections and tasks.

    Attributes:
        connections_live: connections whose consumer or cleanup is still running.
        connections_total: connections served since start.
        tasks_live: tasks achannels runs for live connections (watchers and the
            tasks consumers started); back to 0 when every connection has ended.
        tasks_started: tasks started since start.
        errors: consumer and worker exceptions logged (each consumer error closed its
            connection with 1011/500; a worker error only skipped that message).
        worker_messages: layer messages handled by ``@router.channel`` workers.
        sends_after_close: WebSocket frames a consumer class sent after the server had
            closed its socket for shutdown; dropped (the client can no longer get them).
    """

    connections_live: int
    connections_total: int
    tasks_live: int
    tasks_started: int
    errors: int
    worker_messages: int
    sends_after_close: int = 0


class Connections:
    """The live connections of a router or a server, with their counters."""

    def __init__(self) -> None:
        self.live: set[Connection] = set()
        self.connections_total = 0
        self.tasks_live = 0
        self.tasks_started = 0
        self.errors = 0
        self.worker_messages = 0
        self.sends_after_close = 0
        self._idle: anyio.Event | None = None

    def statistics(self) -> RuntimeStatistics:
        """Return a snapshot of the counters."""
        return RuntimeStatistics(
            connections_live=len(self.live),
            connections_total=self.connections_total,
            tasks_live=self.tasks_live,
            tasks_started=self.tasks_started,
            errors=self.errors,
            worker_messages=self.worker_messages,
            sends_after_close=self.sends_after_close,
        )

    def _add(self, connection: Connection) -> None:
        self.live.add(connection)
        self.connections_total += 1

    def _remove(self, connection: Connection) -> None:
        self.live.discard(connection)
        if not self.live and self._idle is not None:
            self._idle.set()
            self._idle = None

    async def wait_idle(self) -> None:
        """Wait until no connection is live. A checkpoint."""
        while self.live:
            idle = self._idle = self._idle or anyio.Event()
            await idle.wait()
        await anyio.lowlevel.checkpoint()

    async def close_all(self, *, code: int, grace: float, cleanup_timeout: float = 5.0) -> None:
        """Close every live connection with ``code`` and wait for them to end.

        Each connection's consumer gets ``grace`` seconds to finish after its close
        (WebSockets receive a close frame; streaming HTTP responses end at once), then
        it is cancelled and its shielded cleanup gets up to ``cleanup_timeout`` more.
        """
        for connection in list(self.live):
            if not connection.ending:  # one already ending needs no close frame
                connection.request_close(code)
        with anyio.move_on_after(grace):
            await self.wait_idle()
        for connection in list(self.live):
            connection.cancel()
        with anyio.move_on_after(cleanup_timeout):
            await self.wait_idle()


#: The server-wide registry when achannels' own serve entry point runs the app.
server_connections: ContextVar[Connections | None] = ContextVar(
    "achannels_server_connections", default=None
)


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Limits and timings a router applies to each of its connections."""

    watch_after: float = 0.1
    max_buffered: int = 64
    cleanup_timeout: float = 5.0


class Connection(LayerClient):
    """What WebSocket and HTTP connections share: scope, tasks, layer, closing work."""

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        connections: Connections,
        settings: ConnectionSettings,
        layer: ChannelLayer | None = None,
        path_params: dict[str, Any] | None = None,
    ) -> None:
        self.scope = scope
        #: The converted path parameters of the route that matched.
        self.path_params: dict[str, Any] = path_params or {}
        self._send = send
        self._receiver = Receiver(
            receive, watch_after=settings.watch_after, max_buffered=settings.max_buffered
        )
        self._connections = connections
        self._settings = settings
        self._layer = layer
        # The consumer runs in its task group's own cancel scope (one scope less per
        # connection): cancelling it stops the consumer and the tasks it started, while
        # the runtime's own tasks, shielded, are stopped through their own scopes.
        self._task_group: TaskGroup | None = None
        self._error: Exception | None = None
        self._server_error: Exception | None = None
        self._ending = False
        #: Cancelled from outside (the server, an enclosing task group), not by us.
        self._abandoned = False
        # None, the one callback added, or a list once there are two: most connections
        # have one at most (a consumer class's disconnect), and the layer's own cleanup
        # needs no entry.
        self._cleanups: Cleanup | list[Cleanup] | None = None
        self._user_tasks = 0  # live tasks the consumer started (not the runtime's own)
        # LayerClient's state, set here so that every connection's instance dict keeps
        # one compact layout (set later, the first group_add resizes it: ~800 bytes).
        self._channel_name: str | None = None
        self._groups: list[str] | None = None
        self._handlers: dict[str, EventHandler] | None = None
        self._deliver: EventHandler | None = None
        self._reader_scope: anyio.CancelScope | None = None
        self._reading_stopped = False

    @property
    def ending(self) -> bool:
        """Whether the consumer has finished and the connection is cleaning up."""
        return self._ending

    # -- the ASGI message path (class consumers use it directly) ------------------------

    async def receive_message(self) -> Message:
        """Return the next ASGI message from the client (or the worker). A checkpoint."""
        return await self._receiver.receive()

    async def send_message(self, message: Message) -> None:
        """Pass an ASGI message to the server. A checkpoint."""
        await self._send(message)

    @property
    def exchange_over(self) -> bool:
        """Whether the exchange with the client is complete (response sent, socket closed)."""
        return False

    def disconnect_message(self) -> Message:
        """The client's disconnect message if it was read, else one that says it ended.

        For a scope without a client (a layer channel) there is none: an empty dict.
        """
        return self._receiver.end_message or {}

    # -- tasks owned by the connection ------------------------------------------

    def start_soon(
        self,
        func: Callable[[*PosArgs], Awaitable[Any]],
        *args: *PosArgs,
        name: object = None,
    ) -> None:
        """Start ``func(*args)`` as a task owned by this connection.

        The task is cancelled and joined when the connection ends. If it raises, the
        connection fails as if the consumer had raised: logged, closed with 1011.

        Raises:
            RuntimeError: the connection has already ended.
        """
        task_group = self._require_task_group()
        self._count_task(by_consumer=True)
        task_group.start_soon(self._run_task, func, args, True, name=name)

    async def start(
        self,
        func: Callable[..., Awaitable[Any]],
        *args: object,
        name: object = None,
    ) -> Any:
        """Start ``func(*args, task_status=...)`` and wait until it calls ``started()``.

        Like ``TaskGroup.start``: returns the value passed to ``task_status.started``.
        """
        task_group = self._require_task_group()
        self._count_task(by_consumer=True)
        return await task_group.start(self._run_started_task, func, args, name=name)

    def _start_own(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start one of the runtime's own tasks (the layer reader).

        Unlike the consumer's tasks it is stopped, not cancelled from outside, when
        the connection ends (see :func:`run_connection`).
        """
        task_group = self._require_task_group()
        self._count_task(by_consumer=False)
        task_group.start_soon(self._run_task, func, args, False)

    def _require_task_group(self) -> TaskGroup:
        if self._task_group is None:
            raise RuntimeError("the connection has ended; it cannot start tasks")
        return self._task_group

    def _count_task(self, *, by_consumer: bool) -> None:
        if by_consumer:
            self._user_tasks += 1
        self._connections.tasks_live += 1
        self._connections.tasks_started += 1
        if extra := server_connections.get():
            extra.tasks_live += 1
            extra.tasks_started += 1

    def _uncount_task(self, *, by_consumer: bool) -> None:
        if by_consumer:
            self._user_tasks -= 1
        self._connections.tasks_live -= 1
        if extra := server_connections.get():
            extra.tasks_live -= 1

    async def _run_task(
        self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...], by_consumer: bool
    ) -> None:
        try:
            await func(*args)
        except Exception as exc:
            self.fail(exc)
        finally:
            self._uncount_task(by_consumer=by_consumer)

    async def _run_started_task(
        self,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        *,
        task_status: TaskStatus[Any],
    ) -> None:
        try:
            await func(*args, task_status=task_status)
        except Exception as exc:
            self.fail(exc)
        finally:
            self._uncount_task(by_consumer=True)

    def add_cleanup(self, callback: Cleanup) -> None:
        """Run ``callback()`` when the connection ends, shielded and bounded.

        Callbacks run last-added first, before the close frame (or error response) goes
        out; then the connection leaves its layer groups and releases its channel.
        """
        cleanups = self._cleanups
        if cleanups is None:
            self._cleanups = callback
        elif isinstance(cleanups, list):
            cleanups.append(callback)
        else:
            self._cleanups = [cleanups, callback]

    # -- ending -------------------------------------------------------------------

    def fail(self, exc: Exception) -> None:
        """Record ``exc`` as the reason the connection failed and stop the consumer."""
        if self._error is None:
            self._error = exc
        else:
            logger.error("another error in a failed connection", exc_info=exc)
        self.cancel()

    def cancel(self) -> None:
        """Cancel the consumer and the tasks it started; its cleanup still runs."""
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    def request_close(self, code: int) -> None:
        """Ask the connection to close with ``code`` (server shutdown)."""
        self.cancel()

    def _client_left(self) -> None:
        self.cancel()

    def _start_watcher(self) -> None:
        """Start the disconnect watcher (claimed with ``claim_watch()`` first).

        It ends while the consumer waits in ``receive()``, which starts it again.
        """
        task_group = self._task_group
        if task_group is not None and not self._ending:
            self._count_task(by_consumer=False)
            task_group.start_soon(_watch, self)

    def _settle(self) -> Outcome:
        """Decide what the client sees for how the consumer ended; log a server error.

        Synchronous and without I/O: connections note here what they will send (a
        close frame, an error response) so that nothing sent meanwhile - by cleanup
        handlers - overtakes it. :meth:`_tell_client` sends it once cleanups ran.
        """
        outcome = outcome_for(self._error)
        if outcome.blame is Blame.SERVER and self._error is not None:
            self._log_error(self._error)
        return outcome

    async def _tell_client(self) -> None:
        """Send what :meth:`_settle` decided (nothing for a scope without a client)."""

    @property
    def _has_cleanups(self) -> bool:
        return bool(self._cleanups) or self._channel_name is not None

    async def _run_cleanups(self) -> None:
        while (cleanups := self._cleanups) is not None:  # one may add another
            if not isinstance(cleanups, list):
                self._cleanups = None
                await _run_cleanup(cleanups)
            elif cleanups:
                await _run_cleanup(cleanups.pop())
            else:
                self._cleanups = None
        if self._channel_name is not None:
            await _run_cleanup(self._leave_groups)
            await _run_cleanup(self._release_channel)

    def _log_error(self, exc: Exception) -> None:
        """Count and log a server-side error (not a client's bad input or departure)."""
        self._server_error = exc
        self._connections.errors += 1
        logger.error(
            "consumer for %s %r raised; connection closed",
            self.scope.get("type"),
            self.scope.get("path", self.scope.get("channel")),
            exc_info=exc,
        )


async def run_connection(connection: Connection, consumer: Awaitable[Any]) -> None:
    """Await ``consumer`` (the consumer's coroutine) for ``connection`` in a task group of its own.

    A coroutine rather than a function to call: an idle connection then keeps no
    closure alive. One the connection ends before starting is closed unstarted.
    Returns when the consumer and every task it started have finished. Re-raises a
    consumer's server-side error (one that closed with 1011 / answered 500) only when
    :data:`achannels._asgi.raise_app_errors` is set; a client's departure or bad input
    ends the connection with its close code and is never re-raised.
    """
    connections = connection._connections
    extra = server_connections.get()
    connections._add(connection)
    if extra is not None:
        extra._add(connection)
    try:
        async with anyio.create_task_group() as task_group:
            connection._task_group = task_group
            if connection.scope.get("type") in _CLIENT_SCOPES:  # channel scopes have no client
                connection._receiver.restart_watcher_with(connection._start_watcher)
                if connection._receiver.claim_watch():
                    connection._start_watcher()
            try:
                await consumer
            except Exception as exc:
                connection.fail(exc)
            except anyio.get_cancelled_exc_class():
                connection._abandoned = not task_group.cancel_scope.cancel_called
                raise
            finally:
                await _end(connection)
                # The runtime's own tasks are stopped rather than cancelled from outside:
                # they then end without an exception, whose traceback would be a
                # reference cycle left for the collector by every connection.
                connection._receiver.restart_watcher_with(None)
                connection._receiver.stop_watching()
                connection.stop_reading()
                if connection._user_tasks:
                    task_group.cancel_scope.cancel()
    finally:
        if isinstance(consumer, Coroutine):
            consumer.close()  # a no-op once it ran; unstarted, it would warn
        connection._task_group = None
        connection._forget_handlers()  # no cycle outlives the connection
        connections._remove(connection)
        if extra is not None:
            extra._remove(connection)
    if connection._server_error is not None and raise_app_errors.get():
        raise connection._server_error


_CLIENT_SCOPES = frozenset({"websocket", "http"})


async def _end(connection: Connection) -> None:
    """Settle, clean up, then tell the client; shielded, each step bounded.

    Group memberships are left (and a class consumer's disconnect handler has run)
    before the close frame or error response goes out, so a client - or a test -
    that has seen the close finds the connection out of its groups, on either backend.
    """
    connection._ending = True
    outcome = connection._settle()
    timeout = connection._settings.cleanup_timeout
    cleaned = not connection._has_cleanups
    # One shielded scope for both steps, each given ``timeout``: for a short-lived
    # connection a second scope costs about as much as its whole cleanup.
    with anyio.move_on_after(timeout, shield=True) as scope:
        if not cleaned:
            await connection._run_cleanups()
            cleaned = True
            scope.deadline = anyio.current_time() + timeout
        await _tell_client(connection, outcome)
    if not cleaned:
        logger.warning(
            "cleanup of %s %r did not finish within %s s; abandoned",
            connection.scope.get("type"),
            connection.scope.get("path", connection.scope.get("channel")),
            timeout,
        )
        with anyio.move_on_after(timeout, shield=True):
            await _tell_client(connection, outcome)


async def _run_cleanup(callback: Cleanup) -> None:
    try:
        await callback()
    except Exception:
        logger.exception("connection cleanup %r failed", callback)


async def _tell_client(connection: Connection, outcome: Outcome) -> None:
    try:
        await connection._tell_client()
    except Exception as exc:  # the transport may already be gone
        logger.debug("could not tell the client of %r how it ended (%s): %r",
                     connection.scope.get("path"), outcome, exc)  # fmt: skip


async def _watch(connection: Connection) -> None:
    try:
        await connection._receiver.watch(connection._client_left)
    finally:
        connection._uncount_task(by_consumer=False)
