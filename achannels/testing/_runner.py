"""The structured core of the communicators: where each application task runs.

An ``async with`` communicator runs its application in a task group of its own,
entered and left by the block. A call-style communicator (no ``async with``, as in
Channels tests) cannot own one: its calls sit at arbitrary depths of the test's
cancel scopes (``with anyio.move_on_after(3): await comm.disconnect()``), and a task
group entered by one call and left by another would have to nest with them. So its
application runs in a :class:`CommunicatorHost`: a task group opened *around* the
test, which the calls find through a context variable. A call only puts messages in
and waits for events; cancelling a call cancels the wait, never the application's
scope. When the host closes (the test ends), every application still running is
cancelled and joined, and an exception no call raised is raised.

Imports: ``achannels._asgi`` only; the communicator classes build on :class:`AppRunner`.
"""

from __future__ import annotations

from collections import deque
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import TaskGroup
from anyio.lowlevel import checkpoint

from achannels._asgi import ASGIApp, Message, Scope, raise_app_errors

__all__ = ["AppRunner", "CommunicatorHost", "open_communicator_host"]


class _Mailbox:
    """An unbounded FIFO of ASGI messages that one side can wait on.

    Unbounded on purpose: like asgiref's queues, ``send_input`` and the application's
    ``send`` never block, and the test decides how much it puts in.
    """

    def __init__(self) -> None:
        self.items: deque[Message] = deque()
        self._changed: anyio.Event | None = None

    def put(self, message: Message) -> None:
        self.items.append(message)
        self.wake()

    def wake(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def wait_changed(self) -> None:
        # Waiters share one event, so concurrent waiters are all woken.
        if self._changed is None or self._changed.is_set():
            self._changed = anyio.Event()
        await self._changed.wait()

    async def get(self) -> Message:
        await checkpoint()
        while not self.items:
            await self.wait_changed()
        return self.items.popleft()


#: The host that call-style communicators started in this context use.
_current_host: ContextVar[CommunicatorHost | None] = ContextVar(
    "achannels_communicator_host", default=None
)

_NO_HOST = (
    "{name} is used without `async with` where no communicator host is running. "
    "Run the test under pytest with achannels installed (its pytest plugin runs every "
    "async test function in a host), wrap the code in "
    "`async with achannels.testing.open_communicator_host():`, or use "
    "`async with {name}(...) as communicator:`."
)


class CommunicatorHost:
    """Own the task group that runs the applications of call-style communicators.

    Get one from :func:`open_communicator_host`. While it is open, every communicator
    started without ``async with`` in its context (the code in the block and the tasks
    it starts) runs its application here, so the test's calls may end communicators
    in any order and from inside any cancel scope or timeout.

    Leaving the block cancels every application still running (a test need not
    disconnect), waits for each, and raises the exception an application raised that
    no call raised: the exception itself if there is one, an ``ExceptionGroup`` if
    there are several. If the block itself failed with an exception, an unseen
    application exception replaces it (it is the likely root cause; the block's
    exception is its ``__context__``); other ``BaseException``\\ s (cancellation, pytest
    outcomes) pass through unchanged. The block's own exception is never wrapped in a
    group. Leaving is shielded from cancellation: the applications are always joined.
    Enter and leave a host in one task (``async with`` does).
    """

    def __init__(self) -> None:
        self._task_group: TaskGroup | None = None
        self._token: Token[CommunicatorHost | None] | None = None
        self._runners: dict[AppRunner, None] = {}  # started and not known to be settled
        self._closed = False

    async def __aenter__(self) -> Self:
        """Open the task group and make this the host of the current context."""
        if self._task_group is not None or self._closed:
            raise RuntimeError("this communicator host was already opened")
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        self._task_group = task_group
        self._token = _current_host.set(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Cancel and join what still runs; raise an exception no call raised."""
        task_group = self._task_group
        if task_group is None or self._token is None:
            return
        _current_host.reset(self._token)
        self._closed = True
        with anyio.CancelScope(shield=True):
            for runner in list(self._runners):
                await runner._cancel_and_join()
        # Every application task has returned, so the group exits at once; it is not
        # given the block's exception, which trio would wrap in an ExceptionGroup.
        await task_group.__aexit__(None, None, None)
        unseen = [error for runner in self._runners if (error := runner._take_unseen_error())]
        self._runners.clear()
        if unseen and (exc is None or isinstance(exc, Exception)):
            if len(unseen) == 1:
                raise unseen[0]
            raise ExceptionGroup("applications of call-style communicators raised", unseen)

    def _start(
        self, runner: AppRunner, app_scope: anyio.CancelScope, done: anyio.Event, name: str
    ) -> None:
        if self._closed or self._task_group is None:
            raise RuntimeError("this communicator host is closed")
        self._runners[runner] = None
        self._task_group.start_soon(runner._run_app, app_scope, done, name=name)

    def _settled(self, runner: AppRunner) -> None:
        """Forget ``runner``: its application ended and has nothing left to raise."""
        self._runners.pop(runner, None)


def open_communicator_host() -> CommunicatorHost:
    """Return a host for call-style communicators, to use as ``async with``.

    achannels' pytest plugin opens one around every async test function, whichever
    plugin runs it (AnyIO's, pytest-asyncio, pytest-trio). Open one yourself where no
    plugin does: in a ``unittest``/Django ``TestCase`` run by ``manage.py test``, in a
    script, or in a fixture that starts call-style communicators::

        async with open_communicator_host():
            comm = WebsocketCommunicator(app, "/ws/")
            assert (await comm.connect())[0]
        # the application was cancelled and joined here

    Hosts nest: communicators use the innermost one open in their context.
    """
    return CommunicatorHost()


def _single(exc: Exception) -> Exception:
    """Unwrap exception groups that hold exactly one exception."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class AppRunner:
    """Run one application for a communicator, with the queues around it.

    The context manager form enters a task group of its own in ``__aenter__`` and
    exits it in ``__aexit__``. In call style (``_managed`` false) the first call starts
    the application in the :class:`CommunicatorHost` of its context.
    """

    def __init__(self, application: ASGIApp, scope: Scope) -> None:
        self.application = application
        self.scope = scope
        self._inbox = _Mailbox()
        self._outbox = _Mailbox()
        self._task_group: TaskGroup | None = None
        self._host: CommunicatorHost | None = None
        # Both made by the first call: creating them needs the running event loop.
        self._app_scope: anyio.CancelScope | None = None
        self._app_done: anyio.Event | None = None
        self._error: Exception | None = None
        self._error_seen = False
        self._managed = False
        self._closed = False

    # -- structure ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start the application in a new task group."""
        if self._app_done is not None or self._closed:
            raise RuntimeError("this communicator was already started")
        self._managed = True
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Cancel the application if it still runs, wait for it, raise its exception."""
        # The block's own exception is not handed to the task group: trio would wrap it
        # in an ExceptionGroup, and the test should see it as it was raised.
        await self._exit_task_group()
        # An application error nobody saw yet is the root cause of a failing block.
        unseen = self._error is not None and not self._error_seen
        if unseen and (exc is None or isinstance(exc, Exception)):
            self._raise_error()

    @property
    def _name(self) -> str:
        return f"ASGI application for {self.scope.get('type')} {self.scope.get('path', '')}"

    async def _start(self) -> None:
        if self._app_done is not None or self._closed:
            return
        if self._managed:
            task_group = anyio.create_task_group()
            await task_group.__aenter__()
            self._task_group = task_group
            self._app_scope, self._app_done = anyio.CancelScope(), anyio.Event()
            task_group.start_soon(self._run_app, self._app_scope, self._app_done, name=self._name)
            return
        host = _current_host.get()
        if host is None:
            raise RuntimeError(_NO_HOST.format(name=type(self).__name__))
        app_scope, done = anyio.CancelScope(), anyio.Event()
        host._start(self, app_scope, done, self._name)
        self._host, self._app_scope, self._app_done = host, app_scope, done

    async def _run_app(self, app_scope: anyio.CancelScope, done: anyio.Event) -> None:
        # This task runs in a copy of the starting context: the flag stays in it.
        raise_app_errors.set(True)
        try:
            with app_scope:
                await self.application(self.scope, self._inbox.get, self._send)
        except Exception as exc:
            self._error = _single(exc)
        finally:
            done.set()
            self._outbox.wake()
            if self._error is None and self._host is not None:
                self._host._settled(self)

    async def _send(self, message: Message) -> None:
        await checkpoint()
        self._outbox.put(message)

    async def _exit_task_group(self) -> None:
        task_group = self._task_group
        self._closed = True
        if task_group is None:
            return
        self._task_group = None
        if self._app_scope is not None:
            self._app_scope.cancel()
        await task_group.__aexit__(None, None, None)

    async def _finish(self) -> None:
        """End a call-style communicator: cancel what is left of its application.

        Does not wait: the calls that end a communicator have waited already unless
        they failed or were cancelled, and the host joins the application at the latest.
        """
        if not self._managed:
            self._closed = True
            if self._app_scope is not None and not self._done:
                self._app_scope.cancel()

    def _raise_error(self) -> None:
        self._settle_error(raise_it=True)

    def _settle_error(self, *, raise_it: bool) -> None:
        """Raise the application's exception, or dismiss it; either way it is seen."""
        if self._error is not None:
            self._error_seen = True
            if self._host is not None:
                self._host._settled(self)
            if raise_it:
                raise self._error

    def _take_unseen_error(self) -> Exception | None:
        if self._error is None or self._error_seen:
            return None
        self._error_seen = True
        return self._error

    @property
    def _done(self) -> bool:
        return self._app_done is None or self._app_done.is_set()

    async def _cancel_and_join(self) -> None:
        if self._app_scope is not None and self._app_done is not None:
            self._app_scope.cancel()
            await self._app_done.wait()

    async def _join(self, seconds: float | None) -> bool:
        """Wait up to ``seconds`` for the application; return whether it ended."""
        if self._app_done is not None:
            with anyio.move_on_after(seconds):
                await self._app_done.wait()
        return self._done

    async def _end(self, message: Message | None, seconds: float | None) -> None:
        """Deliver ``message`` (the connection is over) and end the application.

        The application gets ``seconds`` to return before it is cancelled; then its
        exception, if it raised one, is raised.
        """
        await self._start()
        if message is not None and not self._done:
            self._inbox.put(message)
        if not await self._join(seconds):
            await self._cancel_and_join()
        self._raise_error()
