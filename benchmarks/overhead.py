"""The per-message cost of an echo app with no network: a fake server in one process.

    python benchmarks/overhead.py [--messages 100000] [--repeats 5]

A stand-in for the server's side of one WebSocket: ``receive()`` awaits a queue
(``asyncio.Queue`` on asyncio, a trio memory channel on trio, as hypercorn and
uvicorn do) and ``send()`` hands the frame to a "client" task, which queues the next
frame. So, as on a real server, the consumer suspends in ``receive()`` for every
message and other tasks get to run in between. With sockets and protocol parsing
gone, the difference between the raw app and another app is what that app adds per
message, measured to a fraction of a µs and unaffected by other load on the machine
(best of ``--repeats`` interleaved runs). Runs on asyncio and trio.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import apps

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
SCOPE = {
    "type": "websocket",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "scheme": "ws",
    "path": apps.ECHO_PATH,
    "raw_path": apps.ECHO_PATH.encode(),
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
    "subprotocols": [],
    "extensions": {},
}
FRAME = {"type": "websocket.receive", "text": "0123456789abcdef"}
END = {"type": "websocket.disconnect", "code": 1000}


async def _asyncio_run(app: App, messages: int) -> float:
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    to_client: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(message: dict[str, Any]) -> None:
        to_client.put_nowait(message)

    async def client() -> None:
        to_app.put_nowait({"type": "websocket.connect"})
        assert (await to_client.get())["type"] == "websocket.accept"
        to_app.put_nowait(dict(FRAME))
        for _ in range(messages - 1):
            await to_client.get()
            to_app.put_nowait(dict(FRAME))
        await to_client.get()
        to_app.put_nowait(END)

    started = time.perf_counter()
    task = asyncio.ensure_future(client())
    await app(dict(SCOPE), to_app.get, send)
    await task
    return time.perf_counter() - started


async def _trio_run(app: App, messages: int) -> float:
    app_send, app_receive = trio.open_memory_channel[dict[str, Any]](10)
    client_send, client_receive = trio.open_memory_channel[dict[str, Any]](10)

    async def client() -> None:
        app_send.send_nowait({"type": "websocket.connect"})
        assert (await client_receive.receive())["type"] == "websocket.accept"
        app_send.send_nowait(dict(FRAME))
        for _ in range(messages - 1):
            await client_receive.receive()
            app_send.send_nowait(dict(FRAME))
        await client_receive.receive()
        app_send.send_nowait(END)

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client)
        await app(dict(SCOPE), app_receive.receive, client_send.send)
    return time.perf_counter() - started


def measure_once(backend: str, app: App, messages: int) -> float:
    """Return µs per message of one run."""
    if backend == "asyncio":
        seconds = asyncio.run(_asyncio_run(app, messages))
    else:
        seconds = trio.run(_trio_run, app, messages)
    return seconds / messages * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--apps", default="raw,achannels", help="comma-separated")
    args = parser.parse_args(argv)
    names = ["raw"] + [n for n in args.apps.split(",") if n and n != "raw"]
    print(f"{args.messages:,} messages, best of {args.repeats} interleaved runs\n")
    print("| backend | app | µs/msg | + µs/msg vs raw |")
    print("|---|---|---:|---:|")
    for backend in ("asyncio", "trio"):
        chosen = {
            name: getattr(apps, name)
            for name in names
            if getattr(apps, name) is not None and not (name == "channels" and backend == "trio")
        }
        best = dict.fromkeys(chosen, float("inf"))
        for _ in range(args.repeats):
            for name, app in chosen.items():
                best[name] = min(best[name], measure_once(backend, app, args.messages))
        for name, cost in best.items():
            added = "-" if name == "raw" else f"{cost - best['raw']:+.2f}"
            print(f"| {backend} | {name} | {cost:.2f} | {added} |")


if __name__ == "__main__":
    main()
