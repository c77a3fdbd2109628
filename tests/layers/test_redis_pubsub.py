"""The Redis pub/sub channel layer against the real Redis on 127.0.0.1:6379.

Every test runs on asyncio and trio, uses its own name prefix and flushes at the end.
channels_redis's half of the interoperability tests runs on an asyncio loop in a
thread of its own. Without Redis these tests fail (``ChannelLayerUnavailable``),
they never skip.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import re
import secrets
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import coredis
import pytest
from channels_redis.pubsub import RedisPubSubChannelLayer as ChannelsRedisPubSubLayer

from achannels.exceptions import ChannelLayerUnavailable
from achannels.layers import ChannelLayer
from achannels.layers._redis_pubsub import RedisPubSubChannelLayer
from achannels.layers.redis import RedisLayerStatistics
from tests.helpers import wait_until

pytestmark = pytest.mark.anyio

T = TypeVar("T")

URL = "redis://127.0.0.1:6379/5"
UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def msg(n: int = 0) -> dict[str, Any]:
    return {"type": "test.message", "n": n}


@pytest.fixture
def prefix() -> str:
    return f"t{secrets.token_hex(4)}"


@pytest.fixture
async def layer(prefix: str) -> AsyncIterator[RedisPubSubChannelLayer]:
    layer = RedisPubSubChannelLayer(hosts=[URL], prefix=prefix)
    yield layer
    await layer.flush()


@asynccontextmanager
async def admin() -> AsyncIterator[Any]:
    """A plain coredis client, to look at and act on Redis beside the layer."""
    async with coredis.Redis.from_url(URL) as client:
        yield client


async def subscribers(name: str) -> int:
    async with admin() as client:
        counts = await client.pubsub_numsub(name)
    return int(counts[name.encode()])


async def wait_for_subscribers(name: str, count: int = 1) -> None:
    """Wait until ``count`` connections subscribe to ``name`` (a receive in another task)."""
    with anyio.fail_after(5):
        while await subscribers(name) < count:  # noqa: ASYNC110 - Redis offers no event
            await anyio.sleep(0.005)


async def receive(layer: ChannelLayer, channel: str) -> dict[str, Any]:
    with anyio.fail_after(5):
        return await layer.receive(channel)


async def next_buffered(layer: RedisPubSubChannelLayer, channel: str) -> dict[str, Any]:
    """Wait (polling) until a message is buffered for ``channel``, and take it."""
    with anyio.fail_after(5):
        while True:
            try:
                return layer.receive_nowait(channel)
            except anyio.WouldBlock:
                await anyio.sleep(0.005)


# -- configuration and names ---------------------------------------------------------


def test_configuration_follows_channels_redis() -> None:
    layer = RedisPubSubChannelLayer(
        hosts=[("127.0.0.1", 6379)], expiry=30, capacity=5, channel_capacity={"big*": 50}
    )
    assert layer.prefix == "asgi"
    assert layer.hosts == [{"host": "127.0.0.1", "port": 6379}]
    assert (layer.get_capacity("big.one"), layer.get_capacity("small")) == (50, 5)
    assert layer.extensions == ("groups", "flush")
    assert isinstance(layer, ChannelLayer)
    assert repr(layer) == "RedisPubSubChannelLayer(hosts=[127.0.0.1:6379], prefix='asgi')"
    assert layer.statistics() == RedisLayerStatistics()


def test_raise_policy_and_bad_hosts_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot learn"):
        RedisPubSubChannelLayer(group_full_policy="raise")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="list of Redis hosts"):
        RedisPubSubChannelLayer(hosts=URL)
    with pytest.raises(ValueError, match="serializer_format"):
        RedisPubSubChannelLayer(serializer_format="pickle")  # type: ignore[arg-type]


async def test_new_channel_names_follow_channels_redis(
    layer: RedisPubSubChannelLayer, prefix: str
) -> None:
    name = await layer.new_channel()
    assert re.fullmatch(rf"{prefix}specific\.[0-9a-f]{{32}}", name)
    assert (await layer.new_channel("http.response.")).startswith(f"{prefix}http.response.")
    with pytest.raises(TypeError):
        await layer.new_channel("bad prefix ")


# -- sending and receiving -----------------------------------------------------------


async def test_send_receive_with_an_owner(layer: RedisPubSubChannelLayer) -> None:
    async with layer:
        channel = await layer.new_channel()
        assert await subscribers(channel) == 1  # subscribed before new_channel returned
        for n in range(20):
            await layer.send(channel, msg(n))
        assert [(await receive(layer, channel))["n"] for _ in range(20)] == list(range(20))
        async with layer:  # nests
            pass
        stats = layer.statistics()
        assert (stats.owned, stats.receive_loops, stats.channels) == (True, 1, 1)
    stats = layer.statistics()
    assert (stats.owned, stats.receive_loops, stats.sent, stats.delivered) == (False, 0, 20, 20)
    assert await subscribers(channel) == 0


async def test_an_owner_subscribes_a_channel_on_first_receive(
    layer: RedisPubSubChannelLayer, prefix: str
) -> None:
    async with layer, anyio.create_task_group() as tg:
        got: list[dict[str, Any]] = []

        async def receiver() -> None:
            got.append(await receive(layer, f"{prefix}worker"))

        tg.start_soon(receiver)
        await wait_for_subscribers(f"{prefix}worker")
        await layer.send(f"{prefix}worker", msg(1))
    assert got == [msg(1)]


async def test_receive_without_an_owner_subscribes_for_the_call(
    layer: RedisPubSubChannelLayer,
) -> None:
    channel = await layer.new_channel()
    await layer.send(channel, msg(0))  # nobody subscribed: lost (at most once)
    assert await subscribers(channel) == 0
    with pytest.raises(anyio.WouldBlock):
        layer.receive_nowait(channel)
    async with anyio.create_task_group() as tg:
        got: list[dict[str, Any]] = []

        async def receiver() -> None:
            got.append(await receive(layer, channel))

        tg.start_soon(receiver)
        await wait_for_subscribers(channel)
        await layer.send(channel, msg(1))
    assert got == [msg(1)]
    assert await subscribers(channel) == 0  # the call's subscription ended with it
    stats = layer.statistics()
    assert (stats.owned, stats.sent, stats.delivered, stats.unavailable) == (False, 2, 1, 0)


async def test_receivers_without_an_owner_share_one_subscription(
    layer: RedisPubSubChannelLayer,
) -> None:
    channel = await layer.new_channel()
    got: list[int] = []
    async with anyio.create_task_group() as tg:

        async def receiver() -> None:
            got.append((await receive(layer, channel))["n"])

        tg.start_soon(receiver)
        tg.start_soon(receiver)
        await wait_for_subscribers(channel)
        await anyio.wait_all_tasks_blocked()
        assert await subscribers(channel) == 1
        await layer.send(channel, msg(1))
        await wait_until(lambda: len(got) == 1)
        await wait_for_subscribers(channel)  # the other receiver took the subscription over
        await layer.send(channel, msg(2))
    assert got == [1, 2]


async def test_receive_nowait(layer: RedisPubSubChannelLayer) -> None:
    async with layer:
        channel = await layer.new_channel()
        with pytest.raises(anyio.WouldBlock):
            layer.receive_nowait(channel)
        await layer.send(channel, msg(7))
        assert await next_buffered(layer, channel) == msg(7)
        with pytest.raises(anyio.WouldBlock):
            layer.receive_nowait(channel)
    with pytest.raises(TypeError):
        layer.receive_nowait("not valid!")


async def test_cancelled_receive_loses_nothing(layer: RedisPubSubChannelLayer) -> None:
    async with layer:
        channel = await layer.new_channel()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await layer.receive(channel)
        async with anyio.create_task_group() as tg:
            tg.start_soon(layer.receive, channel)
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
        await layer.send(channel, msg(1))
        await layer.send(channel, msg(2))
        assert await receive(layer, channel) == msg(1)
        with anyio.CancelScope() as scope:  # cancelled at its first checkpoint: takes nothing
            scope.cancel()
            await layer.receive(channel)
        assert await receive(layer, channel) == msg(2)


async def test_buffered_messages_expire(prefix: str) -> None:
    layer = RedisPubSubChannelLayer(hosts=[URL], prefix=prefix, expiry=0.05)
    async with layer:
        channel, marker = await layer.new_channel(), await layer.new_channel()
        await layer.send(channel, msg(1))
        await layer.send(marker, msg(2))  # same connection, so it arrives after the first
        await receive(layer, marker)
        await anyio.sleep(0.06)
        with pytest.raises(anyio.WouldBlock):
            layer.receive_nowait(channel)
    assert layer.statistics().expired == 1


# -- groups ------------------------------------------------------------------------


async def test_groups_with_an_owner(layer: RedisPubSubChannelLayer, prefix: str) -> None:
    async with layer:
        members = [await layer.new_channel() for _ in range(3)]
        for channel in members:
            await layer.group_add("room", channel)
        assert await subscribers(f"{prefix}__group__room") == 1  # one per process
        await layer.group_send("room", msg(1))
        assert [await receive(layer, channel) for channel in members] == [msg(1)] * 3
        for channel in members[:2]:
            await layer.group_discard("room", channel)
        await layer.group_send("room", msg(2))
        assert await receive(layer, members[2]) == msg(2)
        for channel in members[:2]:  # the message reached the process: it would be here
            with pytest.raises(anyio.WouldBlock):
                layer.receive_nowait(channel)
        stats = layer.statistics()
        assert (stats.groups, stats.group_members, stats.sent) == (1, 1, 2)
        await layer.group_discard("room", members[2])
        assert await subscribers(f"{prefix}__group__room") == 0


async def test_group_add_needs_a_channel_of_this_process(layer: RedisPubSubChannelLayer) -> None:
    with pytest.raises(RuntimeError, match="exist in-process"):
        await layer.group_add("room", "elsewhere")
    async with layer:
        with pytest.raises(RuntimeError, match="exist in-process"):
            await layer.group_add("room", "elsewhere")
    assert layer.statistics().groups == 0


async def test_groups_without_an_owner(layer: RedisPubSubChannelLayer, prefix: str) -> None:
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    assert await subscribers(f"{prefix}__group__room") == 0  # nobody holds it between calls
    async with anyio.create_task_group() as tg:
        got: list[dict[str, Any]] = []

        async def receiver() -> None:
            got.append(await receive(layer, channel))

        tg.start_soon(receiver)
        await wait_for_subscribers(f"{prefix}__group__room")
        await layer.group_send("room", msg(3))
    assert got == [msg(3)]


async def test_discard_channel_and_flush_unsubscribe(
    layer: RedisPubSubChannelLayer, prefix: str
) -> None:
    async with layer:
        channel, other = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("room", channel)
        await layer.send(channel, msg(1))
        await layer.send(channel, msg(2))
        await layer.send(other, msg(3))  # same connection: arrives after the two
        await receive(layer, other)
        assert await layer.discard_channel(channel) == 2
        assert await subscribers(channel) == 0
        assert await subscribers(f"{prefix}__group__room") == 0
        stats = layer.statistics()
        assert (stats.discarded, stats.channels, stats.groups) == (2, 1, 0)
        await layer.flush()
        assert await subscribers(other) == 0
        assert layer.statistics().channels == 0


# -- bounded buffers -----------------------------------------------------------------


@pytest.mark.parametrize(("policy", "kept"), [("skip", [0, 1]), ("drop_oldest", [3, 4])])
async def test_a_full_buffer_drops_by_policy_counted_and_logged(
    prefix: str, policy: Any, kept: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    layer = RedisPubSubChannelLayer(
        hosts=[URL], prefix=prefix, capacity=2, group_full_policy=policy
    )
    caplog.set_level(logging.WARNING, logger="achannels.layers")
    async with layer:
        channel = await layer.new_channel()
        for n in range(5):
            await layer.send(channel, msg(n))
        await wait_until(lambda: layer.statistics().dropped_full == 3)
        assert [layer.receive_nowait(channel)["n"] for _ in range(2)] == kept
        with pytest.raises(anyio.WouldBlock):
            layer.receive_nowait(channel)
    assert "full" in caplog.text
    assert channel in caplog.text


async def test_a_full_group_member_does_not_hold_back_the_others(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    layer = RedisPubSubChannelLayer(
        hosts=[URL], prefix=prefix, channel_capacity={f"{prefix}slow.*": 1}
    )
    caplog.set_level(logging.WARNING, logger="achannels.layers")
    async with layer:
        slow, fast = await layer.new_channel("slow."), await layer.new_channel("fast.")
        for channel in (slow, fast):
            await layer.group_add("room", channel)
        for n in range(3):
            await layer.group_send("room", msg(n))
        assert [(await receive(layer, fast))["n"] for _ in range(3)] == [0, 1, 2]
        assert layer.receive_nowait(slow) == msg(0)
        assert layer.statistics().dropped_full == 2
    assert "group_send to 'room'" in caplog.text


# -- formats -------------------------------------------------------------------------


async def test_encrypted_messages(prefix: str) -> None:
    sender = RedisPubSubChannelLayer(hosts=[URL], prefix=prefix, symmetric_encryption_keys=["k1"])
    rotated = RedisPubSubChannelLayer(
        hosts=[URL], prefix=prefix, symmetric_encryption_keys=["k2", "k1"]
    )
    stranger = RedisPubSubChannelLayer(hosts=[URL], prefix=prefix, symmetric_encryption_keys=["x"])
    async with rotated, stranger:
        ours, theirs = await rotated.new_channel(), await stranger.new_channel()
        await sender.send(ours, msg(1))
        await sender.send(theirs, msg(2))
        assert await receive(rotated, ours) == msg(1)  # any key decrypts
        await wait_until(lambda: stranger.statistics().undecodable == 1)
        with pytest.raises(anyio.WouldBlock):
            stranger.receive_nowait(theirs)
        async with admin() as client, client.pubsub(channels=[ours]) as raw:
            await wait_for_subscribers(ours, 2)
            await sender.send(ours, msg(3))
            data = await next_raw(raw)
        assert data.startswith(b"gAAAA")  # a Fernet token, not msgpack


async def next_raw(pubsub: Any) -> bytes:
    with anyio.fail_after(5):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True)
            if message is not None:
                data: bytes = message["data"]
                return data


async def test_json_format_on_the_wire(prefix: str) -> None:
    layer = RedisPubSubChannelLayer(hosts=[URL], prefix=prefix, serializer_format="json")
    async with layer, admin() as client:
        channel = await layer.new_channel()
        await client.publish(channel, json.dumps(msg(1)).encode())
        assert await receive(layer, channel) == msg(1)
        async with client.pubsub(channels=["raw." + prefix]) as raw:
            await layer.send("raw." + prefix, msg(2))
            assert json.loads(await next_raw(raw)) == msg(2)
        await client.publish(channel, b"\x93not json")
        await wait_until(lambda: layer.statistics().undecodable == 1)


# -- ownership, failures and reconnection --------------------------------------------


async def test_no_task_is_left_after_the_block(layer: RedisPubSubChannelLayer) -> None:
    before = {task.id for task in anyio.get_running_tasks()}
    async with layer:
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        await layer.group_send("room", msg(1))
        await receive(layer, channel)
        assert len(anyio.get_running_tasks()) > len(before)
    assert {task.id for task in anyio.get_running_tasks()} == before
    await layer.send(channel, msg(2))  # per-call connection
    with anyio.move_on_after(0.05):
        await layer.receive(channel)  # per-call subscription, cancelled
    assert {task.id for task in anyio.get_running_tasks()} == before


@pytest.fixture
def collect_garbage() -> Iterator[None]:
    """Collect garbage after the test, while its warning filters still apply."""
    yield
    gc.collect()


# coredis leaves a failed connection's memory streams for the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.usefixtures("collect_garbage")
async def test_unreachable_redis_raises_and_never_hangs(prefix: str) -> None:
    layer = RedisPubSubChannelLayer(hosts=[UNREACHABLE], prefix=prefix)
    layer.connect_wait = 0.2
    with anyio.fail_after(5):
        with pytest.raises(ChannelLayerUnavailable):
            await layer.send("somewhere", msg())
        with pytest.raises(ChannelLayerUnavailable):
            await layer.group_send("room", msg())
        channel = await layer.new_channel()  # no owner: nothing to reach yet
        with pytest.raises(ChannelLayerUnavailable):
            await layer.receive(channel)
        assert layer.statistics().unavailable == 3
        async with layer:
            with pytest.raises(ChannelLayerUnavailable, match="unavailable"):
                await layer.new_channel()
            await wait_until(lambda: layer.statistics().errors >= 5)
            assert layer.statistics().receive_loops == 1
        stats = layer.statistics()
    assert (stats.unavailable, stats.channels, stats.receive_loops) == (4, 1, 0)


async def test_reconnects_and_resubscribes_after_client_kill(prefix: str) -> None:
    name = f"achannels-test-{prefix}"
    layer = RedisPubSubChannelLayer(hosts=[{"address": URL, "client_name": name}], prefix=prefix)
    async with layer:
        channel = await layer.new_channel()
        await layer.group_add("room", channel)
        await kill_pubsub_connections(name)
        await wait_until(lambda: layer.statistics().reconnects == 1)
        await layer.send(channel, msg(1))
        await layer.group_send("room", msg(2))
        assert [await receive(layer, channel) for _ in range(2)] == [msg(1), msg(2)]
        stats = layer.statistics()
        assert stats.errors >= 1
        assert stats.unavailable == 0
    await layer.flush()


async def kill_pubsub_connections(name: str) -> None:
    """``CLIENT KILL TYPE pubsub``, narrowed to the connections named ``name``."""
    async with admin() as client:
        infos = await client.client_list(type_=coredis.PureToken.PUBSUB)
        ids = [int(info["id"]) for info in infos if info["name"] == name]
        assert ids, f"no pub/sub connection named {name}"
        for identifier in ids:
            await client.client_kill(identifier=identifier, type_=coredis.PureToken.PUBSUB)


# -- interoperability with channels_redis --------------------------------------------


class AsyncioThread:
    """An asyncio event loop in a thread of its own, for channels_redis's half."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="channels_redis")
        self.thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the thread's loop (at most 5 s) and return its result."""
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, 5), self.loop)
        return await anyio.to_thread.run_sync(future.result)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def asyncio_thread() -> Iterator[AsyncioThread]:
    thread = AsyncioThread()
    yield thread
    thread.close()


@pytest.mark.parametrize(
    "config",
    [{}, {"symmetric_encryption_keys": ["interop"]}, {"serializer_format": "json"}],
    ids=["msgpack", "encrypted", "json"],
)
async def test_interop_with_channels_redis(
    prefix: str, config: dict[str, Any], asyncio_thread: AsyncioThread
) -> None:
    theirs = ChannelsRedisPubSubLayer(hosts=[URL], prefix=prefix, **config)
    ours = RedisPubSubChannelLayer(hosts=[URL], prefix=prefix, **config)
    run = asyncio_thread.run
    try:
        async with ours:
            channel = await ours.new_channel()
            await ours.group_add("room", channel)
            their_channel = await run(theirs.new_channel())
            assert re.fullmatch(rf"{prefix}specific\.[0-9a-f]{{32}}", their_channel)
            await run(theirs.group_add("room", their_channel))
            await wait_for_subscribers(their_channel)
            await wait_for_subscribers(f"{prefix}__group__room", 2)

            await run(theirs.send(channel, msg(1)))  # channels_redis -> achannels
            assert await receive(ours, channel) == msg(1)
            await run(theirs.group_send("room", msg(2)))
            assert await receive(ours, channel) == msg(2)
            assert await run(theirs.receive(their_channel)) == msg(2)

            await ours.send(their_channel, msg(3))  # achannels -> channels_redis
            assert await run(theirs.receive(their_channel)) == msg(3)
            await ours.group_send("room", msg(4))
            assert await run(theirs.receive(their_channel)) == msg(4)
            assert await receive(ours, channel) == msg(4)
    finally:
        await run(theirs.flush())
        await ours.flush()
