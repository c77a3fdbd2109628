"""The Redis channel layer against the real Redis on 127.0.0.1:6379, on asyncio and trio.

Each test uses its own key prefix and flushes it at the end. Without Redis these
tests fail (``ChannelLayerUnavailable``), they never skip.
"""

from __future__ import annotations

import gc
import logging
import re
import secrets
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from asgiref.sync import async_to_sync as asgiref_async_to_sync

from achannels.exceptions import ChannelFull, ChannelLayerUnavailable
from achannels.layers import create_channel_layer, open_channel_layer
from achannels.layers._redis_wire import Serializer, consistent_hash
from achannels.layers.redis import RedisChannelLayer, RedisLayerStatistics
from achannels.sync import async_to_sync
from tests.helpers import wait_until
from tests.layers.redis_fixtures import redis_server
from tests.layers.redis_servers import RedisServer

pytestmark = pytest.mark.anyio

__all__ = ["redis_server"]  # the fixture, used by name

URL = "redis://127.0.0.1:6379/1"
SHARDS = ["redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/3"]


def msg(n: int = 0) -> dict[str, Any]:
    return {"type": "test.message", "n": n}


@pytest.fixture
async def layer() -> AsyncIterator[RedisChannelLayer]:
    layer = RedisChannelLayer(hosts=[URL], prefix=f"t{secrets.token_hex(4)}")
    yield layer
    await layer.flush()


@pytest.fixture
async def sharded() -> AsyncIterator[RedisChannelLayer]:
    layer = RedisChannelLayer(hosts=SHARDS, prefix=f"t{secrets.token_hex(4)}")
    yield layer
    await layer.flush()


async def test_send_receive_in_order_without_an_owner(layer: RedisChannelLayer) -> None:
    for n in range(3):
        await layer.send("orders", msg(n))
    assert [(await layer.receive("orders"))["n"] for _ in range(3)] == [0, 1, 2]
    stats = layer.statistics()
    assert (stats.sent, stats.delivered, stats.owned) == (3, 3, False)


async def test_send_receive_in_order_with_an_owner(layer: RedisChannelLayer) -> None:
    async with layer:
        channel = await layer.new_channel()
        for n in range(50):
            await layer.send(channel, msg(n))
        assert [(await layer.receive(channel))["n"] for _ in range(50)] == list(range(50))
        assert layer.statistics().owned
        assert layer.statistics().receive_loops == 1
    stats = layer.statistics()
    assert (stats.owned, stats.receive_loops, stats.sent, stats.delivered) == (False, 0, 50, 50)


async def test_process_channel_names_follow_channels_redis(layer: RedisChannelLayer) -> None:
    name = await layer.new_channel()
    assert re.fullmatch(rf"specific\.{layer.client_prefix}![0-9a-f]{{32}}", name)
    assert (await layer.new_channel("http.response")).startswith("http.response.")


async def test_receive_on_another_process_channel_is_refused(layer: RedisChannelLayer) -> None:
    other = RedisChannelLayer(hosts=[URL], prefix=layer.prefix)
    with pytest.raises(ValueError, match="wrong prefix"):
        await layer.receive(await other.new_channel())


async def test_bad_names_and_messages(layer: RedisChannelLayer) -> None:
    with pytest.raises(TypeError):
        await layer.send("bad name", msg())
    with pytest.raises(TypeError):
        await layer.group_add("bad!group", "channel")
    with pytest.raises(TypeError):
        await layer.send("fine", {"no": "type"})
    with pytest.raises(ValueError, match="reserved"):
        await layer.send("fine", {"type": "x", "__asgi_channel__": "y"})
    with pytest.raises(TypeError):
        await layer.receive("x" * 100)


async def test_send_to_a_full_channel_raises(layer: RedisChannelLayer) -> None:
    small = RedisChannelLayer(hosts=[URL], prefix=layer.prefix, capacity=2,
                              channel_capacity={"big*": 4, re.compile(r"^re\."): 3})  # fmt: skip
    for channel, room in (("plain", 2), ("bigger", 4), ("re.x", 3)):
        for n in range(room):
            await small.send(channel, msg(n))
        with pytest.raises(ChannelFull):
            await small.send(channel, msg())
    assert small.statistics().sent == 9


async def test_groups_reach_every_member_and_only_members(layer: RedisChannelLayer) -> None:
    async with layer:
        a, b, c = [await layer.new_channel() for _ in range(3)]
        await layer.group_add("room", a)
        await layer.group_add("room", b)
        await layer.group_add("room", c)
        await layer.group_discard("room", c)
        await layer.group_discard("room", "never.joined")
        await layer.group_send("room", msg(7))
        assert (await layer.receive(a))["n"] == 7
        assert (await layer.receive(b))["n"] == 7
        with pytest.raises(anyio.WouldBlock):
            layer.receive_nowait(c)
        stats = layer.statistics()
        assert (stats.sent, stats.groups, stats.group_members) == (2, 1, 2)


async def test_group_send_to_nobody_is_fine(layer: RedisChannelLayer) -> None:
    await layer.group_send("empty", msg())
    assert layer.statistics().sent == 0


async def test_group_send_to_a_full_member_is_counted_and_logged(
    layer: RedisChannelLayer, caplog: pytest.LogCaptureFixture
) -> None:
    small = RedisChannelLayer(hosts=[URL], prefix=layer.prefix, capacity=1)
    await small.group_add("g", "worker.a")
    await small.group_add("g", "worker.b")
    await small.send("worker.a", msg(0))
    with caplog.at_level(logging.WARNING, logger="achannels.layers"):
        await small.group_send("g", msg(1))
    stats = small.statistics()
    assert (stats.sent, stats.dropped_full) == (2, 1)  # the first send, then b
    assert "full" in caplog.text
    assert (await small.receive("worker.a"))["n"] == 0


async def test_group_full_policy_raise(layer: RedisChannelLayer) -> None:
    small = RedisChannelLayer(
        hosts=[URL], prefix=layer.prefix, capacity=1, group_full_policy="raise"
    )
    await small.group_add("g", "worker.a")
    await small.group_add("g", "worker.b")
    await small.send("worker.a", msg(0))
    with pytest.raises(ChannelFull, match="1 member"):
        await small.group_send("g", msg(1))
    assert (await small.receive("worker.b"))["n"] == 1


async def test_group_full_policy_drop_oldest(layer: RedisChannelLayer) -> None:
    small = RedisChannelLayer(
        hosts=[URL], prefix=layer.prefix, capacity=1, group_full_policy="drop_oldest"
    )
    await small.group_add("g", "worker.a")
    await small.send("worker.a", msg(0))
    await small.group_send("g", msg(1))
    assert (await small.receive("worker.a"))["n"] == 1
    assert small.statistics().dropped_full == 1


async def test_invalid_configuration() -> None:
    with pytest.raises(ValueError, match="list of Redis hosts"):
        RedisChannelLayer(hosts="redis://localhost")
    with pytest.raises(ValueError, match="group_full_policy"):
        RedisChannelLayer(group_full_policy="lose")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="serializer_format"):
        RedisChannelLayer(serializer_format="pickle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="list of possible keys"):
        RedisChannelLayer(symmetric_encryption_keys="secret")
    with pytest.raises(ValueError, match="capacity"):
        RedisChannelLayer(capacity=0)


async def test_encrypted_and_json_round_trip(layer: RedisChannelLayer) -> None:
    for options in ({"symmetric_encryption_keys": ["k1"]}, {"serializer_format": "json"}):
        other = RedisChannelLayer(hosts=[URL], prefix=layer.prefix, **options)
        await other.send("enc", {"type": "x", "text": "héllo", "n": [1, 2]})
        assert await other.receive("enc") == {"type": "x", "text": "héllo", "n": [1, 2]}


async def test_a_message_that_cannot_be_decoded_is_counted(
    layer: RedisChannelLayer, caplog: pytest.LogCaptureFixture
) -> None:
    sender = RedisChannelLayer(hosts=[URL], prefix=layer.prefix, symmetric_encryption_keys=["a"])
    async with layer:
        channel = await layer.new_channel()
        await sender.send(channel, msg(1))
        await layer.send(channel, msg(2))
        with caplog.at_level(logging.WARNING, logger="achannels.layers.redis"):
            assert (await layer.receive(channel))["n"] == 2
        assert layer.statistics().undecodable == 1
    assert "cannot be decoded" in caplog.text


async def test_two_shards_deliver_every_direct_send(sharded: RedisChannelLayer) -> None:
    """channels_redis loses some of these (Channels #1492); all 20 arrive here."""
    async with sharded:
        channels = [await sharded.new_channel() for _ in range(20)]
        shards = {consistent_hash(c, 2) for c in channels}
        assert shards == {0, 1}  # full names land on both shards...
        for n, channel in enumerate(channels):
            await sharded.send(channel, msg(n))
        got = [(await sharded.receive(channel))["n"] for channel in channels]
    assert got == list(range(20))


async def test_normal_channels_are_spread_over_shards_and_all_received(
    sharded: RedisChannelLayer,
) -> None:
    for n in range(6):
        await sharded.send("jobs", msg(n))
    async with sharded:
        got = sorted([(await sharded.receive("jobs"))["n"] for _ in range(6)])
    assert got == list(range(6))


async def test_group_send_is_one_round_trip_per_shard(redis_server: RedisServer) -> None:
    """Members are read by one script and delivered by one per shard: 2 in all."""
    layer = RedisChannelLayer(hosts=[redis_server.url], prefix="rt")
    async with layer:
        members = [await layer.new_channel() for _ in range(300)]
        for member in members:
            await layer.group_add("big", member)
        await layer.group_send("big", msg())  # loads the scripts
        for member in members:
            await layer.receive(member)
        before = _script_calls(redis_server)
        await layer.group_send("big", msg())
        assert _script_calls(redis_server) - before == 2
        for member in members:
            assert (await layer.receive(member))["type"] == "test.message"


def _script_calls(server: RedisServer) -> int:
    stats = server.info("commandstats")
    return sum(
        int(dict(part.split("=") for part in stats[name].split(","))["calls"])
        for name in ("cmdstat_evalsha", "cmdstat_eval")
        if name in stats
    )


async def test_discard_channel_leaves_groups_and_counts_what_is_dropped(
    layer: RedisChannelLayer,
) -> None:
    async with layer:
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        await layer.send(channel, msg(1))
        await wait_until(lambda: layer.statistics().channels == 1)  # buffered, not taken
        assert await layer.discard_channel(channel) == 1
        await layer.send(channel, msg(2))
        await wait_until(lambda: layer.statistics().discarded >= 2)
        stats = layer.statistics()
        assert (stats.groups, stats.group_members, stats.channels) == (0, 0, 0)


async def test_receive_nowait_raises_wouldblock_when_nothing_is_buffered(
    layer: RedisChannelLayer,
) -> None:
    with pytest.raises(anyio.WouldBlock):
        layer.receive_nowait("nothing.here")


async def test_cancelled_receive_on_a_normal_channel_puts_messages_back(
    layer: RedisChannelLayer,
) -> None:
    other = RedisChannelLayer(hosts=[URL], prefix=layer.prefix)
    async with layer:
        with anyio.move_on_after(0.2):
            await layer.receive("jobs")
        await other.send("jobs", msg(1))
        with anyio.move_on_after(0.05):
            await anyio.sleep(1)
    # The owner is gone; whatever its loop took was returned to Redis.
    assert (await other.receive("jobs"))["n"] == 1


async def test_a_full_local_buffer_drops_and_counts(layer: RedisChannelLayer) -> None:
    small = RedisChannelLayer(hosts=[URL], prefix=layer.prefix, capacity=3)
    async with small:
        channel = await small.new_channel()
        sender = RedisChannelLayer(hosts=[URL], prefix=layer.prefix, capacity=100)
        for n in range(5):
            await sender.send(channel, msg(n))
        await wait_until(lambda: small.statistics().dropped_full >= 2)
        assert [(await small.receive(channel))["n"] for _ in range(3)] == [0, 1, 2]


async def test_local_messages_expire_and_are_counted(layer: RedisChannelLayer) -> None:
    quick = RedisChannelLayer(hosts=[URL], prefix=layer.prefix, expiry=1)
    async with quick:
        channel = await quick.new_channel()
        await quick.send(channel, msg(1))
        await wait_until(lambda: quick.statistics().channels != 0)
        await anyio.sleep(1.1)
        assert quick.statistics().expired == 1
        with pytest.raises(anyio.WouldBlock):
            quick.receive_nowait(channel)


async def test_messages_expired_in_redis_are_counted(layer: RedisChannelLayer) -> None:
    quick = RedisChannelLayer(hosts=[URL], prefix=layer.prefix, expiry=1)
    await quick.send("slow", msg(1))
    await anyio.sleep(0.6)
    await quick.send("slow", msg(2))  # keeps the key alive another second
    await anyio.sleep(0.6)
    await quick.send("slow", msg(3))  # finds msg(1) expired, and removes it
    assert quick.statistics().expired == 1
    assert [(await quick.receive("slow"))["n"] for _ in range(2)] == [2, 3]


async def test_nested_owners_and_another_thread(layer: RedisChannelLayer) -> None:
    async with layer:
        async with layer:
            assert layer.statistics().owned
        assert layer.statistics().owned

        def enter_elsewhere() -> None:
            async def enter() -> None:
                async with layer:
                    pass

            with pytest.raises(RuntimeError, match="owned by another thread"):
                anyio.run(enter)

        await anyio.to_thread.run_sync(enter_elsewhere)
    assert not layer.statistics().owned


async def test_async_to_sync_from_a_sync_thread_while_owned(layer: RedisChannelLayer) -> None:
    """A sync view (achannels.sync) and a Celery task (asgiref, no loop) both send."""
    async with layer:
        channel = await layer.new_channel()
        await layer.group_add("news", channel)

        def sync_view() -> None:
            async_to_sync(layer.group_send)("news", msg(1))

        def celery_task() -> None:
            assert threading.current_thread() is not threading.main_thread()
            asgiref_async_to_sync(layer.group_send)("news", msg(2))

        await anyio.to_thread.run_sync(sync_view)
        thread = threading.Thread(target=celery_task)
        thread.start()
        await anyio.to_thread.run_sync(thread.join)
        assert sorted([(await layer.receive(channel))["n"] for _ in range(2)]) == [1, 2]


async def test_owner_leaving_wakes_receivers_who_carry_on(layer: RedisChannelLayer) -> None:
    got: list[dict[str, Any]] = []
    async with anyio.create_task_group() as tg:
        async with layer:
            channel = await layer.new_channel()

            async def receiver() -> None:
                got.append(await layer.receive(channel))

            tg.start_soon(receiver)
            await anyio.wait_all_tasks_blocked()
        await layer.send(channel, msg(5))
    assert got == [msg(5)]


# coredis leaves a failed connection's memory streams for the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_unreachable_redis_raises_promptly() -> None:
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:1"])
    with anyio.fail_after(10):
        with pytest.raises(ChannelLayerUnavailable, match=r"127\.0\.0\.1:1"):
            await layer.send("x", msg())
        with pytest.raises(ChannelLayerUnavailable):
            await layer.receive("x")
    stats = layer.statistics()
    assert stats.unavailable == 2
    assert isinstance(stats, RedisLayerStatistics)
    gc.collect()  # here, where the warning is expected, not in a later test


async def test_configured_by_name_and_from_channels_redis_settings() -> None:
    for backend in ("redis", "channels_redis.core.RedisChannelLayer"):
        layer = create_channel_layer(backend, hosts=[("127.0.0.1", 6379)], prefix="cfg")
        assert isinstance(layer, RedisChannelLayer)
        assert layer.hosts == [{"host": "127.0.0.1", "port": 6379}]
    async with open_channel_layer("redis", hosts=[URL], prefix=f"o{secrets.token_hex(4)}") as lay:
        assert isinstance(lay, RedisChannelLayer)
        assert lay.statistics().owned
        await lay.flush()


def test_serializer_matches_channels_redis() -> None:
    from channels_redis.serializers import registry

    for keys in (None, ["k1", "k2"]):
        ours = Serializer("msgpack", symmetric_encryption_keys=keys, expiry=60)
        theirs = registry.get_serializer(
            "msgpack", symmetric_encryption_keys=keys, random_prefix_length=12, expiry=60
        )
        message = {"type": "x", "data": b"\x00\x01", "list": [1, "two"]}
        assert theirs.deserialize(ours.serialize(message)) == message
        assert ours.deserialize(theirs.serialize(message)) == message
