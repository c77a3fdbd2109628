"""Channels-compatible routers: dispatch a connection by protocol, URL path or channel name.

Each router is itself an ASGI application, so routers nest::

    application = ProtocolTypeRouter({
        "websocket": URLRouter([
            path("ws/chat/<str:room>/", ChatConsumer.as_asgi()),
            path("ws/admin/", URLRouter([...])),
        ]),
        "channel": ChannelNameRouter({"thumbnails": ThumbnailConsumer.as_asgi()}),
    })

The behaviour follows Channels 4.3, including its error types and messages, so a
project migrates by changing the import. :class:`ProtocolTypeRouter` and
:class:`ChannelNameRouter` work without Django; :class:`URLRouter` matches Django
``path()``/``re_path()`` objects and imports Django only when it is constructed.

None of the routers adds a checkpoint of its own: a call runs straight into the
chosen application, and cancellation reaches that application unchanged. A router
returns what the chosen application returns, as Channels' routers do.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from achannels._asgi import ASGIApp, Receive, Scope, Send
from achannels._gc import tune_gc

__all__ = ["ChannelNameRouter", "ProtocolTypeRouter", "URLRouter"]

logger = logging.getLogger("achannels.routing")


class ProtocolTypeRouter:
    """Dispatch each connection to an application chosen by ``scope["type"]``.

    Args:
        application_mapping: Scope type (``"http"``, ``"websocket"``, ``"lifespan"``,
            ``"channel"``, ...) to the ASGI application that serves it.
    """

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        self.application_mapping = application_mapping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        """Run the application registered for the scope type; return what it returns.

        A ``"lifespan"`` scope with no application registered for it is answered
        here (returning ``None``): the ``CHANNEL_LAYERS`` layers are owned from
        startup to shutdown.

        Raises:
            ValueError: No application is registered for ``scope["type"]``.
        """
        scope_type = scope["type"]
        try:
            application = self.application_mapping[scope_type]
        except KeyError:
            if scope_type == "lifespan":
                await _own_layers_for_lifespan(receive, send)
                return None
            raise ValueError(f"No application configured for scope type {scope_type!r}") from None
        return await application(scope, receive, send)


async def _own_layers_for_lifespan(receive: Receive, send: Send) -> None:
    """Answer lifespan, owning the ``CHANNEL_LAYERS`` layers from startup to shutdown.

    Channels raises for lifespan here; achannels answers it so that the configured
    Redis layers keep their pools and receive loops for the life of the server.
    """
    from achannels.layers import channel_layers

    message = await receive()
    if message["type"] != "lifespan.startup":
        raise ValueError(f"expected lifespan.startup, got {message['type']!r}")
    tune_gc()
    phase = "startup"
    try:
        async with channel_layers.owned():
            await send({"type": "lifespan.startup.complete"})
            phase = "shutdown"
            await receive()  # lifespan.shutdown
    except Exception as exc:
        logger.exception("channel layers failed at lifespan %s", phase)
        await send({"type": f"lifespan.{phase}.failed", "message": repr(exc)})
        return
    await send({"type": "lifespan.shutdown.complete"})


class URLRouter:
    """Dispatch each connection by its path, using Django ``path()``/``re_path()`` routes.

    The router matches ``scope["path_remaining"]`` when an outer router set it, and
    ``scope["path"]`` otherwise. The outermost router first removes
    ``scope["root_path"]`` from the front of the path (a path outside the root
    matches nothing); every router then strips leading slashes, as Django does.
    The first matching route wins. Its application receives a copy of the scope with
    ``path_remaining`` set to the unmatched rest of the path and ``url_route`` set to
    ``{"args": outer_args + args, "kwargs": {**outer_kwargs, **kwargs}}``, where a
    route's extra ``kwargs`` (the third argument of ``path()``) override captured ones.

    A route whose application has a true ``_path_routing`` attribute (another
    ``URLRouter``, or the native ``Router``) matches a prefix instead of the whole
    path, so that the inner application routes the rest.

    Args:
        routes: Django ``URLPattern`` objects made by ``path()`` or ``re_path()``.
            Routes are adjusted in place for prefix matching, as Channels does.

    Raises:
        ImproperlyConfigured: A route is an ``include()``; nest routers instead.
        ValueError: A prefix route uses a pattern class other than Django's
            ``RoutePattern`` or ``RegexPattern``.
    """

    #: Marks an application that routes on the rest of the path, so an outer
    #: ``URLRouter`` matches only a prefix of the path for it.
    _path_routing: ClassVar[bool] = True

    def __init__(self, routes: Sequence[Any]) -> None:
        from django.core.exceptions import (  # type: ignore[import-untyped,unused-ignore]
            ImproperlyConfigured,
        )
        from django.urls import Resolver404, URLResolver  # type: ignore[import-untyped,unused-ignore]

        self.routes = routes
        self._resolver404: type[Exception] = Resolver404
        for route in routes:
            if getattr(route.callback, "_path_routing", False) is True:
                route.pattern = _prefix_pattern(route.pattern)
            if not route.callback and isinstance(route, URLResolver):
                raise ImproperlyConfigured(
                    f"{route}: include() is not supported in URLRouter. "
                    "Use nested URLRouter instances instead."
                )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        """Run the application of the first route that matches the path; return its result.

        Raises:
            ValueError: The scope has no path, or no route matches (outermost router).
            django.urls.Resolver404: No route matches in a nested router, so that the
                outer router tries its next route.
        """
        nested = "path_remaining" in scope
        path: str | None = scope["path_remaining"] if nested else scope.get("path")
        if path is None:
            raise ValueError("No 'path' key in connection scope, cannot route URLs")
        if not nested:
            root_path: str = scope.get("root_path", "")
            if root_path and not path.startswith(root_path):
                raise ValueError(f"No route found for path {path!r}.")
            path = path[len(root_path) :]
        path = path.lstrip("/")
        for route in self.routes:
            match = route.pattern.match(path)
            if not match:
                continue
            remaining, args, kwargs = match
            kwargs.update(route.default_args)
            outer = scope.get("url_route", {})
            inner_scope = {
                **scope,
                "path_remaining": remaining,
                "url_route": {
                    "args": outer.get("args", ()) + args,
                    "kwargs": {**outer.get("kwargs", {}), **kwargs},
                },
            }
            try:
                return await route.callback(inner_scope, receive, send)
            except self._resolver404:
                # A nested router found nothing under this prefix: try the next route.
                continue
        if nested:
            raise self._resolver404(f"No route found for path {path!r}.")
        raise ValueError(f"No route found for path {path!r}.")


def _prefix_pattern(pattern: Any) -> Any:
    """Return a copy of a Django route pattern that matches a prefix, not a whole path."""
    from django.urls.resolvers import (  # type: ignore[import-untyped,unused-ignore]
        RegexPattern,
        RoutePattern,
    )

    if isinstance(pattern, RegexPattern):
        source = pattern._regex
    elif isinstance(pattern, RoutePattern):
        source = pattern._route
    else:
        raise ValueError(f"Unsupported pattern type: {type(pattern)}")
    return type(pattern)(source, pattern.name, is_endpoint=False)


class ChannelNameRouter:
    """Dispatch ``channel`` scopes (background workers) by ``scope["channel"]``.

    Args:
        application_mapping: Channel name to the ASGI application that consumes it.
    """

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        self.application_mapping = application_mapping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        """Run the application registered for the scope's channel name; return its result.

        Raises:
            ValueError: The scope has no ``channel`` key, or no application is
                registered for that channel.
        """
        if "channel" not in scope:
            raise ValueError(
                "ChannelNameRouter got a scope without a 'channel' key. "
                "Did you make sure it's only being used for 'channel' type messages?"
            )
        channel = scope["channel"]
        try:
            application = self.application_mapping[channel]
        except KeyError:
            raise ValueError(f"No application configured for channel name {channel!r}") from None
        return await application(scope, receive, send)
