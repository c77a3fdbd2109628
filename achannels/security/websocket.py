"""WebSocket origin checks compatible with ``channels.security.websocket``.

A cross-site page can open a WebSocket to your site with the user's cookies; the
browser sends the page's ``Origin``, and these validators refuse the handshake
(the server answers 403) unless it is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import ParseResult, urlparse

from achannels._asgi import ASGIApp, Receive, Scope, Send

__all__ = ["AllowedHostsOriginValidator", "OriginValidator", "WebsocketDenier"]

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


class OriginValidator:
    """Pass WebSocket connections whose ``Origin`` matches ``allowed_origins``; deny others.

    A pattern is ``"*"`` (anything), a domain (``"example.com"``; a leading dot,
    ``".example.com"``, also matches every subdomain), or a scheme, domain and
    optional port (``"https://example.com:8443"``; the scheme's default port when
    omitted). A connection without an ``Origin`` header (a non-browser client) passes
    only when ``"*"`` is allowed, as in Channels.
    """

    def __init__(self, application: ASGIApp, allowed_origins: Sequence[str]) -> None:
        self.application = application
        self.allowed_origins = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the application, or deny the handshake.

        Raises:
            ValueError: the scope is not a WebSocket scope.
        """
        if scope["type"] != "websocket":
            raise ValueError("You cannot use OriginValidator on a non-WebSocket connection")
        origin: ParseResult | None = None
        for name, value in scope.get("headers", []):
            if name == b"origin":
                try:
                    origin = urlparse(value.decode("ascii"))
                except UnicodeDecodeError:
                    origin = None
        if self.valid_origin(origin):
            await self.application(scope, receive, send)
        else:
            await WebsocketDenier()(scope, receive, send)

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        """Return whether ``parsed_origin`` may connect (a missing one only under ``"*"``)."""
        if parsed_origin is None:
            return "*" in self.allowed_origins
        return self.validate_origin(parsed_origin)

    def validate_origin(self, parsed_origin: ParseResult) -> bool:
        """Return whether ``parsed_origin`` matches any allowed pattern."""
        return any(
            pattern == "*" or self.match_allowed_origin(parsed_origin, pattern)
            for pattern in self.allowed_origins
        )

    def match_allowed_origin(self, parsed_origin: ParseResult, pattern: str) -> bool:
        """Return whether ``parsed_origin`` matches one ``pattern`` (see the class docs)."""
        parsed_pattern = urlparse(pattern.lower())
        if not parsed_pattern.scheme or not parsed_pattern.netloc:
            host = urlparse("//" + pattern).hostname or pattern
            return is_same_domain(parsed_origin.hostname, host)
        return (
            parsed_pattern.scheme == parsed_origin.scheme
            and self.get_origin_port(parsed_origin) == self.get_origin_port(parsed_pattern)
            and is_same_domain(parsed_origin.hostname, parsed_pattern.hostname)
        )

    @staticmethod
    def get_origin_port(origin: ParseResult) -> int | None:
        """Return the origin's port, or its scheme's default, or ``None``."""
        try:
            port = origin.port
        except ValueError:
            return None
        return port if port is not None else _DEFAULT_PORTS.get(origin.scheme)


def is_same_domain(host: str | None, pattern: str | None) -> bool:
    """Return whether ``host`` is ``pattern`` or, for ``.pattern``, one of its subdomains."""
    if not host or not pattern:
        return False
    host, pattern = host.lower(), pattern.lower()
    if pattern.startswith("."):
        return host.endswith(pattern) or host == pattern[1:]
    return host == pattern


def AllowedHostsOriginValidator(application: ASGIApp) -> OriginValidator:
    """Return an :class:`OriginValidator` allowing Django's ``settings.ALLOWED_HOSTS``.

    With ``DEBUG`` on and ``ALLOWED_HOSTS`` empty, localhost addresses are allowed,
    as Django itself does.
    """
    from django.conf import settings

    allowed_hosts: list[str] = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return OriginValidator(application, allowed_hosts)


class WebsocketDenier:
    """An ASGI app that refuses every WebSocket handshake (the server answers 403)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wait for the handshake, then close it."""
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 1000, "reason": ""})
