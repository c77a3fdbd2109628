"""The throwaway-Redis helpers themselves: servers, a cluster and a Sentinel group."""

from __future__ import annotations

import pytest

from tests.layers import redis_fixtures
from tests.layers.redis_servers import (
    CLUSTER_SLOTS,
    RedisCluster,
    RedisSentinelSetup,
    RedisServer,
    RedisSetupError,
    free_port,
    info,
)

redis_server = redis_fixtures.redis_server
redis_shards = redis_fixtures.redis_shards
redis_cluster = redis_fixtures.redis_cluster
redis_sentinel = redis_fixtures.redis_sentinel


def test_free_port_leaves_room_for_the_cluster_bus() -> None:
    port = free_port(cluster_bus=True)
    assert 0 < port <= 65535 - 10000


def test_kill_and_restart_lose_the_data() -> None:
    redis_fixtures.require_redis()
    with RedisServer() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}"
        server.cli("SET", "key", "value")
        server.kill()
        assert not server.is_running()
        assert not server.ping()
        port = server.port
        server.restart()
        assert server.port == port
        assert server.cli("GET", "key").strip() == ""
        server.cli("SET", "key", "value")
        server.restart()  # SIGTERM, then start again: still nothing kept
        assert server.cli("GET", "key").strip() == ""
        assert not list(server.directory.glob("*.rdb"))
        assert "Ready to accept connections" in server.describe()
    assert not server.is_running()
    assert not server.directory.exists()


def test_a_server_that_cannot_start_reports_its_log() -> None:
    redis_fixtures.require_redis()
    server = RedisServer(args=["--no-such-directive", "x"])
    with pytest.raises(RedisSetupError, match="no-such-directive"):
        server.start()
    server.close()


def test_server_fixtures_are_separate(
    redis_server: RedisServer, redis_shards: list[RedisServer]
) -> None:
    ports = {redis_server.port, *(shard.port for shard in redis_shards)}
    assert len(ports) == 3
    assert all(server.ping() for server in [redis_server, *redis_shards])


def test_missing_redis_skips_or_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_fixtures, "redis_available", lambda: False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        redis_fixtures.require_redis()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        redis_fixtures.require_redis()


def test_cluster_covers_every_slot(redis_cluster: RedisCluster) -> None:
    assert len(redis_cluster.nodes) == 3
    assert redis_cluster.url == redis_cluster.nodes[0].url
    for node in redis_cluster.nodes:
        state = info(node.cli("CLUSTER", "INFO"))
        assert state["cluster_state"] == "ok"
        assert state["cluster_slots_ok"] == str(CLUSTER_SLOTS)
    assert redis_cluster.nodes[0].cli("-c", "SET", "{user}:1", "x").strip() == "OK"


def test_sentinel_failover_promotes_the_replica(redis_sentinel: RedisSentinelSetup) -> None:
    assert redis_sentinel.master_name == "mymaster"
    assert len(redis_sentinel.sentinels) == 3
    old_primary, old_replica = redis_sentinel.primary, redis_sentinel.replica
    promoted = redis_sentinel.failover()
    assert promoted is old_replica is redis_sentinel.primary
    assert redis_sentinel.replica is old_primary
    for sentinel in redis_sentinel.sentinel_servers:
        assert redis_sentinel.master_port(sentinel) == old_replica.port
    assert promoted.cli("SET", "after", "failover").strip() == "OK"
