"""The WebSocket connection state machine, sans-IO.

::

    CONNECTING --accept()--> OPEN --close()--> CLOSED
        |                     |
        |--close()--> CLOSED  '--client leaves--> DISCONNECTED
        |--deny()---> DENIED
        '--client leaves--> DISCONNECTED

A client that leaves after a close or a denial changes nothing: CLOSED and DENIED
are where the connection ended.
"""

from __future__ import annotations

import enum

import anyio

from .exceptions import WebSocketDisconnect, WebSocketStateError

__all__ = ["WebSocketState", "WebSocketStateMachine"]


class WebSocketState(enum.Enum):
    """Where a WebSocket connection stands."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSED = "closed"
    DENIED = "denied"
    DISCONNECTED = "disconnected"


class WebSocketStateMachine:
    """Check each WebSocket operation against the connection state."""

    __slots__ = ("close_code", "close_reason", "closed_by_server", "state")

    def __init__(self) -> None:
        self.state = WebSocketState.CONNECTING
        #: The code and reason of the close, once closed by either side.
        self.close_code: int | None = None
        self.close_reason = ""
        #: Whether the runtime (shutdown, a failed consumer), not the consumer, closed.
        self.closed_by_server = False

    def accept(self) -> None:
        """Move to OPEN; accepting twice or after a close is an error."""
        if self.state is not WebSocketState.CONNECTING:
            raise WebSocketStateError(f"cannot accept a WebSocket that is {self.state.value}")
        self.state = WebSocketState.OPEN

    def deny(self) -> None:
        """Move to DENIED; only a connection not yet accepted can be denied."""
        if self.state is not WebSocketState.CONNECTING:
            raise WebSocketStateError(
                f"cannot deny a WebSocket that is {self.state.value}: deny() comes before accept()"
            )
        self.state = WebSocketState.DENIED

    def close(self, code: int, reason: str, *, by_server: bool = False) -> bool:
        """Move to CLOSED; return whether a close message must be sent.

        Closing a connection that is already closed, denied or gone does nothing.
        ``by_server`` records that the runtime closed it, not the consumer.
        """
        if self.state not in (WebSocketState.CONNECTING, WebSocketState.OPEN):
            return False
        self.state = WebSocketState.CLOSED
        self.close_code, self.close_reason = code, reason
        self.closed_by_server = by_server
        return True

    @property
    def finished(self) -> bool:
        """Whether nothing more can be sent: closed, denied or gone."""
        return self.state not in (WebSocketState.CONNECTING, WebSocketState.OPEN)

    def disconnected(self, code: int, reason: str) -> WebSocketDisconnect:
        """Record that the client went away; return the exception that reports it.

        After this side closed or denied, the client's disconnect only completes that
        ending: the state (and the close code) stay as they are.
        """
        if self.state in (WebSocketState.CONNECTING, WebSocketState.OPEN):
            self.close_code, self.close_reason = code, reason
            self.state = WebSocketState.DISCONNECTED
        return WebSocketDisconnect(code, reason)

    def not_open(self, operation: str) -> Exception:
        """Return the exception for ``operation`` attempted while not OPEN."""
        state = self.state
        if state is WebSocketState.CONNECTING:
            return WebSocketStateError(f"cannot {operation} before the WebSocket is accepted")
        if state is WebSocketState.CLOSED:
            return anyio.ClosedResourceError(f"cannot {operation}: the WebSocket was closed")
        if state is WebSocketState.DISCONNECTED:
            return WebSocketDisconnect(self.close_code or 1006, self.close_reason)
        return WebSocketStateError(f"cannot {operation}: the WebSocket was denied")
