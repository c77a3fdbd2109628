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

   The first call enters the communicator's task group in the calling task, and the
   call that ends the communicator exits it: ``disconnect()``, ``wait()``, ``stop()``,
   a ``connect()`` that does not accept, ``get_response()`` and ``send_disconnect()``
   (HTTP). There is no background task that outlives the test, so the rule is:
   **finish with one of those calls, in the task that made the first call, and not
   inside a narrower cancel scope** (``with anyio.fail_after(...)``) than the one the
   first call was made in. On trio, breaking it raises "Nursery stack corrupted"
   when the test ends; on asyncio it may leave the application running. When a test
   may fail half-way, prefer the ``async with`` form: it always cleans up.

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
from ._websocket import WebsocketCommunicator

if _typing.TYPE_CHECKING:
    from .live import ChannelsLiveServerTestCase

__all__ = [
    "ApplicationCommunicator",
    "ChannelsLiveServerTestCase",
    "HttpCommunicator",
    "WebsocketCommunicator",
]


def __getattr__(name: str) -> object:
    if name == "ChannelsLiveServerTestCase":
        from .live import ChannelsLiveServerTestCase

        return ChannelsLiveServerTestCase
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
