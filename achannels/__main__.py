"""Command line: ``python -m achannels serve module:app [options]``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from ._router import Router
from ._serve import import_app, run_worker, serve

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` and run the chosen command."""
    parser = argparse.ArgumentParser(prog="python -m achannels")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve an ASGI app on hypercorn")
    run.add_argument("app", help="the app to serve, as module:attribute")
    run.add_argument("--bind", "-b", action="append", help="host:port (default 127.0.0.1:8000)")
    run.add_argument("--worker-class", "-k", choices=["trio", "asyncio"], default="trio")
    run.add_argument("--shutdown-close-code", type=int, default=1001)
    run.add_argument("--shutdown-grace", type=float, default=5.0)
    run.add_argument("--log-level", default="INFO")
    work = commands.add_parser("worker", help="run an app's @router.channel workers")
    work.add_argument("app", help="the Router, as module:attribute")
    work.add_argument("channels", nargs="*", help="channels to serve (default: all)")
    work.add_argument("--worker-class", "-k", choices=["trio", "asyncio"], default="trio")
    work.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.command == "worker":
        router = import_app(args.app)
        if not isinstance(router, Router):
            parser.error(f"{args.app} is not an achannels.Router")
        run_worker(router, args.channels, worker_class=args.worker_class)
        return
    serve(
        import_app(args.app),
        bind=args.bind or ["127.0.0.1:8000"],
        worker_class=args.worker_class,
        shutdown_close_code=args.shutdown_close_code,
        shutdown_grace=args.shutdown_grace,
    )


if __name__ == "__main__":
    main()
