"""Django's HTTP handling on AnyIO, so that Django views serve under trio as well.

``django.core.asgi.get_asgi_application()`` runs only on asyncio: its handler awaits
``asyncio`` tasks and asgiref's ``sync_to_async``. :func:`get_asgi_application`
returns a :class:`DjangoHandler` instead, which reads the request body on the
event loop and then runs Django's synchronous request cycle (``request_started``,
middleware, view, ``response.close()`` and ``request_finished``) in one worker
thread through AnyIO, sending the response from that thread. So it works under
hypercorn's trio and asyncio workers alike, and a request's database connection is
opened and closed (``close_old_connections``) in the thread that used it.

Differences from Django's ASGI handler: middleware is loaded in sync mode (async-only
middleware and async views still work, each call run by asgiref in a private event
loop in the worker thread, as under WSGI); a client that disconnects does not cancel
a running view (a thread cannot be interrupted). Async streaming responses are sent
from the event loop.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterable
from typing import IO, Any
from urllib.parse import urlparse

import anyio.from_thread
import anyio.to_thread
from anyio import CapacityLimiter
from django.conf import settings
from django.contrib.staticfiles.handlers import StaticFilesHandlerMixin
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse
from django.urls import set_script_prefix

from achannels._asgi import ASGIApp, Message, Receive, Scope, Send
from achannels.django._asgiref import install_trio_support

__all__ = ["DjangoHandler", "StaticFilesHandler", "get_asgi_application"]


def get_asgi_application(*, limiter: CapacityLimiter | None = None) -> DjangoHandler:
    """Set Django up and return its HTTP handler on AnyIO (trio or asyncio).

    A drop-in for ``django.core.asgi.get_asgi_application``. ``limiter`` bounds how
    many requests run in worker threads at once (default: AnyIO's thread limiter).
    Also makes Django's async paths (the async ORM, ``sync_to_async``,
    ``Signal.asend``) work under trio: see :func:`install_trio_support`.
    """
    import django

    django.setup(set_prefix=False)
    install_trio_support()
    return DjangoHandler(limiter=limiter)


class DjangoHandler(ASGIHandler):  # type: ignore[misc]  # Django has no type stubs here
    """An ASGI app serving Django's ``http`` scopes: the request cycle in a thread."""

    def __init__(self, *, limiter: CapacityLimiter | None = None) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request.

        Cancelling it while the view runs waits for the thread to finish (a thread
        cannot be interrupted).

        Raises:
            ValueError: the scope is not ``http``.
        """
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        try:
            body_file = await self._read_body(receive)
        except RequestAborted:
            return
        with body_file:
            await anyio.to_thread.run_sync(
                self._respond, scope, body_file, send, limiter=self.limiter
            )

    async def _read_body(self, receive: Receive) -> IO[bytes]:
        # Returned open: the caller closes it (``with body_file``).
        body_file: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b"
        )
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise RequestAborted()
                if message.get("body"):
                    if getattr(body_file, "_rolled", False):
                        await anyio.to_thread.run_sync(body_file.write, message["body"])
                    else:
                        body_file.write(message["body"])
                if not message.get("more_body", False):
                    break
        except BaseException:
            body_file.close()
            raise
        body_file.seek(0)
        return body_file

    def _respond(self, scope: Scope, body_file: IO[bytes], send: Send) -> None:
        """Run the whole request cycle; called in a worker thread."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        try:
            self._send_response(response, send)
        finally:
            response.close()  # sends request_finished: closes this thread's connections

    def _send_response(self, response: Any, send: Send) -> None:
        _send_from_thread(send, _start_message(response))
        if not response.streaming:
            for chunk, last in self.chunk_bytes(response.content):
                body = {"type": "http.response.body", "body": chunk, "more_body": not last}
                _send_from_thread(send, body)
            return
        if response.is_async:
            anyio.from_thread.run(self._send_async_stream, response.streaming_content, send)
        else:
            for part in response.streaming_content:
                self._send_part(part, send)
        _send_from_thread(send, {"type": "http.response.body"})

    def _send_part(self, part: bytes, send: Send) -> None:
        for chunk, _ in self.chunk_bytes(part):
            body = {"type": "http.response.body", "body": chunk, "more_body": True}
            _send_from_thread(send, body)

    async def _send_async_stream(self, content: AsyncIterable[bytes], send: Send) -> None:
        async for part in content:
            for chunk, _ in self.chunk_bytes(part):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})


def _send_from_thread(send: Send, message: Message) -> None:
    """Send ``message`` from a worker thread, on the event loop that started it."""
    anyio.from_thread.run(_send, send, message)


async def _send(send: Send, message: Message) -> None:
    await send(message)


def _start_message(response: Any) -> Message:
    """The ``http.response.start`` message for a Django response (cookies included)."""
    headers: list[tuple[bytes, bytes]] = []
    for header, value in response.items():
        name = header.encode("ascii") if isinstance(header, str) else header
        data = value.encode("latin1") if isinstance(value, str) else value
        headers.append((bytes(name), bytes(data)))
    for cookie in response.cookies.values():
        headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
    return {"type": "http.response.start", "status": response.status_code, "headers": headers}


class StaticFilesHandler(StaticFilesHandlerMixin, DjangoHandler):  # type: ignore[misc]
    """Serve ``STATIC_URL`` from the staticfiles finders; pass everything else to ``application``.

    Django's ``ASGIStaticFilesHandler`` on achannels' AnyIO handler, so that it
    serves under trio too. Development and tests only (``insecure`` serving): what
    ``manage.py runserver`` and ``ChannelsLiveServerTestCase`` wrap the app in.
    """

    def __init__(self, application: ASGIApp) -> None:
        self.application = application
        self.base_url = urlparse(self.get_base_url())
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        """Load nothing: requests that are not for static files go to ``application``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a static file for an HTTP request under ``STATIC_URL``, else delegate."""
        if scope["type"] == "http" and self._should_handle(scope["path"]):
            await super().__call__(scope, receive, send)
        else:
            await self.application(scope, receive, send)
