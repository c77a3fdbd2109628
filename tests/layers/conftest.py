"""The throwaway-Redis fixtures for every layer test, and their failure reports."""

from __future__ import annotations

from tests.layers.redis_fixtures import (
    pytest_runtest_makereport,
    redis_cluster,
    redis_sentinel,
    redis_server,
    redis_shards,
)

__all__ = [
    "pytest_runtest_makereport",
    "redis_cluster",
    "redis_sentinel",
    "redis_server",
    "redis_shards",
]
