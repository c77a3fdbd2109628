"""Exceptions raised by achannels.

The hierarchy::

    Exception
    ├── AchannelsError                  base of the errors achannels defines itself
    │   ├── WebSocketDisconnect         the client went away (carries code and reason)
    │   ├── WebSocketStateError         a call out of order: send before accept, accept twice
    │   ├── InvalidMessage (ValueError) a client frame the consumer cannot use
    │   │                               (malformed JSON, binary where text was asked);
    │   │                               closes the socket with 1007 / 1003 if left uncaught
    │   ├── MessageTooLarge             a client frame or layer message over the size limit
    │   ├── HTTPException               raise from an HTTP view to answer with a status
    │   ├── ChannelFull                 a layer channel is at capacity
    │   └── ChannelLayerUnavailable     a networked layer cannot reach its server
    ├── InvalidChannelLayerError        a layer is misconfigured or missing
    ├── RequestAborted                  the HTTP client went away mid-request
    ├── RequestTimeout                  the HTTP request body took too long
    ├── StopConsumer                    raise from a consumer to end it cleanly
    ├── AcceptConnection                raise from ``connect()`` to accept
    └── DenyConnection                  raise from ``connect()`` to deny

The names from ``InvalidChannelLayerError`` down are the ones Channels defines, so
``from channels.exceptions import X`` becomes ``from achannels.exceptions import X``.
AnyIO's ``ClosedResourceError`` (sending on a WebSocket that this side closed) and
``BrokenResourceError`` are reused rather than twinned.
"""

from __future__ import annotations

__all__ = [
    "AcceptConnection",
    "AchannelsError",
    "ChannelFull",
    "ChannelLayerUnavailable",
    "DenyConnection",
    "HTTPException",
    "InvalidChannelLayerError",
    "InvalidMessage",
    "MessageTooLarge",
    "RequestAborted",
    "RequestTimeout",
    "StopConsumer",
    "WebSocketDisconnect",
    "WebSocketStateError",
]


class AchannelsError(Exception):
    """Base class of the errors achannels defines itself."""


class WebSocketDisconnect(AchannelsError):
    """The client closed the WebSocket, or the connection dropped.

    Attributes:
        code: the close code the server reported (1005, "no status", when it gave none).
        reason: the close reason, ``""`` when none was given.
    """

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"WebSocket disconnected with code {self.code}" + (
            f": {self.reason}" if self.reason else ""
        )


class WebSocketStateError(AchannelsError, RuntimeError):
    """A WebSocket call made in a state that does not allow it."""


class InvalidMessage(AchannelsError, ValueError):
    """A client message the consumer cannot use.

    Left uncaught in a WebSocket consumer it closes the socket with :attr:`close_code`
    (1007 for malformed data, 1003 for the wrong frame kind) instead of 1011.
    """

    def __init__(self, message: str, *, close_code: int = 1007) -> None:
        super().__init__(message)
        self.close_code = close_code


class MessageTooLarge(AchannelsError, ValueError):
    """A message is larger than the configured limit."""


class HTTPException(AchannelsError):
    """Raise from an HTTP view to answer with ``status_code`` and ``detail``."""

    def __init__(self, status_code: int, detail: str = "") -> None:
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail


class ChannelFull(AchannelsError):
    """A channel layer channel is at capacity."""


class ChannelLayerUnavailable(AchannelsError):
    """A networked channel layer cannot reach its server (Redis down, restarting, unreachable).

    The call that raised it did not complete; the layer keeps trying to reconnect,
    and later calls succeed once the server is back.
    """


class InvalidChannelLayerError(ValueError):
    """The channel layer is misconfigured or not configured at all."""


class RequestAborted(Exception):
    """The HTTP client went away before the request body was read."""


class RequestTimeout(RequestAborted):
    """The HTTP request body took too long to arrive."""


class StopConsumer(Exception):
    """Raise from a consumer handler to end the consumer cleanly."""


class AcceptConnection(Exception):
    """Raise from ``connect()`` to accept the WebSocket."""


class DenyConnection(Exception):
    """Raise from ``connect()`` to deny the WebSocket."""
