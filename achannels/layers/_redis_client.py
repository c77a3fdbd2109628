"""The one place that knows coredis: connect to a shard, and say what a failure means.

A shard is configured as channels_redis configures a host (see
:func:`achannels.layers._redis_wire.decode_hosts`); this module turns that into a
coredis client, entered as an async context manager by whoever owns it:

* ``{"address": "redis://..."}`` or ``{"host": ..., "port": ...}``: one server;
* ``{"sentinels": [(host, port), ...], "master_name": ...}``: the primary that the
  sentinels name, found again after a failover;
* ``{"address": ..., "cluster": True}`` or ``{"startup_nodes": [...]}``: a Redis
  Cluster (an achannels addition; channels_redis has none).

redis-py's option names that channels_redis users put in these dicts
(``socket_timeout``, ``socket_connect_timeout``) are translated to coredis's.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, TypeAlias
from urllib.parse import unquote, urlsplit

import anyio

from achannels.exceptions import InvalidChannelLayerError
from achannels.layers._redis_wire import HostConfig

__all__ = [
    "Client",
    "ConnectionFailure",
    "connection_failure",
    "describe_host",
    "is_cluster",
    "open_client",
]

#: A coredis client (``Redis`` or ``RedisCluster``) returning ``bytes``.
Client: TypeAlias = Any

#: How long a command may wait for its reply before the connection counts as lost.
#: Blocking pops use server-side timeouts well below this.
STREAM_TIMEOUT: Final = 10.0
CONNECT_TIMEOUT: Final = 5.0
#: Seconds between two questions to the sentinels about who the primary is.
FAILOVER_CHECK: Final = 1.0

logger = logging.getLogger("achannels.layers.redis")

_RENAMED: Final = {"socket_timeout": "stream_timeout", "socket_connect_timeout": "connect_timeout"}
_IGNORED: Final = frozenset({"retry_on_timeout", "health_check_interval", "socket_keepalive"})


def _failure_types() -> tuple[type[Exception], ...]:
    try:
        from coredis.exceptions import (
            BusyLoadingError,
            ClusterDownError,
            ClusterError,
            ConnectionError,
            ReadOnlyError,
            SentinelError,
            TryAgainError,
        )
    except ImportError:
        return (OSError, TimeoutError)
    return (
        ConnectionError,
        BusyLoadingError,
        ClusterDownError,
        ClusterError,
        TryAgainError,
        ReadOnlyError,
        SentinelError,
        OSError,
        TimeoutError,
    )


#: The errors that mean "this shard cannot be reached right now" (not a bad request).
ConnectionFailure: Final[tuple[type[Exception], ...]] = _failure_types()


def connection_failure(
    exc: BaseException, *, also: tuple[type[Exception], ...] = ()
) -> Exception | None:
    """Return the failure ``exc`` reports if it means "the shard is unreachable", else None.

    coredis raises some failures inside exception groups (from its pools' task
    groups); a group made only of such failures counts as one. ``also`` adds exception
    types that count as such failures too.
    """
    kinds = (*ConnectionFailure, *also)
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(kinds)
        if matched is not None and rest is None:
            leaf = _first_leaf(matched)
            assert isinstance(leaf, Exception)  # split kept only the kinds above
            return leaf
    return None


def _first_leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def is_cluster(host: HostConfig) -> bool:
    """Return whether ``host`` configures a Redis Cluster."""
    return bool(host.get("cluster")) or "startup_nodes" in host


def describe_host(host: HostConfig) -> str:
    """Return ``host`` as a short string for logs (no passwords)."""
    if "sentinels" in host:
        return f"sentinel:{host.get('master_name')}"
    if "address" in host:
        address = str(host["address"])
        return address.split("@")[-1] if "@" in address else address
    if "startup_nodes" in host:
        return f"cluster:{host['startup_nodes'][0]}"
    return f"{host.get('host', 'localhost')}:{host.get('port', 6379)}"


@asynccontextmanager
async def open_client(
    host: HostConfig, *, on_failover: Callable[[], None] | None = None
) -> AsyncIterator[Client]:
    """Connect to the shard ``host`` for the block, and disconnect after it.

    The client's pool belongs to the calling task: enter this in a task that
    outlives every user of the client. Connections are made on first use. Commands
    are never retried by the client: a failure reaches the layer, which counts it
    (a retried script could deliver a message twice).

    Args:
        host: the shard's configuration.
        on_failover: for a Sentinel shard, ask the sentinels every
            :data:`FAILOVER_CHECK` seconds who the primary is; when it changed, drop
            the pool's connections (a long-lived pool otherwise keeps talking to a
            demoted primary until its connections break) and call this.

    Raises:
        InvalidChannelLayerError: coredis is not installed, or ``host`` is invalid.
    """
    try:
        import coredis
    except ImportError as exc:
        raise InvalidChannelLayerError(
            "the Redis layers need coredis: pip install 'achannels[redis]'"
        ) from exc
    options = _options(host)
    options.setdefault("retry_policy", coredis.retry.NoRetryPolicy())
    if "sentinels" in options:
        async with _sentinel_client(coredis, options, on_failover) as client:
            yield client
        return
    if options.pop("cluster", False) or "startup_nodes" in options:
        async with _cluster_client(coredis, options) as client:
            yield client
        return
    if "address" in options:
        address = options.pop("address")
        client = coredis.Redis.from_url(address, **options)
    else:
        client = coredis.Redis(**options)
    async with client:
        yield client


@asynccontextmanager
async def _sentinel_client(
    coredis: Any, options: dict[str, Any], on_failover: Callable[[], None] | None
) -> AsyncIterator[Client]:
    location = coredis.connection.TCPLocation
    sentinels = [location(h, int(p)) for h, p in options.pop("sentinels")]
    master_name = options.pop("master_name")
    sentinel_kwargs = options.pop("sentinel_kwargs", None) or {}
    sentinel = coredis.Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs, **options)
    async with sentinel, sentinel.primary_for(master_name) as client:
        if on_failover is None:
            yield client
            return
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(_follow_primary, client, on_failover)
            try:
                yield client
            finally:
                task_group.cancel_scope.cancel()


async def _follow_primary(client: Client, on_failover: Callable[[], None]) -> None:
    pool = client.connection_pool
    while True:
        await anyio.sleep(FAILOVER_CHECK)
        before = pool.location
        try:
            # Asking for the primary drops the pool's connections if it moved.
            after = await pool.get_primary_location()
        except ConnectionFailure as exc:
            logger.warning("cannot ask the sentinels for the primary: %s", repr(exc))
            continue
        if before is not None and after != before:
            logger.warning("the sentinels moved the primary from %s to %s", before, after)
            on_failover()


def _options(host: HostConfig) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in host.items():
        if name in _IGNORED:
            continue
        options[_RENAMED.get(name, name)] = value
    options.setdefault("stream_timeout", STREAM_TIMEOUT)
    options.setdefault("connect_timeout", CONNECT_TIMEOUT)
    if "sentinels" in options and "master_name" not in options:
        raise InvalidChannelLayerError(f"a Sentinel host needs a master_name: {host!r}")
    return options


def _cluster_client(coredis: Any, options: dict[str, Any]) -> Any:
    location = coredis.connection.TCPLocation
    if "startup_nodes" in options:
        nodes = [location(h, int(p)) for h, p in options.pop("startup_nodes")]
    else:
        url = urlsplit(options.pop("address"))
        nodes = [location(url.hostname or "localhost", url.port or 6379)]
        if url.password:
            options.setdefault("password", unquote(url.password))
        if url.username:
            options.setdefault("username", unquote(url.username))
        options.setdefault("ssl", url.scheme == "rediss")
    return coredis.RedisCluster(startup_nodes=nodes, **options)
