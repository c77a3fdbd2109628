"""Run an ASGI app on hypercorn with a graceful, close-frame-first shutdown.

hypercorn, left to itself, waits its graceful timeout on SIGTERM and then cancels
connection tasks without a WebSocket close frame; lifespan shutdown arrives only
after the connections are gone. :func:`serve` runs hypercorn through its Python API
with a shutdown trigger that first closes every live achannels connection with the
shutdown close code, gives consumers a grace period, and only then lets hypercorn
stop. Clients see a clean close (1001 by default) on every deploy.
"""

from __future__ import annotations

import importlib
import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import anyio

from ._asgi import ASGIApp
from ._connection import Connections, server_connections
from .layers._open import own_layer

if TYPE_CHECKING:
    from ._router import Router

__all__ = ["import_app", "run_worker", "serve"]

WorkerClass = Literal["trio", "asyncio"]


def import_app(target: str) -> ASGIApp:
    """Import ``"package.module:attribute"`` and return the ASGI app it names."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected 'module:attribute', got {target!r}")
    app: ASGIApp = getattr(importlib.import_module(module_name), attribute)
    return app


def serve(
    app: ASGIApp,
    *,
    bind: Sequence[str] = ("127.0.0.1:8000",),
    worker_class: WorkerClass = "trio",
    shutdown_close_code: int = 1001,
    shutdown_grace: float = 5.0,
    hypercorn_options: dict[str, Any] | None = None,
) -> None:
    """Serve ``app`` with hypercorn until SIGINT or SIGTERM, then drain gracefully.

    On the signal every live achannels connection is closed with
    ``shutdown_close_code``; consumers get ``shutdown_grace`` seconds to finish before
    they are cancelled; then hypercorn shuts down (lifespan shutdown included).
    Blocks until the server has stopped.
    """
    from hypercorn.config import Config

    config = Config()
    config.bind = list(bind)
    config.graceful_timeout = shutdown_grace
    for name, value in (hypercorn_options or {}).items():
        setattr(config, name, value)
    anyio.run(
        _serve,
        app,
        config,
        worker_class,
        shutdown_close_code,
        shutdown_grace,
        backend=worker_class,
    )


async def _serve(
    app: ASGIApp, config: Any, worker_class: WorkerClass, code: int, grace: float
) -> None:
    connections = Connections()
    # Tasks hypercorn starts from here inherit this context: every achannels
    # connection they serve registers with ``connections`` as well as its router.
    server_connections.set(connections)

    async def shutdown_trigger() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        await connections.close_all(code=code, grace=grace)

    # hypercorn.trio or hypercorn.asyncio: the server's own module for the backend.
    hypercorn_serve: Any = importlib.import_module(f"hypercorn.{worker_class}").serve
    await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger)


def run_worker(
    router: Router, channels: Sequence[str] = (), *, worker_class: WorkerClass = "trio"
) -> None:
    """Serve ``router``'s ``@router.channel`` workers until SIGINT or SIGTERM.

    ``channels`` picks some of them (default: all). The router's startup hooks run
    first and its shutdown hooks last, as under a server. On the signal, handlers in
    progress are cancelled; messages not yet taken stay in the layer.
    """
    anyio.run(_run_worker, router, list(channels) or None, backend=worker_class)


async def _run_worker(router: Router, channels: list[str] | None) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        failed = await router._run_hooks(router._startup, "startup")
        if failed is not None:
            raise RuntimeError(failed)
        try:
            async with own_layer(router.layer), anyio.create_task_group() as task_group:
                await task_group.start(router.run_workers, channels)
                async for _ in signals:
                    break
                task_group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await router._run_hooks(router._shutdown, "shutdown", stop_on_error=False)
