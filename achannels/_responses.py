"""HTTP responses: plain, JSON, streaming and server-sent events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from ._asgi import Send

__all__ = [
    "EventSourceResponse",
    "HTMLResponse",
    "JSONResponse",
    "PlainTextResponse",
    "Response",
    "ServerSentEvent",
    "StreamingResponse",
]

HeaderInput = Mapping[str, str] | Iterable[tuple[str, str]]


def _header_pairs(headers: HeaderInput | None) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in items]


class Response:
    """A complete response: status, headers and a body sent in one piece."""

    media_type: str | None = None

    def __init__(
        self,
        content: bytes | str = b"",
        status: int = 200,
        *,
        headers: HeaderInput | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status = status
        self.body = self.render(content)
        self.headers = _header_pairs(headers)
        media_type = media_type or self.media_type
        names = {name for name, _ in self.headers}
        if media_type is not None and b"content-type" not in names:
            if media_type.startswith("text/") and "charset" not in media_type:
                media_type += "; charset=utf-8"
            self.headers.append((b"content-type", media_type.encode("latin-1")))
        if b"content-length" not in names and not isinstance(self, StreamingResponse):
            self.headers.append((b"content-length", str(len(self.body)).encode("ascii")))

    def render(self, content: Any) -> bytes:
        """Turn ``content`` into the body bytes."""
        if isinstance(content, bytes):
            return content
        if isinstance(content, str):
            return content.encode("utf-8")
        raise TypeError(f"{type(self).__name__} content must be bytes or str, not {content!r}")

    async def __call__(self, send: Send) -> None:
        """Send the response through the ASGI ``send``."""
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class PlainTextResponse(Response):
    """A ``text/plain`` response."""

    media_type = "text/plain"


class HTMLResponse(Response):
    """A ``text/html`` response."""

    media_type = "text/html"


class JSONResponse(Response):
    """A response whose body is ``content`` encoded as compact JSON."""

    media_type = "application/json"

    def __init__(
        self,
        content: Any,
        status: int = 200,
        *,
        headers: HeaderInput | None = None,
        media_type: str | None = None,
    ) -> None:
        super().__init__(content, status, headers=headers, media_type=media_type)

    def render(self, content: Any) -> bytes:
        """Encode ``content`` as UTF-8 JSON."""
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class StreamingResponse(Response):
    """A response whose body comes chunk by chunk from an async iterable.

    The iterable runs in the request's connection scope: a client that goes away
    cancels it, and an async generator is closed (its ``finally`` runs).
    """

    def __init__(
        self,
        content: AsyncIterable[bytes | str],
        status: int = 200,
        *,
        headers: HeaderInput | None = None,
        media_type: str | None = None,
    ) -> None:
        self.source = content
        super().__init__(b"", status, headers=headers, media_type=media_type)

    async def __call__(self, send: Send) -> None:
        """Send the start, then each chunk as the iterable yields it."""
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        try:
            async for chunk in self.source:
                data = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
                await send({"type": "http.response.body", "body": data, "more_body": True})
        finally:
            aclose = getattr(self.source, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
        await send({"type": "http.response.body", "body": b""})


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One server-sent event. ``data`` may span lines; a dict or list is sent as JSON."""

    data: Any = ""
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    def encode(self) -> bytes:
        """Return the event in the ``text/event-stream`` wire format."""
        data = (
            self.data
            if isinstance(self.data, str)
            else json.dumps(self.data, separators=(",", ":"), ensure_ascii=False)
        )
        lines = []
        if self.id is not None:
            lines.append(f"id: {_single_line(self.id, 'id')}")
        if self.event is not None:
            lines.append(f"event: {_single_line(self.event, 'event')}")
        if self.retry is not None:
            lines.append(f"retry: {int(self.retry)}")
        lines.extend(f"data: {line}" for line in data.replace("\r\n", "\n").split("\n"))
        return ("\n".join(lines) + "\n\n").encode("utf-8")


def _single_line(value: str, field: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"server-sent event {field} must be a single line: {value!r}")
    return value


class EventSourceResponse(StreamingResponse):
    """A ``text/event-stream`` response fed by an async iterable of events.

    Each item is a :class:`ServerSentEvent`, a ``str`` (sent as ``data``) or any
    JSON-serialisable value (sent as compact JSON). Every ``ping`` seconds a comment
    line is sent as well, so proxies keep the stream open and a departed client is
    noticed even when the source is quiet.
    The stream ends when the iterable ends, the client goes away, or the server
    shuts down.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncIterable[Any],
        status: int = 200,
        *,
        headers: HeaderInput | None = None,
        ping: float | None = 15.0,
    ) -> None:
        super().__init__(content, status, headers=headers)
        self.headers.append((b"cache-control", b"no-cache"))
        self.headers.append((b"x-accel-buffering", b"no"))
        self.ping = ping

    async def __call__(self, send: Send) -> None:
        """Send the events, with a keep-alive comment every ``ping`` seconds."""
        lock = anyio.Lock()

        async def send_chunk(data: bytes) -> None:
            async with lock:
                await send({"type": "http.response.body", "body": data, "more_body": True})

        async def send_events() -> None:
            try:
                async for item in self.source:
                    event = item if isinstance(item, ServerSentEvent) else ServerSentEvent(item)
                    await send_chunk(event.encode())
            finally:
                aclose = getattr(self.source, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()
            task_group.cancel_scope.cancel()

        async def send_pings(interval: float) -> None:
            while True:
                await anyio.sleep(interval)
                await send_chunk(b": ping\n\n")

        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(send_events)
            if self.ping is not None:
                task_group.start_soon(send_pings, self.ping)
        await send({"type": "http.response.body", "body": b""})
