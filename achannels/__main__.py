"""Command line: ``python -m achannels serve [module:app]`` and ``... worker module:router``.

Errors in what the command line names (a module, an attribute, a channel) end the
command with one line on stderr and exit status 1; errors raised by the app's own
code while it is imported keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import platform
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ._router import Router
from ._serve import AppImportError, configure_logging, import_app, run_worker, serve

__all__ = ["main"]

PROG = "python -m achannels"
LOG_LEVELS = ["critical", "error", "warning", "info", "debug"]


def version() -> str:
    """Return the ``--version`` line: achannels and what it runs on."""
    parts = [f"achannels {importlib.metadata.version('achannels')}"]
    for name in ("anyio", "hypercorn", "trio"):
        try:
            parts.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{name} not installed")
    return f"{parts[0]} ({', '.join(parts[1:])}; Python {platform.python_version()})"


class VersionAction(argparse.Action):
    """``--version``: print :func:`version` on one line (argparse's own wraps it)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.update(nargs=0, default=argparse.SUPPRESS, help="print the versions and exit")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(version())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``python -m achannels``."""
    parser = argparse.ArgumentParser(prog=PROG)
    parser.add_argument("--version", action=VersionAction)
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    run = commands.add_parser(
        "serve",
        help="serve an ASGI app on hypercorn, with a graceful WebSocket shutdown",
        description="Serve an ASGI app on hypercorn. On SIGINT or SIGTERM every live "
        "achannels connection is closed with --shutdown-close-code, consumers get "
        "--shutdown-grace seconds to finish, then the server stops.",
    )
    run.add_argument("app", help="the app, as module:attribute ('module' alone means module:app)")
    run.add_argument(
        "--bind",
        "-b",
        action="append",
        metavar="HOST:PORT",
        help="where to listen; repeat for several addresses (default: 127.0.0.1:8000)",
    )
    add_worker_class(run)
    run.add_argument(
        "--workers",
        "-w",
        type=int,
        default=1,
        metavar="N",
        help="server processes sharing the sockets (default: %(default)s); with more than "
        "one the app's layer must be shared between processes (Redis), or groups are "
        "split between them",
    )
    run.add_argument(
        "--shutdown-close-code",
        type=int,
        default=1001,
        metavar="CODE",
        help="the close code live WebSockets get on shutdown (default: %(default)s, "
        "'going away'; 1012, 'service restart', tells clients to reconnect)",
    )
    run.add_argument(
        "--shutdown-grace",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long consumers get to finish after that close before they are "
        "cancelled (default: %(default)s)",
    )
    add_log_level(run)
    run.add_argument("--version", action=VersionAction)
    work = commands.add_parser(
        "worker",
        help="run an app's @router.channel workers",
        description="Serve the @router.channel workers of an achannels Router until "
        "SIGINT or SIGTERM. The Router's layer must be shared between processes (Redis) "
        "for the server processes' messages to reach this one.",
    )
    work.add_argument("app", help="the Router, as module:attribute ('module' alone: module:app)")
    work.add_argument("channels", nargs="*", help="channels to serve (default: all)")
    add_worker_class(work)
    add_log_level(work)
    work.add_argument("--version", action=VersionAction)
    return parser


def add_worker_class(parser: argparse.ArgumentParser) -> None:
    """Add ``--worker-class``: the event loop."""
    parser.add_argument(
        "--worker-class",
        "-k",
        choices=["trio", "asyncio"],
        default="trio",
        help="the event loop (default: %(default)s)",
    )


def add_log_level(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-level``: the level of the root logger, with names in every line."""
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default="info",
        help="log to stderr from this level up (default: %(default)s), each line with its "
        "time, process, level and logger name",
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` and run the chosen command."""
    args = build_parser().parse_args(argv)
    command = f"{PROG} {args.command}"
    configure_logging(args.log_level)
    needed = {"trio": "trio"} if args.worker_class == "trio" else {}
    if args.command == "serve":
        needed["hypercorn"] = "server"
    for module, extra in needed.items():
        if importlib.util.find_spec(module) is None:
            fail(command, f"{module} is not installed: pip install 'achannels[{extra}]'")
    try:
        app = import_app(args.app)
    except AppImportError as exc:
        fail(command, str(exc))
    if args.command == "worker":
        if not isinstance(app, Router):
            fail(command, f"{args.app} is {type(app).__name__!r}, not an achannels.Router")
        check_worker(command, args.app, app, args.channels)
        run_worker(app, args.channels, worker_class=args.worker_class)
        return
    if args.workers < 1:
        fail(command, "--workers must be at least 1")
    try:
        serve(
            args.app if args.workers > 1 else app,
            bind=args.bind or ["127.0.0.1:8000"],
            worker_class=args.worker_class,
            shutdown_close_code=args.shutdown_close_code,
            shutdown_grace=args.shutdown_grace,
            workers=args.workers,
            log_level=args.log_level,
        )
    except RuntimeError as exc:  # a worker process failed: its own log says why
        if args.workers == 1:
            raise
        fail(command, str(exc))


def check_worker(command: str, target: str, router: Router, channels: Sequence[str]) -> None:
    """End the command with one line if ``router`` cannot serve ``channels``."""
    if router.layer is None:
        fail(command, f"{target} has no channel layer: pass layer= to Router()")
    if not router.channel_names:
        fail(command, f"{target} has no @router.channel workers")
    unknown = [name for name in channels if name not in router.channel_names]
    if unknown:
        known = ", ".join(router.channel_names)
        fail(command, f"no @router.channel worker for {', '.join(unknown)} (known: {known})")


def fail(command: str, message: str) -> NoReturn:
    """Exit with status 1 and ``message`` on one line of stderr."""
    sys.exit(f"{command}: error: {message}")


if __name__ == "__main__":
    main()
