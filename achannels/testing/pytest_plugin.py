"""pytest plugin: run every async test function inside a communicator host.

Installed with achannels (the ``pytest11`` entry point ``achannels``), so it is active
wherever achannels is installed; ``-p no:achannels`` turns it off, and
``-p achannels.testing.pytest_plugin`` turns it on where plugin autoloading is off.

Call-style communicators (no ``async with``) need a
:class:`~achannels.testing.CommunicatorHost` around the code that uses them. This
plugin wraps each coroutine test function, just before it runs, in one, whichever
plugin then runs it: AnyIO's (``@pytest.mark.anyio``), pytest-asyncio
(``@pytest.mark.asyncio``, auto mode) or pytest-trio (``@pytest.mark.trio``,
``trio_mode``); also async test methods of ``unittest.TestCase`` classes, Django's
included. The wrapper adds no task and no exception group: the test body runs in its
own task, and its exception (a failed assertion, a skip) comes out as it was raised.
When the test function returns, the applications still running are cancelled and
joined, and an exception one of them raised that no call raised fails the test.

Async fixtures run outside the test function, so a fixture that starts call-style
communicators opens its own host (or uses ``async with`` communicators).
"""

from __future__ import annotations

import functools
import inspect
import unittest
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import pytest

from ._runner import open_communicator_host

__all__ = ["pytest_runtest_call"]

TestFunction = Callable[..., Coroutine[Any, Any, Any]]


@pytest.hookimpl(tryfirst=True, wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Wrap an async test function in a communicator host while it runs.

    First among the wrappers of this hook, so that pytest-trio (which replaces the
    test function here) and pytest-asyncio and AnyIO (which read it later) all run the
    wrapped one.
    """
    __tracebackhide__ = True
    restore = _host_test(item)
    try:
        return (yield)
    finally:
        restore()


def _host_test(item: pytest.Item) -> Callable[[], None]:
    """Install the wrapper on ``item``; return what undoes it."""
    if not isinstance(item, pytest.Function):
        return _nothing
    test = item.obj
    if hasattr(test, "hypothesis") or not inspect.iscoroutinefunction(test):
        return _nothing
    instance = item.instance
    if isinstance(instance, unittest.TestCase):
        # unittest looks the method up on the instance, not on the pytest item.
        setattr(instance, item.name, in_communicator_host(test))
        return functools.partial(_delete_attribute, instance, item.name)
    item.obj = in_communicator_host(test)
    return functools.partial(setattr, item, "obj", test)


def in_communicator_host(test: TestFunction) -> TestFunction:
    """Return ``test`` running inside a communicator host (the same signature)."""

    @functools.wraps(test)
    async def run_in_communicator_host(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        async with open_communicator_host():
            return await test(*args, **kwargs)

    return run_in_communicator_host


def _nothing() -> None:
    return None


def _delete_attribute(instance: object, name: str) -> None:
    if name in vars(instance):
        delattr(instance, name)
