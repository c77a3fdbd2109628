"""Django authentication for ASGI connections, compatible with Channels 4.3's ``channels.auth``.

``from channels.auth import X`` becomes ``from achannels.auth import X`` for
:class:`AuthMiddleware`, :func:`AuthMiddlewareStack`, :func:`get_user`, :func:`login`
and :func:`logout`. The three functions are coroutine functions, called as with
Channels::

    user = await get_user(self.scope)
    await login(self.scope, user)
    await database_sync_to_async(self.scope["session"].save)()
    await logout(self.scope)

Each runs in a worker thread through :func:`achannels.db.database_sync_to_async`
(AnyIO), so it works on trio as well as asyncio; asgiref's ``sync_to_async`` is
never used. Like Channels' (and unlike Django's ``login``), :func:`login` does not
save the session: save it yourself, or let ``SessionMiddleware`` save it when an
HTTP response starts.

Differences from Channels, on purpose: :func:`get_user` also accepts a session hash
made with one of ``settings.SECRET_KEY_FALLBACKS`` (then stores the current hash),
as Django's ``get_user`` does; :func:`login` refuses a ``backend`` that is not a
dotted path string (``TypeError``), as Django's ``login`` does; and
:class:`AuthMiddleware` does not look the user up again when an outer
``AuthMiddleware`` already did.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
    user_logged_in,
    user_logged_out,
)
from django.core.exceptions import ImproperlyConfigured
from django.utils.crypto import constant_time_compare
from django.utils.functional import LazyObject, empty

from ._asgi import ASGIApp, Receive, Scope, Send
from .db import database_sync_to_async
from .middleware import BaseMiddleware
from .sessions import CookieMiddleware, SessionMiddleware

__all__ = ["AuthMiddleware", "AuthMiddlewareStack", "UserLazyObject", "get_user", "login", "logout"]

_NO_SESSION = "Cannot find session in scope. You should wrap your consumer in SessionMiddleware."


def _session(scope: Scope, message: str = _NO_SESSION) -> Any:
    if "session" not in scope:
        raise ValueError(message)
    return scope["session"]


def _session_user_id(session: Any) -> Any:
    """The user's primary key stored in ``session`` (a string there), as a Python value.

    Raises:
        KeyError: no user is logged in with this session.
    """
    return get_user_model()._meta.pk.to_python(session[SESSION_KEY])


def _hash_verified(session: Any, user: Any) -> bool:
    """Whether the session's auth hash is the user's, with this or a fallback secret."""
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash:
        return False
    current = user.get_session_auth_hash()
    if constant_time_compare(session_hash, current):
        return True
    if any(constant_time_compare(session_hash, old) for old in _fallback_hashes(user)):
        # Made with a retired secret key: keep the user, re-sign the session.
        session.cycle_key()
        session[HASH_SESSION_KEY] = current
        return True
    return False


def _fallback_hashes(user: Any) -> list[str]:
    fallbacks = getattr(user, "get_session_auth_fallback_hash", None)
    return list(fallbacks()) if fallbacks is not None else []


@database_sync_to_async
def get_user(scope: Scope) -> Any:
    """Return the user logged in with ``scope["session"]``, or an ``AnonymousUser``.

    A coroutine function (a worker thread; it reads the session and the user from
    their stores). A session whose auth hash no longer matches the user's (the
    password changed) is flushed.

    Raises:
        ValueError: the scope has no session.
    """
    from django.contrib.auth.models import AnonymousUser  # needs the app registry

    session = _session(scope)
    user = None
    try:
        user_id = _session_user_id(session)
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        pass
    else:
        if backend_path in settings.AUTHENTICATION_BACKENDS:
            user = load_backend(backend_path).get_user(user_id)
            if hasattr(user, "get_session_auth_hash") and not _hash_verified(session, user):
                session.flush()
                user = None
    return user or AnonymousUser()


def _backend_path(user: Any, backend: str | None) -> str:
    """The authentication backend to record: ``backend``, ``user.backend`` or the only one.

    Raises:
        TypeError: the backend given is not a dotted path string.
        ValueError: none given and several backends are configured.
        ImproperlyConfigured: no backend is configured.
    """
    chosen = backend or getattr(user, "backend", None)
    if chosen is not None:
        if not isinstance(chosen, str):
            raise TypeError(f"backend must be a dotted import path string (got {chosen!r}).")
        return chosen
    configured = list(settings.AUTHENTICATION_BACKENDS)
    if not configured:
        raise ImproperlyConfigured(
            "No authentication backends have been defined. "
            "Does AUTHENTICATION_BACKENDS contain anything?"
        )
    if len(configured) > 1:
        raise ValueError(
            "You have multiple authentication backends configured and therefore must "
            "provide the `backend` argument or set the `backend` attribute on the user."
        )
    path: str = configured[0]
    return path


@database_sync_to_async
def login(scope: Scope, user: Any, backend: str | None = None) -> None:
    """Log ``user`` in: record it in ``scope["session"]`` and set ``scope["user"]``.

    A coroutine function (a worker thread). ``user`` None means ``scope["user"]``.
    Data the session held before stays, unless it belonged to another user (then the
    session is flushed); otherwise the session key changes. Sends ``user_logged_in``
    (with ``request=None``). Does not save the session.

    Raises:
        ValueError: no session in the scope; no user; or several authentication
            backends and no ``backend`` argument nor ``user.backend``.
        TypeError: ``backend`` is not a dotted path string.
    """
    session = _session(scope)
    if user is None:
        user = scope.get("user")
    if user is None:
        raise ValueError("User must be passed as an argument or must be present in the scope.")
    auth_hash = user.get_session_auth_hash() if hasattr(user, "get_session_auth_hash") else ""
    if SESSION_KEY in session:
        other_user = _session_user_id(session) != user.pk
        if other_user or (
            auth_hash and not constant_time_compare(session.get(HASH_SESSION_KEY, ""), auth_hash)
        ):
            # Never carry another user's session over to this one.
            session.flush()
    else:
        session.cycle_key()
    backend_path = _backend_path(user, backend)
    session[SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[BACKEND_SESSION_KEY] = backend_path
    session[HASH_SESSION_KEY] = auth_hash
    scope["user"] = user
    user_logged_in.send(sender=user.__class__, request=None, user=user)


@database_sync_to_async
def logout(scope: Scope) -> None:
    """Log the user out: flush ``scope["session"]``; ``scope["user"]`` becomes anonymous.

    A coroutine function (a worker thread). Sends ``user_logged_out`` first (with
    ``request=None``) when an authenticated user was in the scope.

    Raises:
        ValueError: the scope has no session.
    """
    from django.contrib.auth.models import AnonymousUser  # needs the app registry

    session = _session(
        scope,
        "Login cannot find session in scope. You should wrap your consumer in SessionMiddleware.",
    )
    user = scope.get("user")
    if user is not None and getattr(user, "is_authenticated", True):
        user_logged_out.send(sender=user.__class__, request=None, user=user)
    session.flush()
    if "user" in scope:
        scope["user"] = AnonymousUser()


class UserLazyObject(LazyObject):  # type: ignore[misc]  # Django has no type stubs here
    """``scope["user"]`` until :class:`AuthMiddleware` resolved it."""

    def _setup(self) -> None:
        raise ValueError("Accessing scope user before it is ready.")


class AuthMiddleware(BaseMiddleware):
    """Put the session's user in ``scope["user"]``; needs ``SessionMiddleware`` above.

    The user is looked up (:func:`get_user`, a worker thread) before the inner
    application starts. Subclasses may override :meth:`populate_scope` and
    :meth:`resolve_scope`, as with Channels.
    """

    def populate_scope(self, scope: Scope) -> None:
        """Add an unresolved ``scope["user"]`` unless the scope already has one.

        Raises:
            ValueError: the scope has no session.
        """
        if "session" not in scope:
            raise ValueError(
                "AuthMiddleware cannot find session in scope. SessionMiddleware must be above it."
            )
        if "user" not in scope:
            scope["user"] = UserLazyObject()

    async def resolve_scope(self, scope: Scope) -> None:
        """Look the user up, unless an outer middleware already did."""
        user = scope["user"]
        if isinstance(user, UserLazyObject) and user._wrapped is empty:
            user._wrapped = await get_user(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the inner application with the user in its scope (a copy of ``scope``)."""
        scope = dict(scope)
        self.populate_scope(scope)
        await self.resolve_scope(scope)
        await super().__call__(scope, receive, send)


def AuthMiddlewareStack(inner: ASGIApp) -> ASGIApp:
    """Wrap ``inner`` in cookie, session and auth middleware (outermost first)."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))
