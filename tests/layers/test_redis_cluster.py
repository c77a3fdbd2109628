"""The Redis layer on a Redis Cluster of three masters, with and without an owner.

The cluster is shared by the module (starting one takes a while); each test uses its
own key prefix. Keys are placed on purpose: a group's members are channels whose keys
hash to slots on every node (normal channels, and process channels of several
processes, some sharing one key), so a group send runs its script once per slot.
"""

from __future__ import annotations

import binascii
import gc
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import pytest

from achannels.exceptions import ChannelFull
from achannels.layers._redis_wire import channel_key
from achannels.layers.memory import GroupFullPolicy
from achannels.layers.redis import RedisChannelLayer
from tests.layers.redis_servers import CLUSTER_SLOTS, RedisCluster

pytestmark = [
    pytest.mark.anyio,
    # coredis 6.9's ClusterLayout never closes its error stream: each RedisCluster client
    # leaves a pair of memory streams to the garbage collector, which warns about them.
    pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning"),
]

#: Closing an owned layer waits for its in-flight blocking pops: keep them short.
BRPOP_TIMEOUT = 0.25
#: The bound on any one receive in these tests (a message is already waiting).
RECEIVE_WITHIN = 5.0


@pytest.fixture(autouse=True)
def collect_cluster_clients() -> Iterator[None]:
    """Finalize the test's cluster clients here, under this module's warning filter."""
    yield
    gc.collect()


@pytest.fixture(params=[pytest.param(True, id="owned"), pytest.param(False, id="unowned")])
def owned(request: pytest.FixtureRequest) -> bool:
    """Run a test with its layers owned (``async with``) and with no owner."""
    value: bool = request.param
    return value


def msg(n: int = 0, **fields: Any) -> dict[str, Any]:
    return {"type": "test.message", "n": n, **fields}


def key_slot(key: str) -> int:
    """Return the cluster slot of ``key`` (CRC16/XMODEM of its hash tag or whole)."""
    data = key.encode()
    start = data.find(b"{")
    if start != -1:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return binascii.crc_hqx(data, 0) % CLUSTER_SLOTS


def slot_owners(cluster: RedisCluster) -> dict[int, int]:
    """Return each slot's master port, from ``CLUSTER NODES``."""
    owners: dict[int, int] = {}
    for line in cluster.nodes[0].cli("CLUSTER", "NODES").splitlines():
        fields = line.split()
        if len(fields) < 9 or "master" not in fields[2]:
            continue
        port = int(fields[1].split("@")[0].rpartition(":")[2])
        for span in fields[8:]:
            first, _, last = span.partition("-")
            for slot in range(int(first), int(last or first) + 1):
                owners[slot] = port
    assert len(owners) == CLUSTER_SLOTS
    return owners


def keys_on_nodes(cluster: RedisCluster, prefix: str) -> dict[int, list[str]]:
    """Return the keys under ``prefix`` that each node holds (its own scan)."""
    return {
        node.port: node.cli("--scan", "--pattern", f"{prefix}*").split() for node in cluster.nodes
    }


def names_on_every_node(
    cluster: RedisCluster, prefix: str, *, per_node: int = 1, stem: str = "room"
) -> list[str]:
    """Return normal channel names whose keys land ``per_node`` on each master."""
    owners = slot_owners(cluster)
    chosen: dict[int, list[str]] = {node.port: [] for node in cluster.nodes}
    for i in range(10_000):
        name = f"{stem}.{i}"
        port = owners[key_slot(prefix + name)]
        if len(chosen[port]) < per_node:
            chosen[port].append(name)
        if all(len(names) == per_node for names in chosen.values()):
            return [name for names in chosen.values() for name in names]
    raise AssertionError("no names found for every node")


def cluster_layer(cluster: RedisCluster, **options: Any) -> RedisChannelLayer:
    """Return a layer on ``cluster`` under a prefix of its own."""
    options.setdefault("prefix", f"cl{secrets.token_hex(4)}.")
    options.setdefault("hosts", [{"address": cluster.url, "cluster": True}])
    layer = RedisChannelLayer(**options)
    layer.brpop_timeout = BRPOP_TIMEOUT
    return layer


@asynccontextmanager
async def maybe_owned(owned: bool, *layers: RedisChannelLayer) -> AsyncIterator[None]:
    """Own ``layers`` for the block when ``owned``; otherwise leave them unowned."""
    async with AsyncExitStack() as stack:
        if owned:
            for layer in layers:
                await stack.enter_async_context(layer)
        yield


async def receive(layer: RedisChannelLayer, channel: str) -> dict[str, Any]:
    with anyio.fail_after(RECEIVE_WITHIN):
        return await layer.receive(channel)


@pytest.fixture
def cluster(redis_cluster: RedisCluster) -> RedisCluster:
    """The module's cluster, checked healthy before each test."""
    assert redis_cluster.is_ok()
    return redis_cluster


# -- send and receive ----------------------------------------------------------------


@pytest.mark.parametrize(
    "form", ["address", "startup_nodes"], ids=["address-cluster", "startup-nodes"]
)
async def test_send_receive_on_every_node(cluster: RedisCluster, owned: bool, form: str) -> None:
    hosts: list[dict[str, Any]] = [
        {"address": cluster.url, "cluster": True}
        if form == "address"
        else {"startup_nodes": cluster.addresses}
    ]
    layer = cluster_layer(cluster, hosts=hosts)
    names = names_on_every_node(cluster, layer.prefix, per_node=1)
    async with maybe_owned(owned, layer):
        for n, name in enumerate(names):
            await layer.send(name, msg(n))
            await layer.send(name, msg(n + 100))
        if not owned:  # nothing popped yet: every node holds its channels
            assert all(len(keys) == 1 for keys in keys_on_nodes(cluster, layer.prefix).values())
        for n, name in enumerate(names):
            assert (await receive(layer, name))["n"] == n
            assert (await receive(layer, name))["n"] == n + 100
        stats = layer.statistics()
        assert stats.owned is owned
    stats = layer.statistics()
    assert (stats.sent, stats.delivered) == (2 * len(names), 2 * len(names))
    assert stats.errors == stats.unavailable == stats.dropped_full == 0
    assert stats.receive_loops == 0
    await layer.flush()


async def test_process_channels(cluster: RedisCluster, owned: bool) -> None:
    layer = cluster_layer(cluster)
    async with maybe_owned(owned, layer):
        channels = [await layer.new_channel() for _ in range(3)]
        assert len({c.partition("!")[0] for c in channels}) == 1  # one process key
        for n, channel in enumerate(channels):
            await layer.send(channel, msg(n))
        for n, channel in reversed(list(enumerate(channels))):
            assert (await receive(layer, channel))["n"] == n
        if owned:
            assert layer.statistics().receive_loops == 1  # one per (shard, process key)
    stats = layer.statistics()
    assert (stats.sent, stats.delivered) == (3, 3)
    assert stats.errors == 0
    assert stats.receive_loops == 0
    await layer.flush()


# -- groups --------------------------------------------------------------------------


async def test_group_send_reaches_members_on_every_slot(cluster: RedisCluster, owned: bool) -> None:
    prefix = f"cl{secrets.token_hex(4)}."
    first, second = cluster_layer(cluster, prefix=prefix), cluster_layer(cluster, prefix=prefix)
    normal = names_on_every_node(cluster, prefix, per_node=1)
    async with maybe_owned(owned, first, second):
        # Two processes: the first has two channels (one key), the second one.
        process = [await first.new_channel(), await first.new_channel()]
        process.append(await second.new_channel())
        for channel in [*normal, *process]:
            await first.group_add("everyone", channel)
        await second.group_add("everyone", "not.in.the.group.later")
        await second.group_discard("everyone", "not.in.the.group.later")
        member_keys = {channel_key(prefix, channel) for channel in [*normal, *process]}
        assert len(member_keys) == len(normal) + 2  # two process keys
        owners = slot_owners(cluster)
        assert {owners[key_slot(k)] for k in member_keys} == {n.port for n in cluster.nodes}

        await second.group_send("everyone", msg(1))
        await first.group_send("everyone", msg(2))
        for channel in normal:
            assert [(await receive(first, channel))["n"] for _ in range(2)] == [1, 2]
        for channel in process[:2]:
            assert [(await receive(first, channel))["n"] for _ in range(2)] == [1, 2]
        assert [(await receive(second, process[2]))["n"] for _ in range(2)] == [1, 2]
        with pytest.raises(anyio.WouldBlock):
            first.receive_nowait(process[0])
    members = len(normal) + len(process)
    assert first.statistics().sent + second.statistics().sent == 2 * members
    assert first.statistics().group_members == members
    assert first.statistics().dropped_full == second.statistics().dropped_full == 0
    await first.flush()


async def test_group_full_policies_on_a_cluster(cluster: RedisCluster, owned: bool) -> None:
    policies: tuple[GroupFullPolicy, ...] = ("skip", "drop_oldest", "raise")
    layers = {p: cluster_layer(cluster, capacity=2, group_full_policy=p) for p in policies}
    async with maybe_owned(owned, *layers.values()):
        for policy, layer in layers.items():
            full, *others = names_on_every_node(cluster, layer.prefix, per_node=1)
            for channel in [full, *others]:
                await layer.group_add("room", channel)
            await layer.send(full, msg(1))
            await layer.send(full, msg(2))
            if policy == "raise":
                with pytest.raises(ChannelFull, match=full):
                    await layer.group_send("room", msg(3))
            else:
                await layer.group_send("room", msg(3))
            for channel in others:  # the members with room got it under every policy
                assert (await receive(layer, channel))["n"] == 3
            kept = [(await receive(layer, full))["n"] for _ in range(2)]
            assert kept == ([2, 3] if policy == "drop_oldest" else [1, 2]), policy
            with pytest.raises(anyio.WouldBlock):  # nothing more here, nor in Redis
                layer.receive_nowait(full)
            assert cluster.nodes[0].cli("-c", "EXISTS", layer.prefix + full).strip() == "0"
    for policy, layer in layers.items():
        stats = layer.statistics()
        assert stats.dropped_full == 1, policy
        assert stats.sent == 2 + 2 + (1 if policy == "drop_oldest" else 0), policy
        await layer.flush()


# -- flush ---------------------------------------------------------------------------


async def test_flush_deletes_every_key_on_every_node(cluster: RedisCluster, owned: bool) -> None:
    layer = cluster_layer(cluster)
    bystander = cluster_layer(cluster)  # another prefix: flush must leave it alone
    names = names_on_every_node(cluster, layer.prefix, per_node=3)
    async with maybe_owned(owned, layer):
        for name in names:
            await layer.send(name, msg())
            await layer.group_add(f"group-{name}", name)
        await bystander.send("kept", msg(7))
        held = keys_on_nodes(cluster, layer.prefix)
        assert all(len(keys) >= 3 for keys in held.values()), held  # spread over the nodes
        await layer.flush()
        assert keys_on_nodes(cluster, layer.prefix) == {n.port: [] for n in cluster.nodes}
        assert layer.statistics().groups == 0
        await layer.send(names[0], msg(1))  # the layer carries on after a flush
        assert (await receive(layer, names[0]))["n"] == 1
    assert (await receive(bystander, "kept"))["n"] == 7
    await layer.flush()
    await bystander.flush()
    assert keys_on_nodes(cluster, layer.prefix) == {n.port: [] for n in cluster.nodes}
