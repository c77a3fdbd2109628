"""Drive a WebSocket application from a test, the way a client and server would."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlparse

from achannels._asgi import ASGIApp, Message, Scope

from ._application import ApplicationCommunicator, unexpected_type

__all__ = ["WebsocketCommunicator"]

#: The close code a ``websocket.close`` without one means (ASGI and Channels agree).
_DEFAULT_CLOSE_CODE = 1000
#: The ``websocket.disconnect`` code after a handshake that never opened a WebSocket.
_NO_SOCKET_CODE = 1006


def websocket_scope(
    path: str,
    headers: Iterable[tuple[bytes, bytes]] | None,
    subprotocols: Iterable[str] | None,
    spec_version: str | None,
) -> Scope:
    """Build the scope a server would pass for a WebSocket handshake to ``path``."""
    if not isinstance(path, str):
        raise TypeError(f"Expected str, got {type(path)}")
    parsed = urlparse(path)
    asgi: dict[str, str] = {"version": "3.0"}
    scope: Scope = {
        "type": "websocket",
        "asgi": asgi,
        "path": unquote(parsed.path),
        "query_string": parsed.query.encode("utf-8"),
        "headers": list(headers or []),
        "subprotocols": list(subprotocols or []),
        "extensions": {"websocket.http.response": {}},
    }
    if spec_version:
        asgi["spec_version"] = spec_version
        scope["spec_version"] = spec_version  # where Channels' communicator puts it
    return scope


class WebsocketCommunicator(ApplicationCommunicator):
    """Open a WebSocket to an ASGI application and talk to it frame by frame.

    ::

        async with WebsocketCommunicator(app, "/ws/chat/?room=1") as comm:
            connected, subprotocol = await comm.connect()
            await comm.send_json_to({"message": "hi"})
            assert await comm.receive_json_from() == {"message": "hi"}

    The scope advertises the ``websocket.http.response`` extension, so the application
    may deny the handshake with an HTTP response.

    When the application closes the connection (refused :meth:`connect`, or a close
    met by :meth:`receive_from`) the communicator acts like a server: it delivers a
    ``websocket.disconnect`` (code 1006 after a refused handshake, the close code
    otherwise) and gives the application ``timeout`` seconds to return before it
    cancels it. So if the application closed because it failed, the call raises the
    application's original exception rather than reporting the close.

    Attributes:
        response_headers: the headers of the ``websocket.accept``, after a successful
            :meth:`connect`.
        response: after a denial with an HTTP response, ``{"status", "headers",
            "body"}``; ``None`` otherwise.
        close_code: the code of the last ``websocket.close`` the application sent
            (read through any receive method), ``None`` before one.
        close_reason: its reason (``""`` when it gave none), ``None`` before one.
    """

    def __init__(
        self,
        application: ASGIApp,
        path: str,
        headers: Iterable[tuple[bytes, bytes]] | None = None,
        subprotocols: Iterable[str] | None = None,
        spec_version: str | None = None,
    ) -> None:
        super().__init__(application, websocket_scope(path, headers, subprotocols, spec_version))
        self.response_headers: list[tuple[bytes, bytes]] | None = None
        self.response: dict[str, Any] | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None

    async def receive_output(self, timeout: float | None = 1) -> Message:  # noqa: ASYNC109
        """Return the next raw message, noting the code and reason of a close.

        Raises like :meth:`ApplicationCommunicator.receive_output`.
        """
        message = await super().receive_output(timeout)
        if message["type"] == "websocket.close":
            self.close_code = message.get("code") or _DEFAULT_CLOSE_CODE
            self.close_reason = message.get("reason") or ""
        return message

    async def connect(self, timeout: float | None = 1) -> tuple[bool, Any]:  # noqa: ASYNC109
        """Perform the handshake.

        A ``connect`` that does not accept (refused, denied, failed, timed out or
        cancelled) ends the communicator.

        Returns:
            ``(True, subprotocol)`` when accepted (``subprotocol`` may be ``None``);
            ``(False, code)`` when closed before accept (1000 when the close gave no
            code); ``(False, status)`` when denied with an HTTP response, whose
            status, headers and body are then in :attr:`response`.

        Raises:
            TimeoutError: the application did not answer in time.
            AssertionError: the application answered with another message type.
            Exception: the application's exception, if it raised one.
        """
        accepted = False
        try:
            await self.send_input({"type": "websocket.connect"})
            message = await self.receive_output(timeout)
            kind = message["type"]
            if kind == "websocket.accept":
                accepted = True
                self.response_headers = list(message.get("headers") or [])
                return True, message.get("subprotocol")
            if kind == "websocket.close":
                result = self.close_code
            elif kind == "websocket.http.response.start":
                result = await self._read_denial(message, timeout)
            else:
                raise AssertionError(unexpected_type("websocket.accept", message))
            await self._end({"type": "websocket.disconnect", "code": _NO_SOCKET_CODE}, timeout)
            return False, result
        finally:
            if not accepted:
                await self._finish()

    async def _read_denial(self, start: Message, seconds: float | None) -> int:
        status: int = start["status"]
        body = bytearray()
        while True:
            message = await self.receive_output(seconds)
            if message["type"] != "websocket.http.response.body":
                raise AssertionError(unexpected_type("websocket.http.response.body", message))
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.response = {
            "status": status,
            "headers": list(start.get("headers") or []),
            "body": bytes(body),
        }
        return status

    async def send_to(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Send one frame, text or binary, to the application.

        An empty payload (``""``, ``b""``) is a frame too (Channels refuses it).

        Raises:
            AssertionError: not exactly one of ``text_data`` and ``bytes_data`` was
                given, or it has the wrong type (Channels' messages).
        """
        if (text_data is None) == (bytes_data is None):
            raise AssertionError("You must supply exactly one of text_data or bytes_data")
        if text_data is not None:
            if not isinstance(text_data, str):
                raise AssertionError("The text_data argument must be a str")
            await self.send_input({"type": "websocket.receive", "text": text_data})
        else:
            if not isinstance(bytes_data, bytes):
                raise AssertionError("The bytes_data argument must be bytes")
            await self.send_input({"type": "websocket.receive", "bytes": bytes_data})

    async def send_json_to(self, data: Any) -> None:
        """Send ``data`` encoded as JSON in a text frame."""
        await self.send_to(text_data=json.dumps(data))

    async def receive_from(self, timeout: float | None = 1) -> str | bytes:  # noqa: ASYNC109
        """Return the payload of the next frame the application sent.

        Raises:
            AssertionError: the application closed the connection instead ("Expected
                type 'websocket.send', but was 'websocket.close'", as in Channels,
                followed by the code and reason, also kept in :attr:`close_code` and
                :attr:`close_reason`), or sent something other than a frame.
            TimeoutError: nothing arrived in time.
            Exception: the application's exception, if it raised one (also when it
                closed the connection because of it).
        """
        message = await self.receive_output(timeout)
        kind = message["type"]
        if kind == "websocket.close":
            code = self.close_code
            await self._end({"type": "websocket.disconnect", "code": code}, timeout)
            raise AssertionError(
                f"{unexpected_type('websocket.send', message)} "
                f"(code {code}, reason {self.close_reason!r})"
            )
        if kind != "websocket.send":
            raise AssertionError(unexpected_type("websocket.send", message))
        text: object = message.get("text")
        data: object = message.get("bytes")
        if (text is None) == (data is None):
            raise AssertionError("The response needs exactly one of 'text' or 'bytes'")
        if text is not None:
            if not isinstance(text, str):
                raise AssertionError(f"Text frame payload is not str, it is {type(text)}")
            return text
        if not isinstance(data, bytes):
            raise AssertionError(f"Binary frame payload is not bytes, it is {type(data)}")
        return data

    async def receive_json_from(self, timeout: float | None = 1) -> Any:  # noqa: ASYNC109
        """Return the next frame decoded from JSON; it must be a text frame.

        Raises:
            AssertionError: the frame is binary; or as :meth:`receive_from`.
        """
        payload = await self.receive_from(timeout)
        if not isinstance(payload, str):
            raise AssertionError(f"JSON data is not a text frame, it is {type(payload)}")
        return json.loads(payload)

    async def disconnect(self, code: int = 1000, timeout: float | None = 1) -> None:  # noqa: ASYNC109
        """Close the connection from the client side and wait for the application.

        Ends the communicator.

        Raises:
            TimeoutError: the application did not return in time; it was cancelled.
            Exception: the application's exception, if it raised one.
        """
        await self._start()
        if not self._done:
            self._inbox.put({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)
