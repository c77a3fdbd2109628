"""Client-side helpers for the end-to-end tests (run on the test's AnyIO backend)."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from httpx_ws import AsyncWebSocketSession, WebSocketDisconnect, aconnect_ws

from .servers import Server

__all__ = ["open_client", "open_ws", "poll_json", "receive_close", "stats", "upgrade_headers"]

#: The bound on any single wait for the server in these tests.
WAIT = 5.0


@asynccontextmanager
async def open_client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """Open an ``httpx.AsyncClient`` for ``server`` (relative URLs, bounded timeouts)."""
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as client:
        yield client


@asynccontextmanager
async def open_ws(
    client: httpx.AsyncClient,
    path: str,
    *,
    subprotocols: list[str] | None = None,
    max_message_size_bytes: int = 1 << 16,
) -> AsyncIterator[AsyncWebSocketSession]:
    """Open a WebSocket to ``path`` with httpx-ws over ``client``'s connection pool.

    Raises:
        httpx_ws.WebSocketUpgradeError: the server refused the handshake.
    """
    async with aconnect_ws(
        path,
        client,
        subprotocols=subprotocols,
        max_message_size_bytes=max_message_size_bytes,
        session_class=AsyncWebSocketSession,
    ) as ws:
        yield ws


async def receive_close(ws: AsyncWebSocketSession) -> tuple[int, str]:
    """Wait (bounded) for the server's close frame; return its code and reason.

    Fails the test if a data frame arrives first.
    """
    with anyio.fail_after(WAIT), pytest.raises(WebSocketDisconnect) as closed:
        await ws.receive()
    return closed.value.code, closed.value.reason


async def poll_json(
    client: httpx.AsyncClient,
    path: str,
    condition: Callable[[httpx.Response], bool],
    *,
    within: float = WAIT,
) -> Any:
    """GET ``path`` until ``condition(response)`` holds; return the JSON body.

    Polling is the only way to watch state inside another process. Raises
    ``TimeoutError`` (with the last response) when it never holds.
    """
    response: httpx.Response | None = None
    try:
        with anyio.fail_after(within):
            while True:
                response = await client.get(path)
                if condition(response):
                    return response.json()
                await anyio.sleep(0.02)
    except TimeoutError:
        last = "no response" if response is None else f"{response.status_code} {response.text}"
        raise TimeoutError(f"GET {path} never matched in {within} s; last: {last}") from None


async def stats(client: httpx.AsyncClient) -> dict[str, int]:
    """Return the echo app's ``/stats`` (its own request counts as one live connection)."""
    response = await client.get("/stats")
    response.raise_for_status()
    data: dict[str, int] = response.json()
    return data


def upgrade_headers() -> dict[str, str]:
    """Headers that ask for a WebSocket upgrade, for reading a denial's body by hand."""
    return {
        "connection": "upgrade",
        "upgrade": "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": base64.b64encode(os.urandom(16)).decode("ascii"),
    }
