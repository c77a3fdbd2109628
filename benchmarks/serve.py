"""Serve one benchmark app on one server, in this process, until SIGTERM or SIGINT.

    python benchmarks/serve.py hypercorn-trio achannels --port 8001 [--profile out.prof]

Servers: ``hypercorn-trio`` and ``hypercorn-asyncio`` (hypercorn's ``serve`` API,
what its workers run, without the process supervisor) and ``uvicorn`` (``uvicorn.run``
with its default WebSocket implementation). One process, so the benchmark has one
PID to stop and a profiler has one process to watch. ``--profile`` runs the server
under cProfile and writes the stats when it stops.

Apps: the echo apps of ``benchmarks/apps.py`` and the chat apps of
``benchmarks/suite_apps.py`` (``chat-raw``, ``chat-native``, ...). The open-file limit
is raised to its hard limit, and hypercorn's listen backlog to 4096, so thousands of
connections can be opened at once.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# A copy of achannels to serve instead of the working tree's (the suite's
# --achannels-src: e.g. a commit's snapshot while the tree is being edited).
if os.environ.get("BENCH_ACHANNELS_SRC"):
    sys.path.insert(0, os.environ["BENCH_ACHANNELS_SRC"])

SERVERS = ("hypercorn-trio", "hypercorn-asyncio", "uvicorn")
ECHO_APPS = ("raw", "achannels", "achannels_class", "channels")
CHAT_APPS = ("chat-raw", "chat-native", "chat-class", "chat-channels")


def _hypercorn_config(port: int) -> Any:
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = "-"
    config.loglevel = "WARNING"
    config.graceful_timeout = 1.0
    config.backlog = 4096
    return config


def _serve_hypercorn_trio(app: Any, port: int) -> None:
    import trio
    from hypercorn.trio import serve

    async def stop() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                return

    trio.run(lambda: serve(app, _hypercorn_config(port), shutdown_trigger=stop))


def _serve_hypercorn_asyncio(app: Any, port: int) -> None:
    import asyncio

    from hypercorn.asyncio import serve

    async def main() -> None:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopped.set)
        await serve(app, _hypercorn_config(port), shutdown_trigger=stopped.wait)

    asyncio.run(main())


def _serve_uvicorn(app: Any, port: int) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
        backlog=4096,
    )


def serve(server: str, app_name: str, port: int) -> None:
    """Serve the app ``app_name`` with ``server`` on 127.0.0.1:``port``."""
    if app_name in CHAT_APPS:
        from benchmarks import suite_apps

        app = suite_apps.build(app_name)
    else:
        from benchmarks import apps

        app = getattr(apps, app_name)
    if app is None:
        raise SystemExit(f"app {app_name!r} is not available (is its package installed?)")
    runner = {
        "hypercorn-trio": _serve_hypercorn_trio,
        "hypercorn-asyncio": _serve_hypercorn_asyncio,
        "uvicorn": _serve_uvicorn,
    }[server]
    runner(app, port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=SERVERS)
    parser.add_argument("app", choices=ECHO_APPS + CHAT_APPS)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats here on exit")
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.profile:
        profiler = cProfile.Profile()
        try:
            profiler.runcall(serve, args.server, args.app, args.port)
        finally:
            profiler.dump_stats(args.profile)
    else:
        serve(args.server, args.app, args.port)


if __name__ == "__main__":
    main()
