"""Helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Callable

import anyio


async def wait_until(condition: Callable[[], bool], *, within: float = 5.0) -> None:
    """Wait until ``condition()`` is true, checking every 5 ms; fail after ``within`` s.

    For internal state that offers no event to wait on (a watcher's progress, a
    counter in another task). Raises ``TimeoutError`` when the condition never holds.
    """
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - the state watched has no event of its own
            await anyio.sleep(0.005)
