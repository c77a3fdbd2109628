"""What one idle WebSocket connection keeps alive in the server process, with no network.

    python benchmarks/idle_cost.py [--connections 2000] [--apps chat-raw,chat-native,...]

A fake server in one process opens ``--connections`` WebSockets to the app, all in one
chat room, waits until each is accepted and its consumer waits for the next frame, and
measures what the process holds for them: Python-allocated bytes (``tracemalloc``)
and gc-tracked objects, after ``gc.collect()``, per connection. Then every client
leaves and the figures are read again, to show that the connections left nothing.
Each app runs in a process of its own (the class and Channels apps configure Django),
on asyncio and on trio. The fake server's own cost (a task, a stream pair per
connection) is in every row alike: compare an app with ``chat-raw``.

The apps are the benchmark suite's chat apps (``benchmarks/suite_apps.py``). The
suite's ``idle`` benchmark measures the same over real sockets on real servers, as
RSS; this one separates the framework's allocations from the server's and the
allocator's, and runs in seconds.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.suite_apps import CHAT_APPS, available


def _scope(room: str) -> dict[str, Any]:
    path = f"/ws/chat/{room}/"
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


def _held() -> tuple[int, int]:
    gc.collect()
    return tracemalloc.get_traced_memory()[0], len(gc.get_objects())


def _print_top(
    before: tracemalloc.Snapshot | None, after: tracemalloc.Snapshot, connections: int, top: int
) -> None:
    assert before is not None
    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    diff = after.filter_traces(keep).compare_to(before.filter_traces(keep), "lineno")
    for stat in diff[:top]:
        frame = stat.traceback[0]
        print(
            f"{stat.size_diff / connections:8.0f} B {stat.count_diff / connections:5.1f} blocks"
            f"  {frame.filename}:{frame.lineno}",
            file=sys.stderr,
        )


async def _measure(name: str, connections: int, warm: int, top: int) -> dict[str, Any]:
    from benchmarks.suite_apps import build

    app = build(name)
    clients: list[MemoryObjectSendStream[dict[str, Any]]] = []

    async def connect(task_group: anyio.abc.TaskGroup) -> None:
        to_app, inbox = anyio.create_memory_object_stream[dict[str, Any]](1)
        accepted = anyio.Event()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "websocket.accept":
                accepted.set()

        async def serve() -> None:
            with inbox:
                await app(_scope("lobby"), inbox.receive, send)

        to_app.send_nowait({"type": "websocket.connect"})
        task_group.start_soon(serve)
        await accepted.wait()
        clients.append(to_app)

    async def settle() -> None:
        for _ in range(50):  # let every consumer reach its wait for the next frame
            await anyio.sleep(0.01)

    start_bytes, start_objects = _held()
    async with anyio.create_task_group() as task_group:
        for _ in range(warm):  # routes, settings, the layer's structures, Django
            await connect(task_group)
        await settle()
        bytes_before, objects_before = _held()
        snapshot = tracemalloc.take_snapshot() if top else None
        for _ in range(connections):
            await connect(task_group)
        await settle()
        bytes_after, objects_after = _held()
        if top:
            _print_top(snapshot, tracemalloc.take_snapshot(), connections, top)
        for client in clients:
            with client:
                await client.send({"type": "websocket.disconnect", "code": 1000})
        clients.clear()
    await settle()
    bytes_left, objects_left = _held()
    return {
        "bytes_per_connection": (bytes_after - bytes_before) / connections,
        "objects_per_connection": (objects_after - objects_before) / connections,
        "bytes_left_per_connection": (bytes_left - start_bytes) / (connections + warm),
        "objects_left": objects_left - start_objects,
    }


def _one(name: str, backend: str, connections: int, warm: int, top: int) -> None:
    tracemalloc.start()
    result = anyio.run(_measure, name, connections, warm, top, backend=backend)
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--warm", type=int, default=200)
    parser.add_argument("--apps", default=",".join(available()), help="comma-separated")
    parser.add_argument("--backends", default="asyncio,trio", help="comma-separated")
    parser.add_argument(
        "--top", type=int, default=0, help="with --one: print the N biggest allocation sites"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # APP:BACKEND, in a child process
    args = parser.parse_args(argv)
    if args.one:
        name, backend = args.one.split(":")
        _one(name, backend, args.connections, args.warm, args.top)
        return
    names = args.apps.split(",")
    for name in names:
        if name not in CHAT_APPS:
            parser.error(f"unknown app {name!r}; choose from {', '.join(CHAT_APPS)}")
    print(f"Held per idle connection ({args.connections} in one room, after {args.warm})")
    header = f"{'backend':8s} {'app':14s} {'bytes':>8s} {'over raw':>9s} {'objects':>8s}"
    print(f"{header}  after leaving")
    for backend in args.backends.split(","):
        raw: float | None = None
        for name in names:
            if name == "chat-channels" and backend != "asyncio":
                continue  # Channels runs on asyncio only
            command = [sys.executable, __file__, "--one", f"{name}:{backend}"]
            command += ["--connections", str(args.connections), "--warm", str(args.warm)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            held = result["bytes_per_connection"]
            if name == "chat-raw":
                raw = held
            over = f"{held - raw:+9.0f}" if raw is not None else f"{'-':>9s}"
            print(
                f"{backend:8s} {name:14s} {held:8.0f} {over} "
                f"{result['objects_per_connection']:8.1f}  "
                f"{result['bytes_left_per_connection']:+.0f} B/conn, "
                f"{result['objects_left']:+d} objects"
            )


if __name__ == "__main__":
    main()
