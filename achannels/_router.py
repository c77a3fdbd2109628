"""The decorator router: the native way to declare consumers and serve them."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from anyio.abc import TaskStatus

from ._asgi import Receive, Scope, Send
from ._channel_workers import ChannelWorker, WorkerHandler, serve_channel_workers
from ._connection import Connections, ConnectionSettings, RuntimeStatistics, run_connection
from ._gc import tune_gc
from ._http import Request
from ._paths import PathPattern, compile_path
from ._responses import PlainTextResponse, Response
from ._websocket import WebSocket
from .exceptions import InvalidChannelLayerError
from .layers import ChannelLayer
from .layers._names import require_valid_channel_name
from .layers._open import own_layer

__all__ = ["Router"]

logger = logging.getLogger("achannels")

WebSocketConsumer = Callable[..., Awaitable[None]]
HTTPView = Callable[..., Awaitable[Response]]
Hook = Callable[[], Awaitable[None]]
W = TypeVar("W", bound=WebSocketConsumer)
H = TypeVar("H", bound=HTTPView)
K = TypeVar("K", bound=Hook)
C = TypeVar("C", bound=WorkerHandler)


@dataclass(frozen=True, slots=True)
class _Route:
    pattern: PathPattern
    endpoint: Callable[..., Awaitable[Any]]
    methods: frozenset[str]


class Router:
    """Route WebSocket and HTTP connections to consumer functions; an ASGI 3 app.

    Args:
        layer: the channel layer connections and workers use (``None``: no layer;
            layer calls then raise ``InvalidChannelLayerError``).
        run_workers: run the ``@router.channel`` workers inside the server process,
            from lifespan startup to shutdown. Turn off when dedicated
            ``python -m achannels worker`` processes serve them.
        shutdown_close_code: the close code live WebSockets get when the app shuts down.
        shutdown_grace: seconds consumers get to finish after that close before
            they are cancelled.
        cleanup_timeout: seconds the shielded cleanup of one connection may take.
        disconnect_check: how long (seconds) a consumer may stay away from
            ``receive()`` before achannels reads on its behalf to notice a client
            that left; that is how soon a busy consumer is cancelled.
        receive_buffer: frames read on behalf of a busy consumer before reading
            pauses (backpressure to the client).
        max_message_size: the largest WebSocket frame accepted (bytes or characters);
            a larger one closes the socket with 1009.
        max_body_size: the largest HTTP request body :meth:`Request.body` reads; a
            larger one answers 413.
    """

    #: Mounted in a ``URLRouter``, match the rest of the path rather than all of it.
    _path_routing = True

    def __init__(
        self,
        *,
        layer: ChannelLayer | None = None,
        run_workers: bool = True,
        shutdown_close_code: int = 1001,
        shutdown_grace: float = 5.0,
        cleanup_timeout: float = 5.0,
        disconnect_check: float = 0.1,
        receive_buffer: int = 64,
        max_message_size: int = 1 << 20,
        max_body_size: int = 1 << 20,
    ) -> None:
        if disconnect_check <= 0 or shutdown_grace < 0 or cleanup_timeout <= 0:
            raise ValueError("timings must be positive")
        if receive_buffer < 1 or max_message_size < 1 or max_body_size < 0:
            raise ValueError("receive_buffer and max_message_size must be at least 1")
        self.layer = layer
        self.run_workers_in_process = run_workers
        self.shutdown_close_code = shutdown_close_code
        self.shutdown_grace = shutdown_grace
        self.max_message_size = max_message_size
        self.max_body_size = max_body_size
        self._settings = ConnectionSettings(
            watch_after=disconnect_check,
            max_buffered=receive_buffer,
            cleanup_timeout=cleanup_timeout,
        )
        self._connections = Connections()
        self._websocket_routes: list[_Route] = []
        self._http_routes: list[_Route] = []
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []
        self._workers: dict[str, ChannelWorker] = {}

    # -- declaring --------------------------------------------------------------------

    def websocket(self, path: str) -> Callable[[W], W]:
        """Register ``async def consumer(ws, **path_params)`` for WebSockets on ``path``."""
        pattern = compile_path(path)

        def register(consumer: W) -> W:
            self._websocket_routes.append(_Route(pattern, consumer, frozenset()))
            return consumer

        return register

    def http(self, path: str, *, methods: Iterable[str] = ("GET",)) -> Callable[[H], H]:
        """Register ``async def view(request, **path_params) -> Response`` on ``path``.

        ``HEAD`` is served wherever ``GET`` is, without the body.
        """
        pattern = compile_path(path)
        allowed = frozenset(method.upper() for method in methods)
        if "GET" in allowed:
            allowed |= {"HEAD"}

        def register(view: H) -> H:
            self._http_routes.append(_Route(pattern, view, allowed))
            return view

        return register

    def channel(self, name: str, *, concurrency: int = 1) -> Callable[[C], C]:
        """Register ``async def worker(message)`` for every message on layer channel ``name``.

        Up to ``concurrency`` messages are handled at once (default: one at a time,
        in order). A worker that raises is logged and counted, and the next message
        is handled: the worker keeps running.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        require_valid_channel_name(name)
        if name in self._workers:
            raise ValueError(f"a worker for channel {name!r} is already registered")

        def register(handler: C) -> C:
            self._workers[name] = ChannelWorker(name, handler, concurrency)
            return handler

        return register

    @property
    def channel_names(self) -> list[str]:
        """The layer channels that have a ``@router.channel`` worker."""
        return list(self._workers)

    async def serve_workers(
        self,
        channels: Iterable[str] | None = None,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve the ``@router.channel`` workers (all, or those of ``channels``) until cancelled.

        With ``task_status``: reports started once every worker's task has started.

        Raises:
            InvalidChannelLayerError: the router has no layer.
            ValueError: a channel in ``channels`` has no worker.
        """
        if self.layer is None:
            raise InvalidChannelLayerError("workers need a channel layer: pass layer= to Router()")
        names = self.channel_names if channels is None else list(channels)
        unknown = [name for name in names if name not in self._workers]
        if unknown:
            raise ValueError(f"no worker for channel(s) {unknown}; known: {self.channel_names}")
        workers = [self._workers[name] for name in names]
        await serve_channel_workers(self.layer, workers, self._connections, task_status=task_status)

    async def run_workers(
        self,
        channels: Iterable[str] | None = None,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Deprecated name of :meth:`serve_workers` (it read as the ``run_workers=`` flag)."""
        warnings.warn(
            "Router.run_workers() is now Router.serve_workers()", DeprecationWarning, stacklevel=2
        )
        await self.serve_workers(channels, task_status=task_status)

    def on_startup(self, hook: K) -> K:
        """Run ``await hook()`` at lifespan startup, in registration order."""
        self._startup.append(hook)
        return hook

    def on_shutdown(self, hook: K) -> K:
        """Run ``await hook()`` at lifespan shutdown, after live connections closed."""
        self._shutdown.append(hook)
        return hook

    # -- running ----------------------------------------------------------------------

    def statistics(self) -> RuntimeStatistics:
        """Return live and total counts of this router's connections and tasks."""
        return self._connections.statistics()

    async def aclose_connections(
        self, *, code: int | None = None, grace: float | None = None
    ) -> None:
        """Close every live connection and wait until they have ended.

        WebSockets get a close frame with ``code`` (default :attr:`shutdown_close_code`);
        consumers get ``grace`` seconds (default :attr:`shutdown_grace`) before they
        are cancelled. Streaming HTTP responses end at once.
        """
        await self._connections.close_all(
            code=self.shutdown_close_code if code is None else code,
            grace=self.shutdown_grace if grace is None else grace,
            cleanup_timeout=self._settings.cleanup_timeout,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        kind = scope.get("type")
        if kind == "websocket":
            # Run from here, not from a method of its own: an idle WebSocket keeps every
            # frame on its path alive for as long as it lives (~450 bytes each).
            ws, route = await self._open_websocket(scope, receive, send)
            if route is not None:
                await run_connection(ws, route.endpoint(ws, **ws.path_params))
        elif kind == "http":
            await self._serve_http(scope, receive, send)
        elif kind == "lifespan":
            await self._serve_lifespan(receive, send)
        else:
            raise ValueError(f"achannels.Router cannot serve ASGI scope type {kind!r}")

    @staticmethod
    def _route_path(scope: Scope) -> str:
        remaining: str | None = scope.get("path_remaining")
        if remaining is not None:
            return remaining if remaining.startswith("/") else "/" + remaining
        path = scope.get("path")
        if not isinstance(path, str):
            raise ValueError(f"malformed ASGI scope: 'path' must be a str, got {path!r}")
        root: str = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        return path or "/"

    async def _open_websocket(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[WebSocket, _Route | None]:
        """Route a WebSocket and read its connect message; deny it (404) if no route matched.

        Returns the connection and its route, ``None`` once denied.
        """
        path = self._route_path(scope)
        for route in self._websocket_routes:
            params = route.pattern.match(path)
            if params is not None:
                break
        else:
            route, params = None, {}
        ws = WebSocket(
            scope,
            receive,
            send,
            connections=self._connections,
            settings=self._settings,
            layer=self.layer,
            path_params=params,
            max_message_size=self.max_message_size,
        )
        first = await receive()
        if first["type"] != "websocket.connect":
            raise ValueError(f"expected websocket.connect, got {first['type']!r}")
        if route is None:
            logger.info("no WebSocket route for %r; denied with 404", path)
            await ws.deny(404, body=b"Not Found")
        return ws, route

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = self._route_path(scope)
        matched = [
            (route, params)
            for route in self._http_routes
            if (params := route.pattern.match(path)) is not None
        ]
        method = scope.get("method", "GET")
        chosen = next(((r, p) for r, p in matched if method in r.methods), None)
        if chosen is None:
            if matched:
                allow = ", ".join(sorted(set().union(*(r.methods for r, _ in matched))))
                response = PlainTextResponse("Method Not Allowed", 405, headers={"allow": allow})
            else:
                response = PlainTextResponse("Not Found", 404)
            await response(send)
            return
        route, params = chosen
        request = Request(
            scope,
            receive,
            send,
            connections=self._connections,
            settings=self._settings,
            layer=self.layer,
            path_params=params,
        )
        request.max_body_size = self.max_body_size
        view = route.endpoint

        async def respond() -> None:
            response = await view(request, **params)
            if not isinstance(response, Response):
                raise TypeError(
                    f"HTTP view {view.__qualname__} returned {response!r}, not a Response"
                )
            if method == "HEAD":
                start = {"status": response.status, "headers": response.headers}
                await request.send_message({"type": "http.response.start", **start})
                await request.send_message({"type": "http.response.body", "body": b""})
            else:
                await response(request.send_message)

        await run_connection(request, respond())

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            raise ValueError(f"expected lifespan.startup, got {message['type']!r}")
        tune_gc()
        failed = await self.run_startup_hooks()
        if failed is not None:
            await send({"type": "lifespan.startup.failed", "message": failed})
            return
        if self._workers and self.run_workers_in_process and self.layer is None:
            failed = f"workers for {self.channel_names} need a layer: pass layer= to Router()"
            logger.error("%s", failed)
            await send({"type": "lifespan.startup.failed", "message": failed})
            return
        # The app's lifespan owns the layer's background work (Redis pools, receive loops).
        async with own_layer(self.layer), anyio.create_task_group() as task_group:
            if self._workers and self.run_workers_in_process:
                await task_group.start(self.serve_workers)
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            if message["type"] != "lifespan.shutdown":
                raise ValueError(f"expected lifespan.shutdown, got {message['type']!r}")
            await self.aclose_connections()
            task_group.cancel_scope.cancel()
        failed = await self.run_shutdown_hooks()
        if failed is not None:
            await send({"type": "lifespan.shutdown.failed", "message": failed})
        else:
            await send({"type": "lifespan.shutdown.complete"})

    async def run_startup_hooks(self) -> str | None:
        """Run the ``on_startup`` hooks in order, as lifespan startup does.

        Stops at the first that raises (logged); returns its description, else ``None``.
        For hosts that run the router without a lifespan (``python -m achannels worker``).
        """
        return await self._run_hooks(self._startup, "startup")

    async def run_shutdown_hooks(self) -> str | None:
        """Run every ``on_shutdown`` hook, as lifespan shutdown does; return the first failure."""
        return await self._run_hooks(self._shutdown, "shutdown", stop_on_error=False)

    @staticmethod
    async def _run_hooks(
        hooks: list[Hook], phase: str, *, stop_on_error: bool = True
    ) -> str | None:
        """Run ``hooks`` in order; return the first failure, described, or ``None``.

        Startup stops at the first failure; shutdown runs every hook regardless.
        """
        first: str | None = None
        for hook in hooks:
            try:
                await hook()
            except Exception as exc:
                logger.exception("%s hook %r failed", phase, hook)
                name = getattr(hook, "__qualname__", hook)
                first = first or f"{phase} hook {name!r} failed: {exc!r}"
                if stop_on_error:
                    break
        return first
