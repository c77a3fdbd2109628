"""Channels and achannels processes share one Redis: the wire format, both directions.

Each test runs a Channels process (channels_redis 4.3's ``RedisChannelLayer``, on its
own asyncio loop in a thread, as :class:`ChannelsProcess`) next to our
:class:`~achannels.layers.redis.RedisChannelLayer`, on asyncio and trio, owned
(``async with``: pooled connections and receive loops) and unowned (a connection per
call). They talk through the Redis server at 127.0.0.1:6379, under a prefix of
their own; without that server the tests fail rather than skip.

The placement tests use two database numbers of that one server as two shards: they
are separate keyspaces, which is all placement needs.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, Literal, TypeVar

import anyio
import pytest
from channels.exceptions import ChannelFull as ChannelsChannelFull
from channels_redis.core import RedisChannelLayer as ChannelsRedisLayer
from channels_redis.utils import _consistent_hash

from achannels.exceptions import ChannelFull
from achannels.layers._base import LayerMessage
from achannels.layers.redis import RedisChannelLayer

pytestmark = pytest.mark.anyio

T = TypeVar("T")
Side = Literal["ours", "channels"]

REDIS_HOST: Final = "127.0.0.1"
REDIS_PORT: Final = 6379
REDIS: Final = f"redis://{REDIS_HOST}:{REDIS_PORT}"
ONE_SHARD: Final = [f"{REDIS}/0"]
TWO_SHARDS: Final = [f"{REDIS}/10", f"{REDIS}/11"]
KEYS: Final = ["interop-secret"]
TIMEOUT: Final = 5.0

#: Every msgpack type a layer message carries (the JSON test leaves out the bytes).
MESSAGE: Final[LayerMessage] = {
    "type": "interop.message",
    "text": "héllo ✓",
    "number": 42,
    "items": [1, 2.5, None, True, "x"],
    "nested": {"a": {"b": []}},
    "bytes": b"\x00\xff binary",
}


def message(**extra: Any) -> LayerMessage:
    """Return :data:`MESSAGE` with ``extra`` fields."""
    return {**MESSAGE, **extra}


class ChannelsProcess:
    """A Channels process: one channels_redis layer on its own asyncio loop and thread.

    channels_redis is asyncio-only and keeps its pools per event loop, so every call of
    a test goes to one long-lived loop, as in a real Channels process; :meth:`close`
    flushes the prefix and closes the pools on that loop, then ends it.
    """

    def __init__(self, **config: Any) -> None:
        self.layer: Any = ChannelsRedisLayer(**config)
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._serve, name="channels-process", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # The Runner cancels what is left, closes async generators and the loop (whose
        # close channels_redis wraps to close the pools it made on it).
        with asyncio.Runner(loop_factory=lambda: self._loop) as runner:
            runner.run(self._stop.wait())

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the process's loop and return what it returns.

        Cancelling this wait cannot reach the other loop, so the caller's deadline
        (``anyio.fail_after``; at most :data:`TIMEOUT` from now) is handed to it:
        there ``coro`` is cancelled and ``TimeoutError`` raised when it passes.
        """
        remaining = min(anyio.current_effective_deadline() - anyio.current_time(), TIMEOUT)
        bounded = asyncio.wait_for(coro, max(remaining, 0))
        future = asyncio.run_coroutine_threadsafe(bounded, self._loop)
        return await anyio.to_thread.run_sync(future.result)

    async def new_channel(self) -> str:
        name: str = await self.call(self.layer.new_channel())
        return name

    async def send(self, channel: str, message: LayerMessage) -> None:
        await self.call(self.layer.send(channel, message))

    async def receive(self, channel: str) -> LayerMessage:
        received: LayerMessage = await self.call(self.layer.receive(channel))
        return received

    async def group_add(self, group: str, channel: str) -> None:
        await self.call(self.layer.group_add(group, channel))

    async def group_discard(self, group: str, channel: str) -> None:
        await self.call(self.layer.group_discard(group, channel))

    async def group_send(self, group: str, message: LayerMessage) -> None:
        await self.call(self.layer.group_send(group, message))

    async def zcard(self, shard: int, key: str) -> int:
        """Count the messages waiting in ``key`` on ``shard``, read with channels_redis's pool."""

        async def count() -> int:
            return int(await self.layer.connection(shard).zcard(key))

        return await self.call(count())

    def close(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.layer.flush(), self._loop).result(TIMEOUT)
        finally:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "the Channels process's loop did not end"


def require_redis_server() -> None:
    """Fail (never skip) when nothing listens at 127.0.0.1:6379."""
    try:
        socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"these tests need Redis at {REDIS_HOST}:{REDIS_PORT}: {exc}")


@pytest.fixture
def prefix() -> str:
    """A key prefix that no other test (or run) shares."""
    return "interop" + secrets.token_hex(4)


@pytest.fixture
def channels_process(prefix: str) -> Iterator[Callable[..., ChannelsProcess]]:
    """Start Channels processes under the test's prefix; flush and stop them afterwards."""
    require_redis_server()
    started: list[ChannelsProcess] = []

    def start(**config: Any) -> ChannelsProcess:
        started.append(ChannelsProcess(prefix=prefix, **config))
        return started[-1]

    yield start
    for process in started:
        process.close()


@pytest.fixture(params=[pytest.param(True, id="owned"), pytest.param(False, id="unowned")])
def owned(request: pytest.FixtureRequest) -> bool:
    """Run our side inside ``async with layer`` or with per-call connections."""
    value: bool = request.param
    return value


@pytest.fixture(
    params=[
        pytest.param({}, id="plain"),
        pytest.param({"symmetric_encryption_keys": KEYS}, id="encrypted"),
    ]
)
def wire(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The message format settings both sides share: plain, or encrypted with one key."""
    value: dict[str, Any] = request.param
    return value


@asynccontextmanager
async def open_ours(
    *, owned: bool, prefix: str, hosts: Sequence[str] = ONE_SHARD, **config: Any
) -> AsyncIterator[RedisChannelLayer]:
    """Yield our layer, owned or not (the Channels process flushes the shared prefix)."""
    layer = RedisChannelLayer(hosts=hosts, prefix=prefix, **config)
    # Closing waits for the pops in flight, and an unowned receive polls each shard in
    # turn for this long, even when the message waits on the next one: keep both short.
    layer.brpop_timeout = 0.1
    layer.unowned_poll = 0.05
    if owned:
        async with layer:
            yield layer
    else:
        yield layer


async def receive(layer: RedisChannelLayer, channel: str) -> LayerMessage:
    """Receive on our side, failing the test instead of hanging."""
    with anyio.fail_after(TIMEOUT):
        return await layer.receive(channel)


def process_name(channel: str) -> str:
    """Return the process part of a process-local channel, ``"specific.<process>!"``."""
    return channel[: channel.index("!") + 1]


def assert_nothing_buffered(layer: RedisChannelLayer, *channels: str) -> None:
    for channel in channels:
        with pytest.raises(anyio.WouldBlock):
            layer.receive_nowait(channel)


async def spread_channels(
    new_channel: Callable[[], Awaitable[str]], *, ring_size: int, count: int = 20
) -> tuple[list[str], list[str]]:
    """Return ``count`` new process-local channels, and those channels_redis misplaces.

    channels_redis's ``send`` puts a process-local channel on the shard of its full
    name's hash, its ``receive`` reads the shard of the process key's (Channels
    #1492). Names are drawn until both kinds are among them, so no test depends on luck.
    """
    home: list[str] = []
    away: list[str] = []
    while not (home and away and len(home) + len(away) >= count):
        name = await new_channel()
        home_shard = _consistent_hash(process_name(name), ring_size)
        same = _consistent_hash(name, ring_size) == home_shard
        (home if same else away).append(name)
    names = [home[0], away[0], *home[1:], *away[1:]][:count]
    return names, [name for name in names if name in away]


# -- process-local channels ---------------------------------------------------------------


async def test_channels_sends_to_our_process_channel(
    channels_process: Callable[..., ChannelsProcess],
    owned: bool,
    prefix: str,
    wire: dict[str, Any],
) -> None:
    channels = channels_process(hosts=ONE_SHARD, **wire)
    async with open_ours(owned=owned, prefix=prefix, **wire) as ours:
        first, second = await ours.new_channel(), await ours.new_channel("other")
        await channels.send(second, message(to="second"))
        await channels.send(first, message(to="first"))
        assert await receive(ours, first) == message(to="first")
        assert await receive(ours, second) == message(to="second")
        assert_nothing_buffered(ours, first, second)
        assert ours.statistics().undecodable == 0


async def test_we_send_to_a_channels_process_channel(
    channels_process: Callable[..., ChannelsProcess],
    owned: bool,
    prefix: str,
    wire: dict[str, Any],
) -> None:
    channels = channels_process(hosts=ONE_SHARD, **wire)
    first, second = await channels.new_channel(), await channels.new_channel()
    async with open_ours(owned=owned, prefix=prefix, **wire) as ours:
        await ours.send(second, message(to="second"))
        await ours.send(first, message(to="first"))
    assert await channels.receive(first) == message(to="first")
    assert await channels.receive(second) == message(to="second")


# -- normal channels -----------------------------------------------------------------------


async def test_normal_channels_both_ways(
    channels_process: Callable[..., ChannelsProcess],
    owned: bool,
    prefix: str,
    wire: dict[str, Any],
) -> None:
    channels = channels_process(hosts=ONE_SHARD, **wire)
    async with open_ours(owned=owned, prefix=prefix, **wire) as ours:
        await channels.send("to-achannels", message(n=1))
        await channels.send("to-achannels", message(n=2))
        assert await receive(ours, "to-achannels") == message(n=1)
        assert await receive(ours, "to-achannels") == message(n=2)

        await ours.send("to-channels", message(n=3))
        await ours.send("to-channels", message(n=4))
        assert await channels.receive("to-channels") == message(n=3)
        assert await channels.receive("to-channels") == message(n=4)


async def test_each_side_sees_the_other_fill_a_channel(
    channels_process: Callable[..., ChannelsProcess], owned: bool, prefix: str
) -> None:
    channels = channels_process(hosts=ONE_SHARD, capacity=2)
    async with open_ours(owned=owned, prefix=prefix, capacity=2) as ours:
        await channels.send("filled-by-channels", message(n=1))
        await channels.send("filled-by-channels", message(n=2))
        with pytest.raises(ChannelFull):
            await ours.send("filled-by-channels", message(n=3))

        await ours.send("filled-by-us", message(n=1))
        await ours.send("filled-by-us", message(n=2))
        with pytest.raises(ChannelsChannelFull):
            await channels.send("filled-by-us", message(n=3))
        assert await receive(ours, "filled-by-us") == message(n=1)
    assert await channels.receive("filled-by-channels") == message(n=1)


# -- groups ----------------------------------------------------------------------------------


async def test_channels_group_send_reaches_our_members(
    channels_process: Callable[..., ChannelsProcess],
    owned: bool,
    prefix: str,
    wire: dict[str, Any],
) -> None:
    channels = channels_process(hosts=ONE_SHARD, **wire)
    async with open_ours(owned=owned, prefix=prefix, **wire) as ours:
        first, second = await ours.new_channel(), await ours.new_channel()
        await ours.group_add("room", first)
        await ours.group_add("room", second)
        await ours.group_add("room", "achannels-worker")
        await channels.group_send("room", message())
        assert await receive(ours, first) == message()
        assert await receive(ours, second) == message()
        assert await receive(ours, "achannels-worker") == message()
        assert_nothing_buffered(ours, first, second)


async def test_our_group_send_reaches_channels_members(
    channels_process: Callable[..., ChannelsProcess],
    owned: bool,
    prefix: str,
    wire: dict[str, Any],
) -> None:
    channels = channels_process(hosts=ONE_SHARD, **wire)
    first, second = await channels.new_channel(), await channels.new_channel()
    await channels.group_add("room", first)
    await channels.group_add("room", second)
    await channels.group_add("room", "channels-worker")
    async with open_ours(owned=owned, prefix=prefix, **wire) as ours:
        await ours.group_send("room", message())
        assert ours.statistics().sent == 3
    assert await channels.receive(first) == message()
    assert await channels.receive(second) == message()
    assert await channels.receive("channels-worker") == message()


@pytest.mark.parametrize("sender", ["ours", "channels"])
@pytest.mark.parametrize("hosts", [ONE_SHARD, TWO_SHARDS], ids=["one-shard", "two-shards"])
async def test_a_group_of_both_processes(
    channels_process: Callable[..., ChannelsProcess],
    owned: bool,
    prefix: str,
    sender: Side,
    hosts: list[str],
) -> None:
    channels = channels_process(hosts=hosts)
    theirs = [await channels.new_channel(), await channels.new_channel()]
    for channel in theirs:
        await channels.group_add("mixed", channel)
    async with open_ours(owned=owned, prefix=prefix, hosts=hosts) as ours:
        mine = [await ours.new_channel(), await ours.new_channel(), "achannels-worker"]
        for channel in mine:
            await ours.group_add("mixed", channel)
        if sender == "ours":
            await ours.group_send("mixed", message(sender=sender))
        else:
            await channels.group_send("mixed", message(sender=sender))
        for channel in mine:
            assert await receive(ours, channel) == message(sender=sender)
        assert_nothing_buffered(ours, *mine)
    for channel in theirs:
        assert await channels.receive(channel) == message(sender=sender)


async def test_group_discard_both_ways(
    channels_process: Callable[..., ChannelsProcess], owned: bool, prefix: str
) -> None:
    channels = channels_process(hosts=ONE_SHARD)
    theirs = await channels.new_channel()
    await channels.group_add("room", theirs)
    async with open_ours(owned=owned, prefix=prefix) as ours:
        mine = await ours.new_channel()
        await ours.group_add("room", mine)
        await ours.group_discard("room", theirs)
        await channels.group_discard("room", mine)
        await channels.group_send("room", message(n=1))
        await ours.group_send("room", message(n=2))
        # What arrives next is the direct message: neither group send reached them.
        await ours.send(mine, message(n=3))
        await ours.send(theirs, message(n=3))
        assert await receive(ours, mine) == message(n=3)
    assert await channels.receive(theirs) == message(n=3)


# -- encryption and formats --------------------------------------------------------------------


async def test_any_listed_key_decrypts(
    channels_process: Callable[..., ChannelsProcess], owned: bool, prefix: str
) -> None:
    # Each side encrypts with its first key and decrypts with any: a key rotation.
    channels = channels_process(hosts=ONE_SHARD, symmetric_encryption_keys=["old", "new"])
    theirs = await channels.new_channel()
    config: dict[str, Any] = {"symmetric_encryption_keys": ["new", "old"]}
    async with open_ours(owned=owned, prefix=prefix, **config) as ours:
        mine = await ours.new_channel()
        await channels.send(mine, message(by="channels"))
        await ours.send(theirs, message(by="ours"))
        assert await receive(ours, mine) == message(by="channels")
    assert await channels.receive(theirs) == message(by="ours")


async def test_a_wrong_key_is_counted_not_fatal(
    channels_process: Callable[..., ChannelsProcess],
    owned: bool,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    channels = channels_process(hosts=ONE_SHARD, symmetric_encryption_keys=KEYS)
    config: dict[str, Any] = {"symmetric_encryption_keys": ["not-the-key"]}
    async with open_ours(owned=owned, prefix=prefix, **config) as ours:
        mine = await ours.new_channel()
        await channels.send(mine, message(n=1))
        await ours.send(mine, message(n=2))
        assert await receive(ours, mine) == message(n=2)
        assert ours.statistics().undecodable == 1
        assert_nothing_buffered(ours, mine)
    assert "cannot be decoded" in caplog.text


async def test_json_format_both_ways(
    channels_process: Callable[..., ChannelsProcess], owned: bool, prefix: str
) -> None:
    plain = {key: value for key, value in MESSAGE.items() if key != "bytes"}
    channels = channels_process(hosts=ONE_SHARD, serializer_format="json")
    theirs = await channels.new_channel()
    async with open_ours(owned=owned, prefix=prefix, serializer_format="json") as ours:
        mine = await ours.new_channel()
        await channels.send(mine, plain)
        await ours.send(theirs, plain)
        assert await receive(ours, mine) == plain
    assert await channels.receive(theirs) == plain


# -- two shards: Channels #1492 ----------------------------------------------------------------


async def test_channels_redis_loses_its_own_messages_with_two_shards(
    channels_process: Callable[..., ChannelsProcess], prefix: str
) -> None:
    channels = channels_process(hosts=TWO_SHARDS)
    names, lost = await spread_channels(channels.new_channel, ring_size=2)
    for i, name in enumerate(names):
        await channels.send(name, message(i=i))
    kept = [name for name in names if name not in lost]
    for name in kept:
        assert await channels.receive(name) == message(i=names.index(name))
    assert 1 <= len(lost) < len(names)  # it received fewer than 20 of 20

    # The rest sit on the shard its receive never reads: waiting does not help.
    with pytest.raises(TimeoutError), anyio.fail_after(0.5):
        await channels.receive(lost[0])
    home = _consistent_hash(process_name(lost[0]), 2)
    assert await channels.zcard(home, prefix + process_name(lost[0])) == 0
    assert await channels.zcard(1 - home, prefix + process_name(lost[0])) == len(lost)


@pytest.mark.parametrize("sender", ["ours", "channels"])
async def test_ours_delivers_every_process_message_with_two_shards(
    channels_process: Callable[..., ChannelsProcess],
    owned: bool,
    prefix: str,
    sender: Side,
) -> None:
    channels = channels_process(hosts=TWO_SHARDS)
    async with open_ours(owned=owned, prefix=prefix, hosts=TWO_SHARDS) as ours:
        # The same kind of names as above: channels_redis sends some to the other shard.
        names, misplaced = await spread_channels(ours.new_channel, ring_size=2)
        assert misplaced
        send = ours.send if sender == "ours" else channels.send
        for i, name in enumerate(names):
            await send(name, message(i=i))
        received = [await receive(ours, name) for name in names]
        assert received == [message(i=i) for i in range(len(names))]
        assert_nothing_buffered(ours, *names)
        assert ours.statistics().undecodable == 0


async def test_channels_redis_receives_every_message_we_send_with_two_shards(
    channels_process: Callable[..., ChannelsProcess], owned: bool, prefix: str
) -> None:
    channels = channels_process(hosts=TWO_SHARDS)
    names, misplaced = await spread_channels(channels.new_channel, ring_size=2)
    assert misplaced  # channels_redis would lose these sending to itself (above)
    async with open_ours(owned=owned, prefix=prefix, hosts=TWO_SHARDS) as ours:
        for i, name in enumerate(names):
            await ours.send(name, message(i=i))
    received = [await channels.receive(name) for name in names]
    assert received == [message(i=i) for i in range(len(names))]
