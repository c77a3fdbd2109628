"""Test communicators: run an ASGI application inside a test and talk to it.

The names and return values are those of Channels' ``channels.testing`` (and of
asgiref's ``ApplicationCommunicator``), built on AnyIO so that the same tests run on
asyncio and trio, and structured so that nothing outlives the test.

Two ways to use a communicator:

1. As an async context manager (preferred)::

       async with WebsocketCommunicator(app, "/ws/") as comm:
           connected, subprotocol = await comm.connect()
           ...

   Entering starts the application in a task group; leaving the block cancels the
   application if it still runs and waits for it. An exception the application raised
   surfaces, as the original exception, from the next call that checks for it
   (``receive_output``, ``receive_from``, ``connect``, ``get_response``, ``wait``...)
   or, if none did, when the block is left.

2. In the Channels call style, without ``async with``::

       comm = WebsocketCommunicator(app, "/ws/")
       connected, subprotocol = await comm.connect()
       ...
       await comm.disconnect()

   The application then runs in the :class:`CommunicatorHost` around the test: a task
   group that outlives the calls, so they may end communicators in any order, from
   other tasks, and inside any cancel scope or timeout (``anyio.move_on_after``,
   ``asyncio.timeout``): cancelling a call cancels its wait (and the application,
   when the call was to end it), never a scope the application runs in.
   When the test function returns, every application still running is cancelled and
   joined (a test need not disconnect), and an exception an application raised that
   no call raised fails the test. achannels' pytest plugin opens the host around
   every async test function, under AnyIO's plugin, pytest-asyncio and pytest-trio
   alike; elsewhere (``manage.py test``, a script, an async fixture) open one with
   ``async with open_communicator_host():``. Without a host, the first call raises
   ``RuntimeError`` saying so.

The application runs with :data:`achannels._asgi.raise_app_errors` set, so achannels
consumers re-raise their exceptions to the communicator after closing the connection.

``timeout=`` arguments are kept for compatibility; new tests can pass ``None`` and
put ``anyio.fail_after`` around a call instead.

:class:`ChannelsLiveServerTestCase` (from :mod:`achannels.testing.live`) serves the
Django project with hypercorn for real clients; it needs Django and hypercorn and is
imported on first use, so ``import achannels.testing`` imports neither.
"""

from __future__ import annotations

import typing as _typing

from ._application import ApplicationCommunicator
from ._http import HttpCommunicator
from ._runner import CommunicatorHost, open_communicator_host
from ._websocket import WebsocketCommunicator

if _typing.TYPE_CHECKING:
    from .live import ChannelsLiveServerTestCase

__all__ = [
    "ApplicationCommunicator",
    "ChannelsLiveServerTestCase",
    "CommunicatorHost",
    "HttpCommunicator",
    "WebsocketCommunicator",
    "open_communicator_host",
]


def __getattr__(name: str) -> object:
    if name == "ChannelsLiveServerTestCase":
        from .live import ChannelsLiveServerTestCase

        return ChannelsLiveServerTestCase
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
