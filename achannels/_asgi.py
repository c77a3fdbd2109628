"""ASGI type aliases and the switch that lets test tools see consumer exceptions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any, TypeAlias

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send", "raise_app_errors"]

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

#: When true in the application task's context, a consumer exception is re-raised to
#: the ASGI caller after the connection was closed with 1011/500 and cleaned up.
#: Servers leave it false (achannels logs the exception itself, once); the test
#: communicators set it so that a test sees the original exception.
raise_app_errors: ContextVar[bool] = ContextVar("achannels_raise_app_errors", default=False)
