"""Run an ASGI app on hypercorn with a graceful, close-frame-first shutdown.

hypercorn, left to itself, waits its graceful timeout on SIGTERM and then cancels
connection tasks without a WebSocket close frame; lifespan shutdown arrives only
after the connections are gone. :func:`serve` runs hypercorn through its Python API
with a shutdown trigger that first closes every live achannels connection with the
shutdown close code, gives consumers a grace period, and only then lets hypercorn
stop. Clients see a clean close (1001 by default) on every deploy.

With ``workers > 1`` this process opens the listening sockets, starts that many
worker processes (``spawn``: each imports the app anew) that share them, and turns
SIGINT or SIGTERM into one SIGTERM for each worker, which then shuts down as above.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import multiprocessing
import os
import signal
from collections.abc import Sequence
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, Literal

import anyio
from anyio.abc import TaskStatus

from ._asgi import ASGIApp
from ._connection import Connections, server_connections
from ._router import Router
from .layers._open import own_layer
from .layers.memory import InMemoryChannelLayer

__all__ = [
    "LOG_FORMAT",
    "AppImportError",
    "configure_logging",
    "import_app",
    "process_local_layer",
    "run_worker",
    "serve",
]

WorkerClass = Literal["trio", "asyncio"]

#: The format ``--log-level`` sets: time, process, level and logger name.
LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"

logger = logging.getLogger("achannels.serve")


class AppImportError(ValueError):
    """A ``module:attribute`` path names no module, no attribute, or no ASGI app."""


def configure_logging(level: str) -> None:
    """Log to stderr at ``level``, each line with its level and logger name.

    Replaces the root logger's handlers: hypercorn's own lines (``hypercorn.error``)
    and achannels' (``achannels``, ``achannels.layers``...) then share one format.
    """
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, datefmt=LOG_DATE_FORMAT, force=True)


def import_app(target: str) -> ASGIApp:
    """Import ``"package.module:attribute"`` and return the ASGI app it names.

    A bare ``"package.module"`` means ``"package.module:app"``, as in hypercorn.

    Raises:
        AppImportError: the module or the attribute does not exist, or the
            attribute is not an ASGI app. (An error raised by the module's own code
            while it is imported propagates unchanged, with its traceback.)
    """
    module_name, _, attribute = target.partition(":")
    attribute = attribute or "app"
    if not module_name or module_name.endswith(".py") or "/" in module_name:
        raise AppImportError(
            f"expected 'module:attribute' with a dotted module path "
            f"(like examples.chat.app:app), got {target!r}"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the module named on the command line: a missing dependency of the
        # app's own code keeps its traceback.
        if exc.name is None or not f"{module_name}.".startswith(f"{exc.name}."):
            raise
        raise AppImportError(
            f"no module named {exc.name!r} (run from the directory that holds it, "
            f"or add that directory to PYTHONPATH)"
        ) from exc
    if not hasattr(module, attribute):
        raise AppImportError(f"module {module_name!r} has no attribute {attribute!r}")
    app = getattr(module, attribute)
    if inspect.isclass(app):
        raise AppImportError(
            f"{module_name}:{attribute} is a class, not an ASGI app "
            f"(a consumer class? serve {app.__name__}.as_asgi())"
        )
    if not callable(app):
        raise AppImportError(
            f"{module_name}:{attribute} is a {type(app).__name__}, not an ASGI app (a callable)"
        )
    checked: ASGIApp = app
    return checked


def process_local_layer(app: object) -> str | None:
    """Return the class name of ``app``'s layer if it lives in one process, else ``None``.

    Only a :class:`~achannels.Router`'s own layer is known here; other apps (a
    ``ProtocolTypeRouter`` with Django's ``CHANNEL_LAYERS``) give ``None``.
    """
    if isinstance(app, Router) and isinstance(app.layer, InMemoryChannelLayer):
        return type(app.layer).__name__
    return None


def serve(
    app: ASGIApp | str,
    *,
    bind: Sequence[str] = ("127.0.0.1:8000",),
    worker_class: WorkerClass = "trio",
    shutdown_close_code: int = 1001,
    shutdown_grace: float = 5.0,
    workers: int = 1,
    log_level: str | None = None,
    hypercorn_options: dict[str, Any] | None = None,
) -> None:
    """Serve ``app`` with hypercorn until SIGINT or SIGTERM, then drain gracefully.

    On the signal every live achannels connection is closed with
    ``shutdown_close_code``; consumers get ``shutdown_grace`` seconds to finish before
    they are cancelled; then hypercorn shuts down (lifespan shutdown included).
    Blocks until the server has stopped.

    Args:
        app: the app, or its ``"module:attribute"`` path (needed for ``workers > 1``:
            each worker process imports it).
        workers: worker processes sharing the sockets. With more than one, a
            warning is logged when the app's layer lives in one process (each
            worker would have its own, and a group would be split between them).
        log_level: configure logging at this level (see :func:`configure_logging`)
            here and in each worker process, and send hypercorn's lines through it;
            ``None`` leaves logging alone and hypercorn logs on its own.

    Raises:
        AppImportError: ``app`` is a path that names no ASGI app.
        ValueError: ``workers`` is less than 1, or more than 1 with ``app`` not a path.
        RuntimeError: a worker process failed (``workers > 1``).
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if log_level is not None:
        configure_logging(log_level)
    loaded = import_app(app) if isinstance(app, str) else app
    config = _config(bind, shutdown_grace, log_level, hypercorn_options)
    if workers == 1:
        code, grace = shutdown_close_code, shutdown_grace
        anyio.run(_serve, loaded, config, worker_class, code, grace, backend=worker_class)
        return
    if not isinstance(app, str):
        raise ValueError("with several workers, give the app as 'module:attribute'")
    layer = process_local_layer(loaded)
    if layer is not None:
        logger.warning(
            "%s uses %s, which lives inside one process: each of the %d workers gets "
            "its own, so groups and channels do not span them (members of one room in "
            "different processes never hear each other). Use a layer shared between "
            "processes (achannels.layers.redis.RedisChannelLayer), or one worker.",
            app,
            layer,
            workers,
        )
    _supervise((app, config, worker_class, shutdown_close_code, shutdown_grace, log_level), workers)


def _config(
    bind: Sequence[str], grace: float, log_level: str | None, options: dict[str, Any] | None
) -> Any:
    from hypercorn.config import Config

    config = Config()
    config.bind = list(bind)
    config.graceful_timeout = grace
    if log_level is not None:
        # hypercorn's lines propagate to the root logger's handler; without this,
        # hypercorn adds a handler of its own and every line is printed twice.
        config.errorlog = logging.getLogger("hypercorn.error")
        config.loglevel = log_level.upper()
    for name, value in (options or {}).items():
        setattr(config, name, value)
    return config


async def _serve(
    app: ASGIApp,
    config: Any,
    worker_class: WorkerClass,
    code: int,
    grace: float,
    sockets: Any = None,
) -> None:
    connections = Connections()
    # Tasks hypercorn starts from here inherit this context: every achannels
    # connection they serve registers with ``connections`` as well as its router.
    server_connections.set(connections)
    if sockets is not None:
        await _serve_sockets(app, config, worker_class, connections, code, grace, sockets)
        return

    async def shutdown_trigger() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        await connections.close_all(code=code, grace=grace)

    # hypercorn.trio or hypercorn.asyncio: the server's own module for the backend.
    hypercorn_serve: Any = importlib.import_module(f"hypercorn.{worker_class}").serve
    await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger)


async def _serve_sockets(
    app: ASGIApp,
    config: Any,
    worker_class: WorkerClass,
    connections: Connections,
    code: int,
    grace: float,
    sockets: Any,
) -> None:
    """Serve on the parent's ``sockets`` until SIGTERM (a worker process)."""
    from hypercorn.utils import wrap_app

    stop = anyio.Event()
    watcher = anyio.CancelScope()

    async def watch_signals(*, task_status: TaskStatus[None]) -> None:
        # Open until the server is done: the parent's SIGTERM and a process manager's
        # (systemd signals the whole group) count as one, and neither kills the process.
        with watcher, anyio.open_signal_receiver(signal.SIGTERM) as signals:
            task_status.started()
            async for _ in signals:
                stop.set()

    async def shutdown_trigger() -> None:
        await stop.wait()
        await connections.close_all(code=code, grace=grace)

    worker_serve: Any = importlib.import_module(f"hypercorn.{worker_class}.run").worker_serve
    framework: Any = app  # hypercorn's own ASGI types are narrower than ours
    async with anyio.create_task_group() as task_group:
        await task_group.start(watch_signals)
        try:
            wrapped = wrap_app(framework, config.wsgi_max_body_size, "asgi")
            await worker_serve(wrapped, config, sockets=sockets, shutdown_trigger=shutdown_trigger)
        finally:
            # Only the watcher's own scope: hypercorn's asyncio server leaves this
            # task's cancel count unbalanced, which the task group's scope would trip on.
            watcher.cancel()


_Run = tuple[str, Any, WorkerClass, int, float, str | None]


def _supervise(run: _Run, workers: int) -> None:
    """Start ``workers`` processes on shared sockets; stop them all on SIGINT/SIGTERM."""
    config = run[1]
    sockets = config.create_sockets()
    processes: list[BaseProcess] = []
    stopping = False

    def stop(signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.exitcode is None and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    # Workers inherit an ignored SIGINT (a terminal's Ctrl+C reaches the whole
    # process group): only this process turns it into their SIGTERM.
    previous = (signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, stop))
    try:
        context = multiprocessing.get_context("spawn")
        for _ in range(workers):
            if stopping:  # SIGTERM while starting: start no more
                break
            process = context.Process(target=_serve_worker, args=(run, sockets))
            process.start()
            processes.append(process)
        signal.signal(signal.SIGINT, stop)
        while live := [process.sentinel for process in processes if process.exitcode is None]:
            wait(live)
            ended = [process for process in processes if process.exitcode is not None]
            if ended and not stopping:
                first = ended[0]
                logger.error(
                    "worker process %s exited with status %s; stopping the others",
                    first.pid,
                    first.exitcode,
                )
                stop()
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
        for sock in (*sockets.secure_sockets, *sockets.insecure_sockets, *sockets.quic_sockets):
            sock.close()
    # A worker stopped while it was still starting up ends by the signal itself.
    accepted = (0, -signal.SIGTERM) if stopping else (0,)
    failed = [process.exitcode for process in processes if process.exitcode not in accepted]
    if failed:
        raise RuntimeError(f"worker processes failed with exit status {failed}")


def _serve_worker(run: _Run, sockets: Any) -> None:
    """The body of one worker process (started by :func:`_supervise`)."""
    target, config, worker_class, code, grace, log_level = run
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if log_level is not None:
        configure_logging(log_level)
    app = import_app(target)
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
        sock.listen(config.backlog)
    anyio.run(_serve, app, config, worker_class, code, grace, sockets, backend=worker_class)


def run_worker(
    router: Router, channels: Sequence[str] = (), *, worker_class: WorkerClass = "trio"
) -> None:
    """Serve ``router``'s ``@router.channel`` workers until SIGINT or SIGTERM.

    ``channels`` picks some of them (default: all). The router's startup hooks run
    first and its shutdown hooks last, as under a server. Once the workers run, one
    line at INFO on the ``achannels.worker`` logger says which channels, on which
    event loop and layer. On the signal, handlers in progress are cancelled;
    messages not yet taken stay in the layer.
    """
    anyio.run(_run_worker, router, list(channels) or None, worker_class, backend=worker_class)


async def _run_worker(router: Router, channels: list[str] | None, worker_class: str) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        failed = await router.run_startup_hooks()
        if failed is not None:
            raise RuntimeError(failed)
        try:
            async with own_layer(router.layer), anyio.create_task_group() as task_group:
                await task_group.start(router.serve_workers, channels)
                logging.getLogger("achannels.worker").info(
                    "Serving channel(s) %s on %s with %s (CTRL + C to quit)",
                    ", ".join(channels or router.channel_names),
                    worker_class,
                    type(router.layer).__name__,
                )
                async for _ in signals:
                    break
                task_group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await router.run_shutdown_hooks()
