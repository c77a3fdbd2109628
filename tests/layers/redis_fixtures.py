"""pytest fixtures that start throwaway Redis processes (see :mod:`tests.layers.redis_servers`).

Use them from a conftest with ``from tests.layers.redis_fixtures import *``, which
also brings in the report hook that appends the logs of the Redis processes a
failed test used to its report (or list this module in the root conftest's
``pytest_plugins``). Without ``redis-server`` on ``PATH`` the fixtures skip, except
when the ``CI`` environment variable is set: then they fail.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest

from tests.layers.redis_servers import (
    RedisCluster,
    RedisSentinelSetup,
    RedisServer,
    redis_available,
)

__all__ = [
    "pytest_runtest_makereport",
    "redis_cluster",
    "redis_sentinel",
    "redis_server",
    "redis_shards",
    "require_redis",
]

Described = RedisServer | RedisCluster | RedisSentinelSetup


def require_redis() -> None:
    """Skip the test without ``redis-server``/``redis-cli``; fail instead when ``CI`` is set."""
    if redis_available():
        return
    reason = "redis-server or redis-cli is not on PATH: apt-get install redis-server"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
    pytest.skip(reason)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """One fresh Redis server, stopped (and its directory removed) after the test."""
    require_redis()
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_shards() -> Iterator[list[RedisServer]]:
    """Two independent fresh Redis servers (shards), stopped after the test."""
    require_redis()
    with RedisServer(name="shard-0") as first, RedisServer(name="shard-1") as second:
        yield [first, second]


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisCluster]:
    """A three-master Redis cluster shared by the module's tests, stopped afterwards."""
    require_redis()
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture
def redis_sentinel() -> Iterator[RedisSentinelSetup]:
    """A primary, a replica and three Sentinels (``mymaster``), stopped after the test."""
    require_redis()
    with RedisSentinelSetup() as setup:
        yield setup


def _used(value: object) -> list[Described]:
    if isinstance(value, RedisServer | RedisCluster | RedisSentinelSetup):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, RedisServer)]
    return []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Append the log tails of the Redis processes a failed test used to its report."""
    report = yield
    funcargs: dict[str, object] = getattr(item, "funcargs", {})
    if report.failed:
        for name, value in funcargs.items():
            for used in _used(value):
                report.sections.append((f"{name}: {used!r} log", used.describe()))
    return report
