"""Channels-compatible ``BaseMiddleware``: wrap an ASGI app, copying the scope."""

from __future__ import annotations

from ._asgi import ASGIApp, Receive, Scope, Send

__all__ = ["BaseMiddleware"]


class BaseMiddleware:
    """Base for ASGI middleware: ``__call__`` hands the inner app a copy of the scope.

    Subclasses override ``__call__``, change their copy of the scope, and await
    ``super().__call__(scope, receive, send)``; the caller's scope is never changed.
    """

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the inner application with a shallow copy of ``scope``."""
        await self.inner(dict(scope), receive, send)
