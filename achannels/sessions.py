"""Django sessions for ASGI connections, compatible with Channels 4.3's ``channels.sessions``.

``from channels.sessions import X`` becomes ``from achannels.sessions import X`` for
:class:`CookieMiddleware`, :class:`SessionMiddleware` and :func:`SessionMiddlewareStack`.

* :class:`CookieMiddleware` puts the request's cookies in ``scope["cookies"]`` (a dict
  as Django's ``request.COOKIES``) and offers ``set_cookie``/``delete_cookie`` for
  ``http.response.start`` messages.
* :class:`SessionMiddleware` puts a lazy ``scope["session"]`` there: the session store
  of ``settings.SESSION_ENGINE`` for the session cookie, made on first use. For HTTP
  it saves a modified session (in a worker thread, through
  :func:`achannels.db.database_sync_to_async`) when the response starts, and adds the
  session cookie to that response. WebSocket consumers save the session themselves::

      await database_sync_to_async(self.scope["session"].save)()

The session store loads its data on first access to a key; with a store backed by a
database that access queries it. In async code, do it in a worker thread
(``database_sync_to_async``), as with Channels: Django refuses such a query on an
asyncio event loop, and on trio it would block the loop. ``AuthMiddleware`` loads
the session in a thread while it looks up the user, so after it the data is cached.

Differences from Channels, on purpose: every ``Cookie`` header counts (HTTP/2 may
split cookies over several; Channels reads the first only), and header names are
matched in any case; a session that is empty when the response starts is not saved
(as Django's ``SessionMiddleware``; Channels writes an empty session row), its cookie
is deleted if the client sent one. Only HTTP connections get the wrapped ``send``.

An invalid ``samesite`` (or ``SESSION_COOKIE_SAMESITE``) raises Channels' error and
message, ``AssertionError("samesite must be either 'strict', 'lax' or 'none'")``,
raised explicitly so that it holds under ``python -O``; the error is a ``ValueError``
too, as bad arguments are elsewhere in achannels.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Awaitable, Callable
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.core.exceptions import SuspiciousOperation
from django.http import parse_cookie
from django.http.cookie import SimpleCookie
from django.utils.functional import LazyObject, empty
from django.utils.http import http_date

from ._asgi import ASGIApp, Message, Receive, Scope, Send
from .db import database_sync_to_async
from .middleware import BaseMiddleware

__all__ = ["CookieMiddleware", "SessionMiddleware", "SessionMiddlewareStack"]

_SAMESITE = ("strict", "lax", "none")


class _SameSiteError(ValueError, AssertionError):
    """An invalid ``samesite``: Channels' ``AssertionError``, and a ``ValueError``."""


def _cookie_header(scope: Scope) -> str:
    """Every ``Cookie`` header of the scope, joined as one header value."""
    values = [
        value.decode("latin1") for name, value in scope["headers"] if name.lower() == b"cookie"
    ]
    return "; ".join(values)


def _max_age_until(expires: datetime.datetime) -> int:
    """Seconds from now until ``expires`` (naive means UTC), rounded up, at least 0."""
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=datetime.UTC)
    # One more second: the fraction lost in the subtraction would make the
    # ``expires`` attribute computed from max-age a second early.
    delta = expires - datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)
    return max(0, delta.days * 86400 + delta.seconds)


class CookieMiddleware(BaseMiddleware):
    """Parse the ``Cookie`` header(s) into ``scope["cookies"]`` (``{}`` when none).

    Raises:
        ValueError: the scope has no ``headers`` (not an HTTP or WebSocket scope).
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the inner application with the cookies in its scope."""
        if "headers" not in scope:
            raise ValueError(
                "CookieMiddleware was passed a scope that did not have a headers key "
                "(make sure it is only passed HTTP or WebSocket connections)"
            )
        cookies: dict[str, str] = parse_cookie(_cookie_header(scope))
        await self.inner(dict(scope, cookies=cookies), receive, send)

    @classmethod
    def set_cookie(
        cls,
        message: Message,
        key: str,
        value: Any = "",
        max_age: int | None = None,
        expires: str | datetime.datetime | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool | None = False,
        httponly: bool | None = False,
        samesite: str | None = "lax",
    ) -> None:
        """Add a ``Set-Cookie`` header to ``message`` (an ``http.response.start``).

        ``expires`` is an HTTP date string or a ``datetime`` (naive means UTC); a
        ``datetime`` is turned into ``max_age``. Given ``max_age`` without
        ``expires``, ``expires`` is computed from it.

        Raises:
            AssertionError: ``samesite`` is not ``"strict"``, ``"lax"``, ``"none"`` or
                None, as in Channels (the error is also a ``ValueError``).
        """
        if samesite is not None and samesite.lower() not in _SAMESITE:
            raise _SameSiteError("samesite must be either 'strict', 'lax' or 'none'")
        cookies = SimpleCookie()
        cookies[key] = str(value)
        morsel = cookies[key]
        if isinstance(expires, datetime.datetime):
            max_age, expires = _max_age_until(expires), None
        morsel["expires"] = expires or ""
        if max_age is not None:
            morsel["max-age"] = max_age
            if not expires:
                morsel["expires"] = http_date(time.time() + max_age)
        for attribute, setting in (("path", path), ("domain", domain)):
            if setting is not None:
                morsel[attribute] = setting
        for flag, enabled in (("secure", secure), ("httponly", httponly)):
            if enabled:
                morsel[flag] = True
        if samesite is not None:
            morsel["samesite"] = samesite
        header = (b"Set-Cookie", morsel.output(header="").strip().encode("utf-8"))
        message["headers"] = [*(message.get("headers") or ()), header]

    @classmethod
    def delete_cookie(
        cls, message: Message, key: str, path: str | None = "/", domain: str | None = None
    ) -> None:
        """Add a ``Set-Cookie`` header to ``message`` that expires cookie ``key`` now."""
        cls.set_cookie(
            message,
            key,
            max_age=0,
            path=path,
            domain=domain,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
        )


class _LazySession(LazyObject):  # type: ignore[misc]  # Django has no type stubs here
    """``scope["session"]``: the session store for a key, made on first use."""

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__()
        # Set in __dict__: LazyObject forwards other attribute writes to the store.
        self.__dict__["_achannels_session_key"] = session_key

    def _setup(self) -> None:
        store = import_module(settings.SESSION_ENGINE).SessionStore
        self._wrapped = store(self.__dict__["_achannels_session_key"])


def _is_made(session: _LazySession) -> bool:
    """Whether the session store was made (it cannot have been modified otherwise)."""
    return session._wrapped is not empty


def _save(session: Any) -> tuple[str, int | None]:
    """Save ``session`` (in a worker thread); return its key and the cookie's max-age."""
    try:
        session.save()
    except UpdateError:
        raise SuspiciousOperation(
            "The request's session was deleted before the request completed. "
            "The user may have logged out in a concurrent request, for example."
        ) from None
    max_age = None if session.get_expire_at_browser_close() else session.get_expiry_age()
    return session.session_key, max_age


class SessionMiddleware(BaseMiddleware):
    """Put a lazy Django session in ``scope["session"]``; needs ``CookieMiddleware`` above.

    If an outer session middleware already provided ``scope["session"]``, this one
    passes the scope through and leaves saving to it.

    Raises:
        ValueError: there is no ``scope["cookies"]``.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the inner application with the session in its scope."""
        scope = dict(scope)
        if "session" in scope:
            await self.inner(scope, receive, send)
            return
        if "cookies" not in scope:
            raise ValueError(
                "No cookies in scope - SessionMiddleware needs to run inside of CookieMiddleware."
            )
        session_key = scope["cookies"].get(settings.SESSION_COOKIE_NAME)
        session = _LazySession(session_key)
        scope["session"] = session
        if scope["type"] == "http":
            send = _saving_send(send, session, had_cookie=session_key is not None)
        await self.inner(scope, receive, send)


def _saving_send(
    send: Send, session: _LazySession, *, had_cookie: bool
) -> Callable[[Message], Awaitable[None]]:
    """Wrap ``send``: save the session at ``http.response.start`` and set its cookie.

    A checkpoint when it saves (a worker thread); cancelling it abandons the wait.
    """

    async def send_with_session(message: Message) -> None:
        if message["type"] == "http.response.start" and message.get("status", 200) != 500:
            message = await _with_session_cookie(dict(message), session, had_cookie)
        await send(message)

    return send_with_session


async def _with_session_cookie(
    message: Message, session: _LazySession, had_cookie: bool
) -> Message:
    every_request = settings.SESSION_SAVE_EVERY_REQUEST
    if not _is_made(session) and not every_request:
        return message
    if session.is_empty():
        if had_cookie:
            CookieMiddleware.delete_cookie(
                message,
                settings.SESSION_COOKIE_NAME,
                path=settings.SESSION_COOKIE_PATH,
                domain=settings.SESSION_COOKIE_DOMAIN,
            )
        return message
    if not (session.modified or every_request):
        return message
    key, max_age = await database_sync_to_async(_save)(session)
    CookieMiddleware.set_cookie(
        message,
        settings.SESSION_COOKIE_NAME,
        key,
        max_age=max_age,
        expires=None if max_age is None else http_date(time.time() + max_age),
        domain=settings.SESSION_COOKIE_DOMAIN,
        path=settings.SESSION_COOKIE_PATH,
        secure=settings.SESSION_COOKIE_SECURE or None,
        httponly=settings.SESSION_COOKIE_HTTPONLY or None,
        samesite=settings.SESSION_COOKIE_SAMESITE,
    )
    return message


def SessionMiddlewareStack(inner: ASGIApp) -> ASGIApp:
    """Wrap ``inner`` in :class:`CookieMiddleware` and :class:`SessionMiddleware`."""
    return CookieMiddleware(SessionMiddleware(inner))
