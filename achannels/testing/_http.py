"""Send one HTTP request to an application from a test and read the response."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlparse

import anyio

from achannels._asgi import ASGIApp, Message, Scope

from ._application import ApplicationCommunicator, unexpected_type

__all__ = ["HttpCommunicator"]


def http_scope(method: str, path: str, headers: Iterable[tuple[bytes, bytes]] | None) -> Scope:
    """Build the scope a server would pass for an HTTP/1.1 request to ``path``."""
    parsed = urlparse(path)
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method.upper(),
        "path": unquote(parsed.path),
        "query_string": parsed.query.encode("utf-8"),
        "headers": list(headers or []),
    }


class HttpCommunicator(ApplicationCommunicator):
    """Send an HTTP request to an ASGI application and read its response.

    Whole responses::

        async with HttpCommunicator(app, "GET", "/items/?page=2") as comm:
            response = await comm.get_response()
        assert response["status"] == 200

    Streaming responses (server-sent events), chunk by chunk, then the client leaves::

        async with HttpCommunicator(app, "GET", "/events/") as comm:
            start = await comm.receive_response_start()
            first = await comm.receive_body_chunk()
            await comm.send_disconnect()

    The request (``body``, in a single ``http.request`` message) is sent by the first
    of these calls. Every chunk read is kept, so :meth:`get_response` after some
    :meth:`receive_body_chunk` calls still returns the whole body.

    Attributes:
        body: the request body.
        sent_request: whether the request was sent to the application.
    """

    def __init__(
        self,
        application: ASGIApp,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Iterable[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if not isinstance(body, bytes):
            # Channels asserts this; tests written for it expect AssertionError.
            raise AssertionError(f"body must be bytes, not {type(body).__name__}")
        super().__init__(application, http_scope(method, path, headers))
        self.body = body
        self.sent_request = False
        self._start_message: Message | None = None
        self._chunks: list[bytes] = []
        self._complete = False

    async def _send_request(self) -> None:
        if not self.sent_request:
            self.sent_request = True
            await self.send_input({"type": "http.request", "body": self.body})

    async def receive_response_start(self, timeout: float | None = 1) -> dict[str, Any]:  # noqa: ASYNC109
        """Send the request if needed and return ``{"status", "headers"}``.

        Returns the same answer when called again.

        Raises:
            AssertionError: the application sent something else first
                ("Expected type 'http.response.start', but was ...", as in Channels).
            TimeoutError: nothing arrived in time.
            Exception: the application's exception, if it raised one.
        """
        if self._start_message is None:
            await self._send_request()
            message = await self.receive_output(timeout)
            if message["type"] != "http.response.start":
                raise AssertionError(unexpected_type("http.response.start", message))
            self._start_message = message
        return {
            "status": self._start_message["status"],
            "headers": list(self._start_message.get("headers") or []),
        }

    async def receive_body_chunk(self, timeout: float | None = 1) -> bytes:  # noqa: ASYNC109
        """Return the body of the next ``http.response.body`` message.

        Receives the response start first if that was not done yet. The chunk may be
        empty (``b""``), as the final message of a stream often is.

        Raises:
            anyio.EndOfStream: the response is complete (the last message said
                ``more_body`` false).
            AssertionError: the application sent something other than a body chunk.
            TimeoutError: nothing arrived in time.
            Exception: the application's exception, if it raised one.
        """
        await self.receive_response_start(timeout)
        if self._complete:
            raise anyio.EndOfStream
        message = await self.receive_output(timeout)
        if message["type"] != "http.response.body":
            raise AssertionError(unexpected_type("http.response.body", message))
        chunk = message.get("body", b"")
        if not isinstance(chunk, bytes):
            raise AssertionError(f"Response body is not bytes, it is {type(chunk)}")
        self._chunks.append(chunk)
        self._complete = not message.get("more_body", False)
        return chunk

    async def get_response(self, timeout: float | None = 1) -> dict[str, Any]:  # noqa: ASYNC109
        """Send the request if needed, read the whole response and end the exchange.

        After the last body chunk the application gets an ``http.disconnect`` (a
        consumer without a handler for it ends quietly, as under a server) and
        ``timeout`` seconds to return before it is cancelled, also when this call fails.

        Returns:
            ``{"status": int, "headers": list, "body": bytes}`` (plus any other key
            of the ``http.response.start`` message), the body being every chunk joined.

        Raises:
            AssertionError: the application sent messages out of order.
            TimeoutError: a message did not arrive in time.
            Exception: the application's exception, if it raised one.
        """
        try:
            await self.receive_response_start(timeout)
            while not self._complete:
                await self.receive_body_chunk(timeout)
            await self._end({"type": "http.disconnect"}, timeout)
        finally:
            await self._finish()
        response: dict[str, Any] = dict(self._start_message or {})
        del response["type"]
        response["headers"] = list(response.get("headers") or [])
        response["body"] = b"".join(self._chunks)
        return response

    async def send_disconnect(self, timeout: float | None = 1) -> None:  # noqa: ASYNC109
        """Tell the application the client went away, and wait for it to return.

        Ends the communicator.

        Raises:
            TimeoutError: the application did not return in time; it was cancelled.
            Exception: the application's exception, if it raised one.
        """
        await self._start()
        if not self._done:
            self._inbox.put({"type": "http.disconnect"})
        await self.wait(timeout)
