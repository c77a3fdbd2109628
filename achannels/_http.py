"""The HTTP request object handed to ``@router.http`` views."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs

from ._asgi import Message
from ._connection import Connection, logger
from ._outcome import Blame, Outcome
from ._responses import PlainTextResponse, Response
from .exceptions import HTTPException, RequestAborted

__all__ = ["Headers", "Request"]


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only request headers; repeated names join with ``", "``."""

    __slots__ = ("_raw", "_values")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        values: dict[str, str] = {}
        for name, value in raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            values[key] = f"{values[key]}, {text}" if key in values else text
        self._values = values

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def getlist(self, name: str) -> list[str]:
        """Return every value sent for ``name``, in order."""
        key = name.lower().encode("latin-1")
        return [value.decode("latin-1") for raw, value in self._raw if raw.lower() == key]

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The header pairs exactly as the server passed them."""
        return self._raw


class Request(Connection):
    """One HTTP request: method, path, headers, query and body; owns its tasks."""

    max_body_size: int = 1 << 20
    _body: bytes | None = None
    _headers: Headers | None = None

    @property
    def method(self) -> str:
        """The request method, upper case."""
        method: str = self.scope["method"]
        return method

    @property
    def path(self) -> str:
        """The request path, percent-decoded."""
        path: str = self.scope["path"]
        return path

    @property
    def headers(self) -> Headers:
        """The request headers."""
        if self._headers is None:
            self._headers = Headers(self.scope.get("headers") or [])
        return self._headers

    @property
    def query_params(self) -> dict[str, list[str]]:
        """The query string parsed into lists of values per name."""
        raw: bytes = self.scope.get("query_string") or b""
        return parse_qs(raw.decode("latin-1"), keep_blank_values=True)

    def query(self, name: str, default: str | None = None) -> str | None:
        """Return the last value of query parameter ``name``, or ``default``."""
        values = self.query_params.get(name)
        return values[-1] if values else default

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield the request body chunk by chunk as it arrives.

        Raises:
            RequestAborted: the client went away before the body was complete.
            HTTPException: 413 when the body is over :attr:`max_body_size`.
        """
        if self._body is not None:
            yield self._body
            return
        size = 0
        while True:
            message = await self.receive_message()
            if message["type"] == "http.disconnect":
                raise RequestAborted("the client went away before the request body was read")
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_size:
                raise HTTPException(413, f"request body over {self.max_body_size} bytes")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return

    async def body(self) -> bytes:
        """Return the whole request body (read once, then cached)."""
        if self._body is None:
            self._body = b"".join([chunk async for chunk in self.stream()])
        return self._body

    async def text(self) -> str:
        """Return the body decoded as UTF-8; undecodable bytes answer 400."""
        try:
            return (await self.body()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HTTPException(400, "request body is not UTF-8") from exc

    async def json(self) -> Any:
        """Return the body decoded as JSON; malformed JSON answers 400."""
        try:
            return json.loads(await self.body())
        except ValueError as exc:
            raise HTTPException(400, f"malformed JSON: {exc}") from exc

    # -- the response ------------------------------------------------------------------

    _started = False
    _complete = False

    async def send_message(self, message: Message) -> None:
        """Send an ASGI ``http.response.*`` message, noting how far the response got."""
        kind = message["type"]
        if kind == "http.response.start":
            self._started = True
        elif kind == "http.response.body" and not message.get("more_body", False):
            self._complete = True
        await self._send(message)

    @property
    def exchange_over(self) -> bool:
        """Whether the whole response has been sent."""
        return self._complete

    def disconnect_message(self) -> Message:
        """The client's ``http.disconnect``, read or synthesised."""
        return self._receiver.end_message or {"type": "http.disconnect"}

    def request_close(self, code: int) -> None:
        """On server shutdown end a response that is streaming; let others finish."""
        if self._started:
            self.cancel()

    _farewell: Response | None = None

    def _settle(self) -> Outcome:
        outcome = super()._settle()
        if outcome.blame is Blame.CLIENT:
            logger.info("answering %s %r with %d: %s",
                        self.method, self.path, outcome.status, outcome.detail)  # fmt: skip
        gone = outcome.blame is Blame.GONE or self._receiver.ended
        if not (gone or self._started):
            self._farewell = PlainTextResponse(outcome.detail, outcome.status)
        return outcome

    async def _tell_client(self) -> None:
        if self._farewell is not None:
            await self._farewell(self.send_message)
