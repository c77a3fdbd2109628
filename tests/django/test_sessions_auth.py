"""``achannels.sessions`` and ``achannels.auth`` with the real session store and users.

Every async test runs on asyncio and trio, against the SQLite and the PostgreSQL test
database (the ``database`` fixture), with Django's database session engine and
``django.contrib.auth``'s ``ModelBackend``.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib import auth
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth import get_user_model as _get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest
from django.test.utils import override_settings
from django.utils.functional import empty

from achannels._asgi import Receive, Scope, Send
from achannels.auth import AuthMiddleware, AuthMiddlewareStack, get_user, login, logout
from achannels.db import database_sync_to_async
from achannels.generic.http import AsyncHttpConsumer
from achannels.generic.websocket import AsyncJsonWebsocketConsumer
from achannels.sessions import CookieMiddleware, SessionMiddleware, SessionMiddlewareStack
from achannels.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator
from tests.django.conftest import Database

pytestmark = pytest.mark.django

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def get_user_model() -> Any:
    return _get_user_model()


def cookie(session_key: str) -> list[tuple[bytes, bytes]]:
    """The headers of a client that sends the session cookie ``session_key``."""
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode())]


def set_cookies(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [value for name, value in headers if name.lower() == b"set-cookie"]


@pytest.fixture
def password_hasher() -> Iterator[None]:
    """A fast password hasher: these tests check sessions, not password hashing."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


# -- work with the stores in a worker thread, as a project's code would -------------


@database_sync_to_async
def create_user() -> Any:
    username = f"user-{secrets.token_hex(4)}"
    return get_user_model().objects.create_user(username, password="secret")


@database_sync_to_async
def stored_session(**data: Any) -> str:
    """Create a session holding ``data`` in the session store; return its key."""
    session = SessionStore()
    session.update(data)
    session.create()
    key: str = session.session_key
    return key


@database_sync_to_async
def logged_in_session(user: Any) -> str:
    """Log ``user`` in with ``django.contrib.auth.login``, as a Django view would."""
    request = HttpRequest()
    request.session = SessionStore()
    auth.login(request, user, backend=MODEL_BACKEND)
    request.session.save()
    key: str = request.session.session_key
    return key


@database_sync_to_async
def load_session(key: str) -> dict[str, Any] | None:
    """The data stored for ``key``, or None when there is no such session."""
    store = SessionStore()
    if not store.exists(key):
        return None
    return dict(SessionStore(key).load())


@database_sync_to_async
def user_named(username: str) -> Any:
    return get_user_model().objects.get(username=username)


@database_sync_to_async
def session_value(scope: Scope, key: str) -> Any:
    """``scope["session"].get(key)``: the first read loads the session from its store."""
    return scope["session"].get(key)


@database_sync_to_async
def save_session(scope: Scope) -> None:
    scope["session"].save()


@database_sync_to_async
def flush_session(scope: Scope) -> None:
    scope["session"].flush()


@database_sync_to_async
def change_password(user: Any) -> None:
    user.set_password("another secret")
    user.save()


# -- consumers -------------------------------------------------------------------------


class SessionConsumer(AsyncJsonWebsocketConsumer):
    """Replies to ``{"get": key}`` with the session's value for the key."""

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        value = await session_value(self.scope, content["get"])
        await self.send_json({"value": value})


class AccountConsumer(AsyncJsonWebsocketConsumer):
    """On connect sends the user; then ``login`` / ``logout`` / ``whoami`` actions."""

    async def connect(self) -> None:
        await self.accept()
        await self.send_json(self.describe())

    def describe(self) -> dict[str, Any]:
        user = self.scope["user"]
        return {
            "username": user.get_username() if user.is_authenticated else None,
            "session_key": self.scope["session"].session_key,
        }

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        action = content["action"]
        if action == "login":
            user = await user_named(content["username"])
            await login(self.scope, user)
            await save_session(self.scope)
        elif action == "logout":
            await logout(self.scope)
        elif action == "get_user":
            self.scope["user"] = await get_user(self.scope)
        await self.send_json(self.describe())


class VisitsConsumer(AsyncHttpConsumer):
    """Counts visits in the session; ``/quiet/`` leaves it alone, ``/fail/`` answers 500."""

    async def handle(self, body: bytes) -> None:
        path = self.scope["path"]
        visits = None
        if path != "/quiet/":
            visits = await database_sync_to_async(self.count_visit)()
        status = 500 if path == "/fail/" else 200
        await self.send_response(status, str(visits).encode())

    def count_visit(self) -> int:
        session = self.scope["session"]
        visits: int = session.get("visits", 0) + 1
        session["visits"] = visits
        return visits


class ForgetConsumer(AsyncHttpConsumer):
    """Flushes the session (a log out over HTTP)."""

    async def handle(self, body: bytes) -> None:
        await flush_session(self.scope)
        await self.send_response(200, b"bye")


async def scope_of(app_wrapper: Any, headers: list[tuple[bytes, bytes]]) -> Scope:
    """The scope the innermost application sees behind ``app_wrapper``."""
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    scope = {"type": "websocket", "path": "/", "headers": headers}
    async with ApplicationCommunicator(app_wrapper(inner), scope) as communicator:
        await communicator.wait()
    return seen[0]


# -- cookies ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_cookies_are_parsed_from_every_cookie_header() -> None:
    headers = [
        (b"host", b"example.com"),
        (b"cookie", b'a=1; b="quoted"'),
        (b"Cookie", b"c=3"),
    ]
    scope = await scope_of(CookieMiddleware, headers)
    assert scope["cookies"] == {"a": "1", "b": "quoted", "c": "3"}
    assert (await scope_of(CookieMiddleware, []))["cookies"] == {}


@pytest.mark.anyio
async def test_cookie_middleware_needs_headers() -> None:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not reached")

    communicator = ApplicationCommunicator(CookieMiddleware(inner), {"type": "lifespan"})
    with pytest.raises(ValueError, match="headers"):
        await communicator.wait()


def test_set_cookie_writes_the_attributes() -> None:
    message: dict[str, Any] = {"type": "http.response.start", "headers": ((b"x", b"y"),)}
    CookieMiddleware.set_cookie(
        message, "k", "v", max_age=60, domain="example.com", secure=True, httponly=True
    )
    assert message["headers"][0] == (b"x", b"y")
    header = message["headers"][1]
    assert header[0] == b"Set-Cookie"
    text = header[1].decode()
    assert text.startswith("k=v; ")
    for part in ("Max-Age=60", "Path=/", "Domain=example.com", "Secure", "HttpOnly"):
        assert part in text
    assert "expires=" in text
    assert "SameSite=lax" in text


def test_set_cookie_turns_a_datetime_into_max_age() -> None:
    message: dict[str, Any] = {"type": "http.response.start"}
    in_an_hour = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    CookieMiddleware.set_cookie(message, "k", expires=in_an_hour, samesite=None)
    text = message["headers"][0][1].decode()
    assert "Max-Age=3600" in text or "Max-Age=3599" in text
    assert "SameSite" not in text


def test_set_cookie_refuses_a_bad_samesite_and_delete_cookie_expires() -> None:
    with pytest.raises(ValueError, match="samesite"):
        CookieMiddleware.set_cookie({}, "k", samesite="sometimes")
    message: dict[str, Any] = {}
    CookieMiddleware.delete_cookie(message, "k", path="/app/")
    text = message["headers"][0][1].decode()
    assert "Max-Age=0" in text
    assert "1970" in text
    assert "Path=/app/" in text


# -- sessions --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_stored_session_is_found_from_the_cookie(database: Database) -> None:
    key = await stored_session(color="blue")
    app = SessionMiddlewareStack(SessionConsumer.as_asgi())
    async with WebsocketCommunicator(app, "/", headers=cookie(key)) as comm:
        assert (await comm.connect())[0]
        await comm.send_json_to({"get": "color"})
        assert await comm.receive_json_from() == {"value": "blue"}
    async with WebsocketCommunicator(app, "/", headers=cookie("no-such-session")) as comm:
        assert (await comm.connect())[0]
        await comm.send_json_to({"get": "color"})
        assert await comm.receive_json_from() == {"value": None}


@pytest.mark.anyio
async def test_the_session_is_made_only_when_used(database: Database) -> None:
    scope = await scope_of(SessionMiddlewareStack, cookie("whatever"))
    session = scope["session"]
    assert session._wrapped is empty
    assert session.session_key == "whatever"  # made on first use
    assert session._wrapped is not empty


@pytest.mark.anyio
async def test_session_middleware_needs_cookies_and_passes_an_outer_session() -> None:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    seen: list[Scope] = []
    communicator = ApplicationCommunicator(SessionMiddleware(inner), {"type": "websocket"})
    with pytest.raises(ValueError, match="CookieMiddleware"):
        await communicator.wait()
    outer = object()
    scope = {"type": "websocket", "session": outer}
    async with ApplicationCommunicator(SessionMiddleware(inner), scope) as communicator:
        await communicator.wait()
    assert seen[0]["session"] is outer


@pytest.mark.anyio
async def test_an_http_consumer_that_modifies_the_session_sets_the_cookie(
    database: Database,
) -> None:
    app = SessionMiddlewareStack(VisitsConsumer.as_asgi())
    response = await HttpCommunicator(app, "GET", "/").get_response()
    assert response["body"] == b"1"
    [header] = set_cookies(response["headers"])
    name, _, rest = header.decode().partition("=")
    key = rest.split(";")[0]
    assert name == settings.SESSION_COOKIE_NAME
    assert "HttpOnly" in header.decode()
    assert f"Max-Age={settings.SESSION_COOKIE_AGE}" in header.decode()
    assert await load_session(key) == {"visits": 1}

    again = await HttpCommunicator(app, "GET", "/", headers=cookie(key)).get_response()
    assert again["body"] == b"2"
    assert await load_session(key) == {"visits": 2}


@pytest.mark.anyio
async def test_no_cookie_when_the_session_is_untouched_or_the_response_failed(
    database: Database,
) -> None:
    app = SessionMiddlewareStack(VisitsConsumer.as_asgi())
    quiet = await HttpCommunicator(app, "GET", "/quiet/").get_response()
    assert set_cookies(quiet["headers"]) == []
    failed = await HttpCommunicator(app, "GET", "/fail/").get_response()
    assert failed["status"] == 500
    assert set_cookies(failed["headers"]) == []


@pytest.mark.anyio
async def test_every_request_saves_with_session_save_every_request(database: Database) -> None:
    key = await stored_session(visits=5)
    app = SessionMiddlewareStack(VisitsConsumer.as_asgi())
    with override_settings(SESSION_SAVE_EVERY_REQUEST=True):
        response = await HttpCommunicator(app, "GET", "/quiet/", headers=cookie(key)).get_response()
    [header] = set_cookies(response["headers"])
    assert header.startswith(f"{settings.SESSION_COOKIE_NAME}={key};".encode())


@pytest.mark.anyio
async def test_an_emptied_session_deletes_the_cookie(database: Database) -> None:
    key = await stored_session(visits=5)
    app = SessionMiddlewareStack(ForgetConsumer.as_asgi())
    response = await HttpCommunicator(app, "GET", "/", headers=cookie(key)).get_response()
    [header] = set_cookies(response["headers"])
    assert header.startswith(f'{settings.SESSION_COOKIE_NAME}="";'.encode())
    assert b"Max-Age=0" in header
    assert await load_session(key) is None


@pytest.mark.anyio
async def test_a_session_deleted_meanwhile_is_a_suspicious_operation(database: Database) -> None:
    key = await stored_session(visits=1)

    class DeletedMeanwhile(VisitsConsumer):
        def count_visit(self) -> int:
            visits = super().count_visit()
            SessionStore().delete(key)  # another request logged the user out
            return visits

    app = SessionMiddlewareStack(DeletedMeanwhile.as_asgi())
    with pytest.raises(SuspiciousOperation, match="deleted before the request completed"):
        await HttpCommunicator(app, "GET", "/", headers=cookie(key)).get_response()


# -- users -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_consumer_sees_an_anonymous_user_without_a_cookie(database: Database) -> None:
    app = AuthMiddlewareStack(AccountConsumer.as_asgi())
    async with WebsocketCommunicator(app, "/") as comm:
        assert (await comm.connect())[0]
        assert await comm.receive_json_from() == {"username": None, "session_key": None}


@pytest.mark.anyio
async def test_the_consumer_sees_the_user_of_a_logged_in_session(
    database: Database, password_hasher: None
) -> None:
    user = await create_user()
    key = await logged_in_session(user)
    app = AuthMiddlewareStack(AccountConsumer.as_asgi())
    async with WebsocketCommunicator(app, "/", headers=cookie(key)) as comm:
        assert (await comm.connect())[0]
        assert await comm.receive_json_from() == {"username": user.username, "session_key": key}


@pytest.mark.anyio
async def test_a_password_change_ends_the_session(
    database: Database, password_hasher: None
) -> None:
    user = await create_user()
    key = await logged_in_session(user)
    await change_password(user)
    app = AuthMiddlewareStack(AccountConsumer.as_asgi())
    async with WebsocketCommunicator(app, "/", headers=cookie(key)) as comm:
        assert (await comm.connect())[0]
        assert await comm.receive_json_from() == {"username": None, "session_key": None}
    assert await load_session(key) is None  # flushed


@pytest.mark.anyio
async def test_a_session_signed_with_a_fallback_secret_still_counts(
    database: Database, password_hasher: None
) -> None:
    user = await create_user()
    key = await logged_in_session(user)
    with override_settings(
        SECRET_KEY="a new secret key " * 4, SECRET_KEY_FALLBACKS=[settings.SECRET_KEY]
    ):
        scope = await scope_of(AuthMiddlewareStack, cookie(key))
        assert scope["user"].pk == user.pk
        session = scope["session"]
        assert session[HASH_SESSION_KEY] == user.get_session_auth_hash()
        assert session.session_key != key  # re-signed under a new key


@pytest.mark.anyio
async def test_login_then_save_persists_and_logout_clears(
    database: Database, password_hasher: None
) -> None:
    user = await create_user()
    app = AuthMiddlewareStack(AccountConsumer.as_asgi())
    async with WebsocketCommunicator(app, "/") as comm:
        assert (await comm.connect())[0]
        await comm.receive_json_from()
        await comm.send_json_to({"action": "login", "username": user.username})
        logged_in = await comm.receive_json_from()
        assert logged_in["username"] == user.username
        key = logged_in["session_key"]
        assert key is not None
    stored = await load_session(key)
    assert stored is not None
    assert stored[SESSION_KEY] == str(user.pk)
    assert stored[BACKEND_SESSION_KEY] == MODEL_BACKEND
    assert stored[HASH_SESSION_KEY] == user.get_session_auth_hash()

    # A new connection with that cookie is logged in; logging out flushes the session.
    async with WebsocketCommunicator(app, "/", headers=cookie(key)) as comm:
        assert (await comm.connect())[0]
        assert (await comm.receive_json_from())["username"] == user.username
        await comm.send_json_to({"action": "logout"})
        assert await comm.receive_json_from() == {"username": None, "session_key": None}
        await comm.send_json_to({"action": "get_user"})
        assert (await comm.receive_json_from())["username"] is None
    assert await load_session(key) is None


@pytest.mark.anyio
async def test_login_keeps_the_data_of_an_anonymous_session_under_a_new_key(
    database: Database, password_hasher: None
) -> None:
    user = await create_user()
    key = await stored_session(cart="3 apples")
    scope = await scope_of(AuthMiddlewareStack, cookie(key))
    await login(scope, user)
    session = scope["session"]
    assert session.session_key != key
    assert session["cart"] == "3 apples"
    assert scope["user"] is user


@pytest.mark.anyio
async def test_login_as_another_user_starts_a_new_session(
    database: Database, password_hasher: None
) -> None:
    alice, bob = await create_user(), await create_user()
    key = await logged_in_session(alice)
    scope = await scope_of(AuthMiddlewareStack, cookie(key))
    scope["session"]["note"] = "alice's"
    await login(scope, bob)
    session = scope["session"]
    assert "note" not in session
    assert session[SESSION_KEY] == str(bob.pk)


@pytest.mark.anyio
async def test_login_picks_the_backend(database: Database, password_hasher: None) -> None:
    user = await create_user()
    scope: Scope = {"session": SessionStore()}
    two = [MODEL_BACKEND, "django.contrib.auth.backends.AllowAllUsersModelBackend"]
    with override_settings(AUTHENTICATION_BACKENDS=two):
        with pytest.raises(ValueError, match="multiple authentication backends"):
            await login(scope, user)
        with pytest.raises(TypeError, match="dotted import path"):
            await login(scope, user, backend=object())  # type: ignore[arg-type]
        await login(scope, user, backend=two[1])
    assert scope["session"][BACKEND_SESSION_KEY] == two[1]
    with pytest.raises(ValueError, match="User must be passed"):
        await login({"session": SessionStore()}, None)


@pytest.mark.anyio
async def test_the_functions_need_a_session() -> None:
    with pytest.raises(ValueError, match="SessionMiddleware"):
        await get_user({})
    with pytest.raises(ValueError, match="SessionMiddleware"):
        await login({}, None)
    with pytest.raises(ValueError, match="SessionMiddleware"):
        await logout({})

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not reached")

    communicator = ApplicationCommunicator(AuthMiddleware(inner), {"type": "websocket"})
    with pytest.raises(ValueError, match="SessionMiddleware must be above it"):
        await communicator.wait()


@pytest.mark.anyio
async def test_an_outer_user_is_not_looked_up_again(database: Database) -> None:
    outer = object()

    def stack(inner: Any) -> Any:
        return SessionMiddlewareStack(AuthMiddleware(inner))

    scope = await scope_of(lambda inner: _with_user(outer, stack(inner)), [])
    assert scope["user"] is outer


def _with_user(user: Any, app: Any) -> Any:
    async def with_user(scope: Scope, receive: Receive, send: Send) -> None:
        await app(dict(scope, user=user), receive, send)

    return with_user
