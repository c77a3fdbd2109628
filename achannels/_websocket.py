"""The WebSocket connection object handed to ``@router.websocket`` consumers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import anyio

from ._connection import Connection, logger
from ._wsstate import WebSocketState, WebSocketStateMachine
from .exceptions import InvalidMessage, MessageTooLarge, WebSocketDisconnect

__all__ = ["WebSocket"]

_DENIAL_EXTENSION = "websocket.http.response"
T = TypeVar("T")
HeaderPairs = Iterable[tuple[str | bytes, str | bytes]]


def _encode_headers(headers: HeaderPairs) -> list[tuple[bytes, bytes]]:
    return [
        (
            (name.encode("latin-1") if isinstance(name, str) else name).lower(),
            value.encode("latin-1") if isinstance(value, str) else value,
        )
        for name, value in headers
    ]


_MAX_REASON_BYTES = 123  # what a close frame's payload leaves for the reason


def _fit_reason(reason: str) -> str:
    """Cut ``reason`` to at most 123 UTF-8 bytes without splitting a character."""
    encoded = reason.encode("utf-8")
    if len(encoded) <= _MAX_REASON_BYTES:
        return reason
    return encoded[:_MAX_REASON_BYTES].decode("utf-8", "ignore")


class _Frames(AsyncIterator[T]):
    """Frames until the client leaves or the socket is closed.

    A plain iterator rather than an async generator: abandoning it (a cancelled
    ``async for``) needs no finalisation, so nothing warns under trio.
    """

    __slots__ = ("_receive",)

    def __init__(self, receive: Callable[[], Awaitable[T]]) -> None:
        self._receive = receive

    async def __anext__(self) -> T:
        try:
            return await self._receive()
        except (WebSocketDisconnect, anyio.ClosedResourceError):
            raise StopAsyncIteration from None


class WebSocket(Connection):
    """One WebSocket connection: accept, send, receive, close, and owned tasks.

    Sending and receiving are checkpoints. One task receives at a time; any number
    of tasks may send. Tasks started with :meth:`start_soon` belong to the connection
    and are cancelled when it ends.
    """

    max_message_size: int = 1 << 20
    _state: WebSocketStateMachine

    def _setup(self, max_message_size: int) -> None:
        self._state = WebSocketStateMachine()
        self.max_message_size = max_message_size

    # -- the handshake ----------------------------------------------------------------

    @property
    def state(self) -> WebSocketState:
        """Where the connection stands (CONNECTING, OPEN, CLOSED, DENIED, DISCONNECTED)."""
        return self._state.state

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        offered: list[str] = self.scope.get("subprotocols") or []
        return offered

    @property
    def close_code(self) -> int | None:
        """The close code, once either side closed (``None`` while open)."""
        return self._state.close_code

    @property
    def close_reason(self) -> str:
        """The close reason, ``""`` when none was given."""
        return self._state.close_reason

    async def accept(self, subprotocol: str | None = None, headers: HeaderPairs = ()) -> None:
        """Accept the connection, optionally choosing one of the offered subprotocols.

        Raises:
            ValueError: ``subprotocol`` is not one the client offered.
            WebSocketStateError: the connection was already accepted, closed or denied.
        """
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(
                f"subprotocol {subprotocol!r} was not offered by the client {self.subprotocols!r}"
            )
        self._state.accept()
        message: dict[str, Any] = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = _encode_headers(headers)
        await self._send(message)

    async def deny(
        self, status: int = 403, *, headers: HeaderPairs = (), body: bytes = b""
    ) -> None:
        """Refuse the handshake with an HTTP response.

        Uses the ASGI ``websocket.http.response`` extension where the server offers it;
        elsewhere the server answers 403 to a plain close, whatever ``status`` says.
        """
        if _DENIAL_EXTENSION not in (self.scope.get("extensions") or {}):
            if self._state.state is not WebSocketState.CONNECTING:
                self._state.deny()  # raises: only a handshake in progress can be denied
            await self.close()
            return
        self._state.deny()
        await self._send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": _encode_headers(headers),
            }
        )
        await self._send({"type": "websocket.http.response.body", "body": body})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection; closing twice, or after the client left, does nothing.

        Before :meth:`accept` this rejects the handshake (the server answers 403).

        Raises:
            ValueError: ``reason`` is over the 123 UTF-8 bytes a close frame can carry.
        """
        if len(reason.encode("utf-8")) > _MAX_REASON_BYTES:
            raise ValueError(f"close reason over {_MAX_REASON_BYTES} UTF-8 bytes: {reason!r}")
        if self._state.close(code, reason):
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    # -- sending ----------------------------------------------------------------------

    async def send_text(self, data: str) -> None:
        """Send a text frame.

        Raises:
            WebSocketStateError: before :meth:`accept`.
            anyio.ClosedResourceError: after :meth:`close`.
            WebSocketDisconnect: after the client left.
        """
        if self._state.state is not WebSocketState.OPEN:
            raise self._state.not_open("send")
        await self._send({"type": "websocket.send", "text": data})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary frame; raises like :meth:`send_text`."""
        if self._state.state is not WebSocketState.OPEN:
            raise self._state.not_open("send")
        await self._send({"type": "websocket.send", "bytes": data})

    async def send_json(self, data: Any) -> None:
        """Send ``data`` encoded as compact JSON in a text frame."""
        await self.send_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False))

    # -- receiving --------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """Return the next frame from the client: ``str`` for text, ``bytes`` for binary.

        Raises:
            WebSocketDisconnect: the client left (its code and reason attached).
            MessageTooLarge: the frame is over :attr:`max_message_size`.
            WebSocketStateError: before :meth:`accept`.
        """
        if self._state.state is not WebSocketState.OPEN:
            raise self._state.not_open("receive")
        message = await self._receiver.receive()
        if message["type"] == "websocket.receive":
            data: str | bytes | None = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            if len(data) > self.max_message_size:
                raise MessageTooLarge(
                    f"a {len(data)}-byte frame is over the {self.max_message_size}-byte limit"
                )
            return data
        if message["type"] == "websocket.disconnect":
            raise self._state.disconnected(
                message.get("code", 1005) or 1005, message.get("reason") or ""
            )
        raise InvalidMessage(f"unexpected ASGI message {message['type']!r}", close_code=1011)

    async def receive_text(self) -> str:
        """Return the next text frame; a binary frame raises :class:`InvalidMessage` (1003)."""
        data = await self.receive()
        if not isinstance(data, str):
            raise InvalidMessage("expected a text frame, got a binary one", close_code=1003)
        return data

    async def receive_bytes(self) -> bytes:
        """Return the next binary frame; a text frame raises :class:`InvalidMessage` (1003)."""
        data = await self.receive()
        if not isinstance(data, bytes):
            raise InvalidMessage("expected a binary frame, got a text one", close_code=1003)
        return data

    async def receive_json(self) -> Any:
        """Return the next text frame decoded as JSON.

        Raises:
            InvalidMessage: the frame is not valid JSON (close code 1007) or is binary (1003).
        """
        text = await self.receive_text()
        try:
            return json.loads(text)
        except ValueError as exc:
            raise InvalidMessage(f"malformed JSON in a text frame: {exc}") from exc

    def __aiter__(self) -> WebSocket:
        """Iterate over frames until the client leaves or the connection is closed."""
        return self

    async def __anext__(self) -> str | bytes:
        """Return the next frame; end the iteration when the client left or on close."""
        # The hot path of ``async for message in ws``: no iterator object in between.
        try:
            return await self.receive()
        except (WebSocketDisconnect, anyio.ClosedResourceError):
            raise StopAsyncIteration from None

    def iter_text(self) -> AsyncIterator[str]:
        """Iterate over text frames until the client leaves or the connection is closed."""
        return self._iterate(self.receive_text)

    def iter_bytes(self) -> AsyncIterator[bytes]:
        """Iterate over binary frames until the client leaves or the connection is closed."""
        return self._iterate(self.receive_bytes)

    def iter_json(self) -> AsyncIterator[Any]:
        """Iterate over JSON text frames until the client leaves or the connection is closed."""
        return self._iterate(self.receive_json)

    @staticmethod
    def _iterate(receive: Callable[[], Awaitable[T]]) -> AsyncIterator[T]:
        return _Frames(receive)

    # -- ending -----------------------------------------------------------------------

    def request_close(self, code: int) -> None:
        """Close with ``code`` from the connection's own task group (server shutdown)."""
        if self._task_group is not None and self._state.state is WebSocketState.OPEN:
            self.start_soon(self.close, code)
        elif self._state.state is WebSocketState.CONNECTING:
            self.cancel()

    async def _finish(self) -> None:
        error = self._error
        if error is None or isinstance(error, WebSocketDisconnect):
            code, reason = 1000, ""
        elif isinstance(error, InvalidMessage):
            code, reason = error.close_code, _fit_reason(str(error))
            logger.warning("closing WebSocket %r with %d: %s", self.scope.get("path"), code, error)
        elif isinstance(error, MessageTooLarge):
            code, reason = 1009, "message too large"
            logger.warning("closing WebSocket %r with 1009: %s", self.scope.get("path"), error)
        else:
            code, reason = 1011, "internal error"
            self._log_error(error)
        try:
            if self._state.state is WebSocketState.CONNECTING and code == 1011:
                await self.deny(500)
            else:
                await self.close(code, reason)
        except Exception as exc:  # the transport may already be gone
            logger.debug("could not send the close for %r: %r", self.scope.get("path"), exc)
