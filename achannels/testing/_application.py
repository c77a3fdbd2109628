"""Run one ASGI application for a test, in a task group the test or its host owns."""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from typing import Any

import anyio
from anyio.lowlevel import checkpoint

from achannels._asgi import Message

from ._runner import AppRunner

__all__ = ["ApplicationCommunicator"]


def unexpected_type(expected: str, message: Message) -> str:
    """Say that ``message`` is not of the ``expected`` type, in Channels' words."""
    return f"Expected type '{expected}', but was '{message.get('type')}'"


# The public ``timeout=`` arguments (ASYNC109) are the Channels/asgiref API, kept for
# compatibility; new tests may pass None and use anyio.fail_after instead.


class ApplicationCommunicator(AppRunner):
    """Run an ASGI application in a task group, feed it messages and read its replies.

    Use it as an async context manager (preferred)::

        async with ApplicationCommunicator(app, scope) as comm:
            await comm.send_input({"type": "http.request"})
            message = await comm.receive_output()

    Entering starts the application in a task group; leaving cancels the application if
    it is still running and waits for it, so nothing is left running. Without
    ``async with`` (the Channels call style) the first call starts the application in
    the communicator host around the test (see :mod:`achannels.testing`), which cancels
    and joins it when the test ends if :meth:`wait` or :meth:`stop` did not end it.

    The application runs with :data:`achannels._asgi.raise_app_errors` set, so a
    consumer's exception reaches the test. Once the application raised, every method
    that checks for it re-raises the original exception (a group holding a single
    exception is unwrapped); if no call did, leaving the ``async with`` block does.

    Attributes:
        application: the ASGI 3 application under test.
        scope: the connection scope passed to it.
    """

    # -- the asgiref API ----------------------------------------------------------------

    async def send_input(self, message: Message) -> None:
        """Queue ``message`` for the application's ``receive()``.

        A checkpoint. Never blocks: the queue is unbounded.

        Raises:
            Exception: the application's exception, if it already raised one.
        """
        await self._start()
        self._raise_error()
        self._inbox.put(message)
        await checkpoint()

    async def receive_output(self, timeout: float | None = 1) -> Message:  # noqa: ASYNC109
        """Return the next message the application sent, waiting for one.

        A checkpoint. Concurrent callers each get a different message.

        Args:
            timeout: seconds to wait (``None``: no limit). Kept for compatibility;
                prefer ``anyio.fail_after`` around the call.

        Raises:
            TimeoutError: nothing arrived in time (the application is then cancelled
                and joined, like asgiref does), or the application returned without
                sending anything more.
            Exception: the application's exception, if it raised one.
        """
        await self._start()
        await checkpoint()
        self._raise_error()
        with anyio.move_on_after(timeout):
            while not self._outbox.items and not self._done:
                await self._outbox.wait_changed()
        if self._outbox.items:
            return self._outbox.items.popleft()
        if self._done:
            self._raise_error()
            raise TimeoutError("the application finished without sending another message")
        await self._cancel_and_join()
        self._raise_error()
        raise TimeoutError(f"the application sent nothing within {timeout} seconds")

    async def receive_nothing(self, timeout: float | None = 0.1, interval: float = 0.01) -> bool:  # noqa: ASYNC109
        """Return whether the application sends nothing for ``timeout`` seconds.

        Returns at once when a message is waiting or the application has finished.
        A checkpoint. The message, if any, stays queued for :meth:`receive_output`.

        Args:
            timeout: seconds to watch (``None``: until a message or the return).
            interval: ignored; kept for compatibility (this waits on an event, it
                does not poll).

        Raises:
            Exception: the application's exception, if it raised one.
        """
        del interval
        await self._start()
        await checkpoint()
        self._raise_error()
        with anyio.move_on_after(timeout):
            while not self._outbox.items and not self._done:
                await self._outbox.wait_changed()
        if self._outbox.items:
            return False
        self._raise_error()
        return True

    async def wait(self, timeout: float | None = 1) -> None:  # noqa: ASYNC109
        """Wait for the application to return, and end the communicator.

        If this call fails or is cancelled, the application is cancelled too.

        Raises:
            TimeoutError: the application did not return in time; it was cancelled.
            Exception: the application's exception, if it raised one.
        """
        await self._start()
        try:
            if not await self._join(timeout):
                await self._cancel_and_join()
                raise TimeoutError(f"the application did not return within {timeout} seconds")
            self._raise_error()
        finally:
            await self._finish()

    def stop(self, exceptions: bool = True) -> Awaitable[None]:
        """Cancel the application if it still runs and end the communicator.

        Works both ways: called as asgiref's (``comm.stop()``), it cancels the
        application and, if the application already raised, raises that; awaited
        (``await comm.stop()``), it also waits until the application is gone, then
        raises its exception.

        Args:
            exceptions: raise the application's exception, if it raised one; if
                false, the exception is dismissed (the test's end does not raise it).
        """
        if not exceptions:
            self._error_seen = True  # dismissed, also if it is raised while cancelled
        if self._app_scope is not None and not self._done:
            self._app_scope.cancel()
        if self._done:
            self._settle_error(raise_it=exceptions)
        return _Stopping(self, exceptions)

    async def _stop(self, exceptions: bool) -> None:
        try:
            await self._cancel_and_join()
            self._settle_error(raise_it=exceptions)
        finally:
            await self._finish()


class _Stopping:
    """What ``stop()`` returns: awaiting it joins the application.

    Not a coroutine, so a ``stop()`` that is not awaited (asgiref's synchronous form)
    leaves no "never awaited" warning.
    """

    __slots__ = ("_communicator", "_exceptions")

    def __init__(self, communicator: ApplicationCommunicator, exceptions: bool) -> None:
        self._communicator = communicator
        self._exceptions = exceptions

    def __await__(self) -> Generator[Any, None, None]:
        return self._communicator._stop(self._exceptions).__await__()
