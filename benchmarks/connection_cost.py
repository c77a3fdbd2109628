"""What one short WebSocket connection costs the server process, with no network.

    python benchmarks/connection_cost.py [--connections 3000] [--repeats 5]

A fake server in one process opens a WebSocket connection to the app, waits for the
accept, sends the client's disconnect and waits for the app to return: the whole life
of a churned connection with sockets and protocol parsing gone. The CPU time per
connection (best of ``--repeats`` interleaved runs, on asyncio and on trio) is what
the app's own set-up and teardown cost, for:

- ``raw``: a bare ASGI app (accept, wait for the disconnect);
- ``plain``: an achannels ``Router`` consumer that accepts and iterates frames - the
  per-connection runtime alone (task group, disconnect watcher, ending);
- ``grouped``: the same joining a group on the memory layer with an ``@ws.on``
  handler, as the churn benchmark's chat consumer does;
- ``chat-native`` and ``chat-class``: the churn benchmark's own chat apps
  (``benchmarks/suite_apps.py``; the class one needs Django).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
APPS = ("raw", "plain", "grouped", "chat-native", "chat-class")


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "subprotocols": [],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


def build(name: str) -> App:
    """Return the app ``name`` (one of :data:`APPS`)."""
    from achannels import Router, WebSocket
    from achannels.layers import InMemoryChannelLayer

    if name == "raw":

        async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            while (await receive())["type"] != "websocket.disconnect":
                pass

        return raw
    if name == "plain":
        plain = Router()

        @plain.websocket("/ws/chat/{room}/")
        async def echo(ws: WebSocket, room: str) -> None:
            await ws.accept()
            async for _ in ws:
                pass

        return plain
    if name == "grouped":
        grouped = Router(layer=InMemoryChannelLayer())

        @grouped.websocket("/ws/chat/{room}/")
        async def member(ws: WebSocket, room: str) -> None:
            await ws.group_add(room)

            @ws.on("chat.message")
            async def relay(event: dict[str, Any]) -> None:
                await ws.send_json(event)

            await ws.accept()
            async for _ in ws:
                pass

        return grouped
    from benchmarks import suite_apps

    return suite_apps.build(name)


async def _one(app: App, room: int) -> None:
    to_app, inbox = anyio.create_memory_object_stream[dict[str, Any]](4)

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            to_app.send_nowait({"type": "websocket.disconnect", "code": 1000})

    to_app.send_nowait({"type": "websocket.connect"})
    with to_app, inbox:
        await app(_scope(f"/ws/chat/r{room % 10}/"), inbox.receive, send)


async def _measure(app: App, connections: int) -> float:
    for room in range(100):  # warm caches (routes, settings, the layer's structures)
        await _one(app, room)
    start = time.process_time()
    for room in range(connections):
        await _one(app, room)
    return (time.process_time() - start) / connections * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--apps", default=",".join(APPS), help="comma-separated")
    args = parser.parse_args(argv)
    names = args.apps.split(",")
    built = {name: build(name) for name in names}  # once: the class app configures Django
    print(f"CPU µs per connection, best of {args.repeats} ({args.connections} connections)")
    for backend in ("asyncio", "trio"):
        best: dict[str, float] = {}
        for _ in range(args.repeats):  # interleaved, so drift hits every app alike
            for name in names:
                cost = anyio.run(_measure, built[name], args.connections, backend=backend)
                best[name] = min(best.get(name, cost), cost)
        raw = best.get("raw")
        for name in names:
            extra = f"  (+{best[name] - raw:.0f} over raw)" if raw is not None else ""
            print(f"{backend:8s} {name:12s} {best[name]:8.1f}{extra}")


if __name__ == "__main__":
    main()
