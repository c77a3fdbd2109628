"""Tests for the Channels-compatible routers in ``achannels.routing``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from django.conf import settings  # type: ignore[import-untyped,unused-ignore]
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped,unused-ignore]
from django.test.utils import override_settings  # type: ignore[import-untyped,unused-ignore]
from django.urls import include, path, re_path  # type: ignore[import-untyped,unused-ignore]

from achannels._asgi import Message, Receive, Scope, Send
from achannels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter

if not settings.configured:
    settings.configure(USE_I18N=False)


async def _receive() -> Message:
    raise AssertionError("routers must not receive")


async def _send(message: Message) -> None:
    raise AssertionError("routers must not send")


class Recorder:
    """An ASGI app that records each scope it is called with."""

    def __init__(self) -> None:
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)

    @property
    def scope(self) -> Scope:
        assert len(self.scopes) == 1
        return self.scopes[0]


class Returns:
    """An ASGI app that returns a value, which Channels' routers pass back to their caller."""

    def __init__(self, value: object) -> None:
        self.value = value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        return self.value


class PathRoutingRecorder(Recorder):
    """A recorder that asks to be mounted under a prefix, like the native ``Router``."""

    _path_routing: ClassVar[bool] = True


async def call(app: Any, scope: Scope) -> None:
    await app(scope, _receive, _send)


def ws(path_: str, **extra: Any) -> Scope:
    return {"type": "websocket", "path": path_, **extra}


# ProtocolTypeRouter


@pytest.mark.anyio
async def test_protocol_type_router_dispatches_on_type() -> None:
    http, websocket = Recorder(), Recorder()
    router = ProtocolTypeRouter({"http": http, "websocket": websocket})
    await call(router, {"type": "websocket", "path": "/"})
    await call(router, {"type": "http", "path": "/a"})
    assert websocket.scope["type"] == "websocket"
    assert http.scope["path"] == "/a"


@pytest.mark.anyio
async def test_protocol_type_router_unknown_type() -> None:
    router = ProtocolTypeRouter({"http": Recorder()})
    with pytest.raises(ValueError, match="No application configured for scope type 'websocket'"):
        await call(router, {"type": "websocket", "path": "/"})


@pytest.mark.anyio
async def test_protocol_type_router_returns_what_the_application_returns() -> None:
    router = ProtocolTypeRouter({"websocket": Returns("from the consumer")})
    assert await router({"type": "websocket", "path": "/"}, _receive, _send) == "from the consumer"


@pytest.mark.anyio
async def test_protocol_type_router_still_answers_lifespan_itself() -> None:
    """With no "lifespan" application, the router owns the configured layers and returns None."""
    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[str] = []

    async def receive() -> Message:
        return next(incoming)

    async def send(message: Message) -> None:
        sent.append(message["type"])

    router = ProtocolTypeRouter({"websocket": Returns("unused")})
    memory = {"default": {"BACKEND": "achannels.layers.InMemoryChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=memory):
        assert await router({"type": "lifespan"}, receive, send) is None
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


# URLRouter


@pytest.mark.anyio
async def test_path_with_converters() -> None:
    app = Recorder()
    router = URLRouter([path("rooms/<int:number>/<str:name>/", app)])
    await call(router, ws("/rooms/42/lobby/"))
    assert app.scope["url_route"] == {"args": (), "kwargs": {"number": 42, "name": "lobby"}}
    assert app.scope["path_remaining"] == ""
    assert app.scope["path"] == "/rooms/42/lobby/"


@pytest.mark.anyio
async def test_path_is_an_endpoint() -> None:
    router = URLRouter([path("rooms/<int:number>/", Recorder())])
    with pytest.raises(ValueError, match=r"No route found for path 'rooms/42/extra/'\."):
        await call(router, ws("/rooms/42/extra/"))


@pytest.mark.anyio
async def test_int_converter_rejects_text() -> None:
    first, second = Recorder(), Recorder()
    router = URLRouter([path("rooms/<int:n>/", first), path("rooms/<str:n>/", second)])
    await call(router, ws("/rooms/abc/"))
    assert first.scopes == []
    assert second.scope["url_route"]["kwargs"] == {"n": "abc"}


@pytest.mark.anyio
async def test_re_path_named_groups() -> None:
    app = Recorder()
    router = URLRouter([re_path(r"^chat/(?P<room>\w+)/(?P<page>\d+)?/?$", app)])
    await call(router, ws("/chat/lobby/"))
    # Unmatched optional named groups are dropped, as in Django.
    assert app.scope["url_route"] == {"args": (), "kwargs": {"room": "lobby"}}


@pytest.mark.anyio
async def test_re_path_unnamed_groups() -> None:
    app = Recorder()
    router = URLRouter([re_path(r"^chat/(\w+)/(\d+)/$", app)])
    await call(router, ws("/chat/lobby/7/"))
    assert app.scope["url_route"] == {"args": ("lobby", "7"), "kwargs": {}}


@pytest.mark.anyio
async def test_first_matching_route_wins() -> None:
    first, second = Recorder(), Recorder()
    router = URLRouter([re_path(r"^a/", first), re_path(r"^a/b/$", second)])
    await call(router, ws("/a/b/"))
    assert len(first.scopes) == 1
    assert second.scopes == []


@pytest.mark.anyio
async def test_default_kwargs_override_captured() -> None:
    app = Recorder()
    router = URLRouter([path("x/<str:mode>/<int:n>/", app, {"mode": "fixed", "extra": 1})])
    await call(router, ws("/x/free/3/"))
    assert app.scope["url_route"]["kwargs"] == {"mode": "fixed", "n": 3, "extra": 1}


@pytest.mark.anyio
async def test_all_leading_slashes_are_stripped() -> None:
    app = Recorder()
    router = URLRouter([path("a/", app)])
    await call(router, ws("///a/"))
    assert len(app.scopes) == 1


@pytest.mark.anyio
async def test_nested_url_router() -> None:
    inner_app = Recorder()
    inner = URLRouter([path("<int:item>/", inner_app)])
    router = URLRouter([path("shop/<str:shop>/", inner)])
    await call(router, ws("/shop/corner/12/"))
    scope = inner_app.scope
    assert scope["path_remaining"] == ""
    assert scope["url_route"] == {"args": (), "kwargs": {"shop": "corner", "item": 12}}


@pytest.mark.anyio
async def test_nested_url_router_merges_args_and_kwargs() -> None:
    leaf = Recorder()
    inner = URLRouter([re_path(r"^(\d+)/$", leaf, {"extra": True})])
    router = URLRouter([re_path(r"^(\w+)/", inner)])
    await call(router, ws("/lobby/5/", url_route={"args": ("x",), "kwargs": {"outer": 1}}))
    assert leaf.scope["url_route"] == {
        "args": ("x", "lobby", "5"),
        "kwargs": {"outer": 1, "extra": True},
    }


@pytest.mark.anyio
async def test_nested_router_sees_path_remaining() -> None:
    leaf = Recorder()
    router = URLRouter([path("a/", URLRouter([path("b/", URLRouter([path("c/", leaf)]))]))])
    await call(router, ws("/a/b/c/"))
    assert leaf.scope["path_remaining"] == ""
    assert leaf.scope["path"] == "/a/b/c/"


@pytest.mark.anyio
async def test_nested_no_match_falls_through_to_next_route() -> None:
    fallback = Recorder()
    inner = URLRouter([path("known/", Recorder())])
    router = URLRouter([path("api/", inner), re_path(r"^api/", fallback)])
    await call(router, ws("/api/other/"))
    assert fallback.scope["path_remaining"] == "other/"


@pytest.mark.anyio
async def test_nested_no_match_raises_value_error_at_top() -> None:
    router = URLRouter([path("api/", URLRouter([path("known/", Recorder())]))])
    with pytest.raises(ValueError, match=r"No route found for path 'api/other/'\."):
        await call(router, ws("/api/other/"))


@pytest.mark.anyio
async def test_path_routing_app_mounted_under_prefix() -> None:
    mounted = PathRoutingRecorder()
    router = URLRouter([path("native/<str:tenant>/", mounted)])
    await call(router, ws("/native/acme/ws/chat/lobby/"))
    assert mounted.scope["path_remaining"] == "ws/chat/lobby/"
    assert mounted.scope["url_route"] == {"args": (), "kwargs": {"tenant": "acme"}}


@pytest.mark.anyio
async def test_re_path_prefix_for_path_routing_app() -> None:
    mounted = PathRoutingRecorder()
    router = URLRouter([re_path(r"^v(?P<version>\d)/", mounted)])
    await call(router, ws("/v2/rest"))
    assert mounted.scope["path_remaining"] == "rest"
    assert mounted.scope["url_route"]["kwargs"] == {"version": "2"}


@pytest.mark.anyio
async def test_root_path_is_removed() -> None:
    app = Recorder()
    router = URLRouter([path("ws/<int:n>/", app)])
    await call(router, ws("/prefix/ws/3/", root_path="/prefix"))
    assert app.scope["url_route"]["kwargs"] == {"n": 3}
    assert app.scope["root_path"] == "/prefix"


@pytest.mark.anyio
async def test_path_outside_root_path_matches_nothing() -> None:
    router = URLRouter([path("ws/", Recorder())])
    with pytest.raises(ValueError, match=r"No route found for path '/ws/'\."):
        await call(router, ws("/ws/", root_path="/prefix"))


@pytest.mark.anyio
async def test_root_path_is_ignored_by_nested_routers() -> None:
    leaf = Recorder()
    router = URLRouter([path("a/", URLRouter([path("b/", leaf)]))])
    # The outer router removes root_path once; the inner one sees only path_remaining.
    await call(router, ws("/a/a/b/", root_path="/a"))
    assert leaf.scope["path_remaining"] == ""


@pytest.mark.anyio
async def test_empty_root_path_is_ignored() -> None:
    app = Recorder()
    router = URLRouter([path("ws/", app)])
    await call(router, ws("/ws/", root_path=""))
    assert len(app.scopes) == 1


@pytest.mark.anyio
async def test_no_match() -> None:
    router = URLRouter([path("a/", Recorder())])
    with pytest.raises(ValueError, match=r"No route found for path 'b/'\."):
        await call(router, ws("/b/"))


@pytest.mark.anyio
async def test_scope_without_path() -> None:
    router = URLRouter([path("a/", Recorder())])
    with pytest.raises(ValueError, match="No 'path' key in connection scope"):
        await call(router, {"type": "websocket"})


def test_include_is_rejected() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"include\(\) is not supported"):
        URLRouter([path("a/", include([path("b/", Recorder())]))])


def test_unsupported_pattern_for_path_routing_app() -> None:
    route = SimpleNamespace(pattern=object(), callback=PathRoutingRecorder(), default_args={})
    with pytest.raises(ValueError, match="Unsupported pattern type"):
        URLRouter([route])


def test_routes_to_path_routing_apps_become_prefixes() -> None:
    endpoint = path("a/", Recorder())
    prefix = path("b/", PathRoutingRecorder())
    router = URLRouter([endpoint, prefix])
    assert router.routes[0].pattern.match("a/rest") is None
    assert router.routes[1].pattern.match("b/rest") == ("rest", (), {})
    assert URLRouter._path_routing is True


@pytest.mark.anyio
async def test_url_router_under_protocol_type_router() -> None:
    app = Recorder()
    router = ProtocolTypeRouter({"websocket": URLRouter([path("ws/", app)])})
    await call(router, ws("/ws/"))
    assert app.scope["url_route"] == {"args": (), "kwargs": {}}


@pytest.mark.anyio
async def test_router_does_not_mutate_callers_scope() -> None:
    router = URLRouter([path("ws/", Recorder())])
    scope = ws("/ws/")
    await call(router, scope)
    assert scope == {"type": "websocket", "path": "/ws/"}


@pytest.mark.anyio
async def test_url_router_returns_what_the_application_returns() -> None:
    router = URLRouter([path("ws/<str:room>/", Returns(42))])
    assert await router(ws("/ws/lobby/"), _receive, _send) == 42


@pytest.mark.anyio
async def test_nested_url_routers_return_what_the_inner_application_returns() -> None:
    inner = URLRouter([path("b/", Returns("inner"))])
    router = URLRouter([path("a/", URLRouter([path("x/", Recorder())])), path("a/", inner)])
    outer = ProtocolTypeRouter({"websocket": router})
    assert await outer(ws("/a/b/"), _receive, _send) == "inner"


# ChannelNameRouter


@pytest.mark.anyio
async def test_channel_name_router_dispatches() -> None:
    thumbs, mail = Recorder(), Recorder()
    router = ChannelNameRouter({"thumbnails": thumbs, "mail": mail})
    await call(router, {"type": "channel", "channel": "mail"})
    assert mail.scope["channel"] == "mail"
    assert thumbs.scopes == []


@pytest.mark.anyio
async def test_channel_name_router_returns_what_the_application_returns() -> None:
    router = ChannelNameRouter({"thumbnails": Returns(["done"])})
    assert await router({"type": "channel", "channel": "thumbnails"}, _receive, _send) == ["done"]


@pytest.mark.anyio
async def test_channel_name_router_missing_channel_key() -> None:
    router = ChannelNameRouter({"mail": Recorder()})
    with pytest.raises(ValueError, match="without a 'channel' key"):
        await call(router, {"type": "channel"})


@pytest.mark.anyio
async def test_channel_name_router_unknown_channel() -> None:
    router = ChannelNameRouter({"mail": Recorder()})
    with pytest.raises(ValueError, match="No application configured for channel name 'sms'"):
        await call(router, {"type": "channel", "channel": "sms"})


def test_import_without_django_needs_no_django_modules() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['django'] = None\n"
        "import achannels.routing as r\n"
        "r.ProtocolTypeRouter({}); r.ChannelNameRouter({})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
