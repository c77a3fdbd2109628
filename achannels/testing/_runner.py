"""The structured core of the communicators: one application task in one task group."""

from __future__ import annotations

from collections import deque
from types import TracebackType
from typing import Self

import anyio
from anyio.abc import TaskGroup
from anyio.lowlevel import checkpoint

from achannels._asgi import ASGIApp, Message, Scope, raise_app_errors

__all__ = ["AppRunner"]


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


class _SharedGroup:
    """The task group that the call-style communicators of one test task share.

    Channels tests end communicators in any order (connect alice, connect bob,
    disconnect alice, disconnect bob). Task groups must be exited in the reverse of
    the order they were entered, so call-style communicators do not each open one:
    the first opens a group for its task, the others join it, and the last to finish
    exits it.
    """

    def __init__(self, task_group: TaskGroup) -> None:
        self.task_group = task_group
        self.users = 0


#: Per test task (by task id), the group its call-style communicators share.
_shared_groups: dict[int, _SharedGroup] = {}


async def _join_shared_group() -> _SharedGroup:
    task = anyio.get_current_task().id
    shared = _shared_groups.get(task)
    if shared is None:
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        shared = _shared_groups[task] = _SharedGroup(task_group)
    shared.users += 1
    return shared


async def _leave_shared_group(shared: _SharedGroup) -> None:
    shared.users -= 1
    if shared.users == 0:
        for task, group in list(_shared_groups.items()):
            if group is shared:
                del _shared_groups[task]
        await shared.task_group.__aexit__(None, None, None)


def _single(exc: Exception) -> Exception:
    """Unwrap exception groups that hold exactly one exception."""
    while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class AppRunner:
    """Own the task group that runs the application, and the queues around it.

    The context manager form enters the group in ``__aenter__`` and exits it in
    ``__aexit__``. In call style (``_managed`` false) the first call enters it through
    :meth:`_start` and :meth:`_finish` exits it, both in the test's task.
    """

    def __init__(self, application: ASGIApp, scope: Scope) -> None:
        self.application = application
        self.scope = scope
        self._inbox = _Mailbox()
        self._outbox = _Mailbox()
        self._task_group: TaskGroup | None = None
        self._app_scope: anyio.CancelScope | None = None
        self._app_done: anyio.Event | None = None
        self._error: Exception | None = None
        self._error_raised = False
        self._managed = False
        self._closed = False
        self._shared: _SharedGroup | None = None

    # -- structure ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Start the application in a new task group."""
        if self._task_group is not None or self._closed:
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
        unseen = self._error is not None and not self._error_raised
        if unseen and (exc is None or isinstance(exc, Exception)):
            self._raise_error()

    async def _start(self) -> None:
        if self._task_group is not None or self._closed:
            return
        if self._managed:
            task_group = anyio.create_task_group()
            await task_group.__aenter__()
        else:
            self._shared = await _join_shared_group()
            task_group = self._shared.task_group
        self._task_group = task_group
        self._app_scope = anyio.CancelScope()
        self._app_done = anyio.Event()
        name = f"ASGI application for {self.scope.get('type')} {self.scope.get('path', '')}"
        task_group.start_soon(self._run_app, self._app_scope, self._app_done, name=name)

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

    async def _send(self, message: Message) -> None:
        await checkpoint()
        self._outbox.put(message)

    async def _exit_task_group(self) -> None:
        task_group = self._task_group
        if task_group is None or self._closed:
            self._closed = True
            return
        self._closed = True
        if self._app_scope is not None:
            self._app_scope.cancel()
        if self._shared is None:
            await task_group.__aexit__(None, None, None)
            return
        # Call style: wait for this application only; the last one out exits the group.
        if self._app_done is not None:
            with anyio.CancelScope(shield=True):
                await self._app_done.wait()
        await _leave_shared_group(self._shared)

    async def _finish(self) -> None:
        """In call style, cancel what is left of the application and exit the group."""
        if not self._managed:
            await self._exit_task_group()

    def _raise_error(self) -> None:
        if self._error is not None:
            self._error_raised = True
            raise self._error

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
