"""The Redis layer when Redis fails: killed, restarted, its clients killed, failed over.

Each test owns its Redis processes. A :class:`Traffic` runs senders and consumers and
keeps a ledger of every message: when its send started (the test's ``epoch``), how
the send ended, and who received it. At the end every message is accounted for:
received, refused (``ChannelLayerUnavailable``), or acknowledged but lost, and a loss
is only allowed where Redis itself lost the data (what a killed server held), or, for
a group send from another process, where Redis forgot the group and the members'
process had not re-added them yet.
"""

from __future__ import annotations

import gc
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypeAlias

import anyio
import pytest

from achannels.exceptions import ChannelLayerUnavailable
from achannels.layers.redis import RedisChannelLayer
from tests.layers.redis_servers import RedisSentinelSetup, RedisServer

pytestmark = [
    pytest.mark.anyio,
    # coredis 6.9 never closes the memory streams of a connection that failed to
    # connect (BaseConnection.run); their ResourceWarning is its leak, not the layer's.
    pytest.mark.filterwarnings("ignore:Unclosed <MemoryObject:ResourceWarning"),
]

Key: TypeAlias = tuple[str, int]  # (kind, number): one message of the ledger
Send: TypeAlias = Callable[[dict[str, Any]], Awaitable[None]]
Outcome: TypeAlias = Literal["in flight", "acked", "unavailable"]

GROUP = "room"
#: Seconds a receive loop's blocking pop waits on the server: closing the layer waits
#: for in-flight pops, so a short one keeps the tests quick.
BRPOP_TIMEOUT = 0.25
#: The bound on any one call while Redis is down: a refused connection fails in ms.
CALL_WITHIN = 2.0
#: The bound on recovering after Redis is back (the loops' backoff is at most ~3 s).
RECOVER_WITHIN = 10.0
#: The bound on leaving ``async with layer`` (in-flight pops end within BRPOP_TIMEOUT).
EXIT_WITHIN = BRPOP_TIMEOUT + 1.5
#: The pause between rounds of sends: traffic, not a flood.
PACE = 0.005
#: Messages of each kind a phase waits to see arrive before it moves on.
ENOUGH = 20

# The phases of a test; each message remembers the phase its send started in.
BEFORE, DOWN, UP, SETTLED = range(4)


class FormatNow(logging.Filter):
    """Format a record at once, so that the log keeps no reference to its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = record.getMessage(), ()
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return True


@pytest.fixture(autouse=True)
def collect_failed_connections() -> Iterator[None]:
    """Finalize coredis's failed connections here, under this module's warning filter.

    The layer logs each receive-loop failure with the exception as an argument (and
    coredis some with their tracebacks); pytest keeps the records for the report, and
    with them the exception's frames and the failed connection, so they would be
    collected (and warn) in a later test. Formatting the records at once lets them go.
    """
    loggers = [logging.getLogger(name) for name in ("achannels.layers.redis", "coredis")]
    format_now = FormatNow()
    for logger in loggers:
        logger.addFilter(format_now)
    yield
    for logger in loggers:
        logger.removeFilter(format_now)
    gc.collect()


def quick_layer(*hosts: object, **options: Any) -> RedisChannelLayer:
    """Return a layer on ``hosts`` whose receive loops stop quickly.

    The capacity is roomy: a receive loop may back off for up to ~3 s after Redis is
    back while senders already succeed, and these tests are about faults, not full
    channels.
    """
    options.setdefault("capacity", 5000)
    layer = RedisChannelLayer(hosts=list(hosts), **options)
    layer.brpop_timeout = BRPOP_TIMEOUT
    return layer


async def wait_for(condition: Callable[[], bool], what: str, within: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail the test, naming ``what``, after ``within`` s."""
    with anyio.move_on_after(within):
        while not condition():  # noqa: ASYNC110 - counters and ledgers have no event
            await anyio.sleep(0.005)
        return
    raise AssertionError(f"timed out after {within:g}s waiting for {what}")


@dataclass
class Attempt:
    """One message a sender tried to send."""

    kind: str
    number: int
    sender: str  # the name of the layer that sent it
    epoch: int  # the test's phase when the send started
    rejoined: frozenset[str]  # the layers whose loops had re-added their groups by then
    outcome: Outcome = "in flight"


@dataclass(frozen=True)
class Tally:
    """What became of the messages one consumer should have received."""

    received: int
    refused: int  # raised ChannelLayerUnavailable to the sender and never arrived
    lost: list[Key]  # acknowledged to the sender, never arrived


class Traffic:
    """Senders and consumers on some layers, and the ledger of every message."""

    def __init__(self, **layers: RedisChannelLayer) -> None:
        self.layers = layers
        self.epoch = BEFORE
        self.attempts: dict[Key, Attempt] = {}
        self.received: dict[str, list[Key]] = {name: [] for name in layers}
        self._stopping = False

    def rejoined(self) -> frozenset[str]:
        """Return the layers whose receive loops got Redis back (and re-added groups)."""
        return frozenset(n for n, layer in self.layers.items() if layer.statistics().reconnects)

    async def send_forever(self, sender: str, sends: Mapping[str, Send]) -> None:
        """Send one message of each kind per round until :meth:`stop`; each call bounded."""
        for number in itertools.count():
            if self._stopping:
                return
            for kind, send in sends.items():
                attempt = Attempt(kind, number, sender, self.epoch, self.rejoined())
                self.attempts[kind, number] = attempt
                try:
                    with anyio.fail_after(CALL_WITHIN):  # a hang fails the test
                        await send({"type": "test.message", "kind": kind, "n": number})
                except ChannelLayerUnavailable:
                    attempt.outcome = "unavailable"
                else:
                    attempt.outcome = "acked"
            await anyio.sleep(PACE)

    def stop(self) -> None:
        """Let the senders finish their round and return."""
        self._stopping = True

    async def consume(self, name: str, layer: RedisChannelLayer, channel: str) -> None:
        """Receive on ``channel`` forever, recording each message for consumer ``name``."""
        received = self.received[name]
        while True:
            message = await layer.receive(channel)
            received.append((message["kind"], message["n"]))

    def refused(self, *, sender: str | None = None, epoch: int | None = None) -> int:
        """Count the sends that raised ``ChannelLayerUnavailable``."""
        return sum(
            1
            for a in self.attempts.values()
            if a.outcome == "unavailable"
            and sender in (None, a.sender)
            and epoch in (None, a.epoch)
        )

    def arrived(
        self, consumer: str, kind: str, *, since: int = BEFORE, rejoined: str | None = None
    ) -> int:
        """Count ``kind`` messages ``consumer`` got that were sent from phase ``since`` on."""
        return sum(
            1
            for key in self.received[consumer]
            if key[0] == kind
            and self.attempts[key].epoch >= since
            and (rejoined is None or rejoined in self.attempts[key].rejoined)
        )

    async def drain(self, send: Send) -> None:
        """Send a marker after everything else; wait until every consumer has it.

        ``send`` must reach every consumer (a group send). A consumer's channel is
        first in, first out, so by then every earlier message that will ever arrive
        has arrived.
        """
        marker = ("marker", len(self.attempts))
        with anyio.fail_after(CALL_WITHIN):
            await send({"type": "test.message", "kind": marker[0], "n": marker[1]})
        await wait_for(
            lambda: all(marker in received for received in self.received.values()),
            "a marker sent after the last message",
        )

    def tally(
        self,
        consumer: str,
        kinds: Collection[str],
        *,
        may_lose: Callable[[Attempt], bool],
        may_land: Callable[[Attempt], bool],
    ) -> Tally:
        """Account for every message of ``kinds``; assert each ended as it may.

        ``may_lose``: an acknowledged message that may never arrive. ``may_land``: a
        refused send that may still have arrived (the connection broke after Redis
        ran it). Each consumer gets each message at most once, in the sent order.
        """
        got = [key for key in self.received[consumer] if key[0] in kinds]
        arrived = set(got)
        assert len(arrived) == len(got), f"{consumer} got a message twice"
        for kind in kinds:
            numbers = [n for k, n in got if k == kind]
            assert numbers == sorted(numbers), f"{consumer} got {kind} messages out of order"
        sent = {key: a for key, a in self.attempts.items() if a.kind in kinds}
        assert arrived <= sent.keys(), f"{consumer} got messages it was not sent"
        assert all(a.outcome != "in flight" for a in sent.values())
        refused = [k for k, a in sent.items() if a.outcome == "unavailable" and k not in arrived]
        lost = [k for k, a in sent.items() if a.outcome == "acked" and k not in arrived]
        landed = [k for k in arrived if sent[k].outcome == "unavailable"]
        wrongly_lost = [describe(sent[k]) for k in lost if not may_lose(sent[k])]
        assert not wrongly_lost, (
            f"{consumer} never got {len(wrongly_lost)} acknowledged messages: {wrongly_lost}"
        )
        assert all(may_land(sent[k]) for k in landed), f"{consumer} got refused sends {landed}"
        assert len(arrived) + len(refused) + len(lost) == len(sent)
        return Tally(len(arrived), len(refused), lost)


def describe(attempt: Attempt) -> str:
    """Return a short account of ``attempt`` for failure messages."""
    phase = ("before", "down", "up", "settled")[attempt.epoch]
    rejoined = ",".join(sorted(attempt.rejoined)) or "none"
    return f"{attempt.kind}#{attempt.number} (sent {phase}, rejoined: {rejoined})"


def blocked_clients(server: RedisServer) -> set[str]:
    """Return the ids of the clients blocked in a command on ``server`` (receive loops)."""
    ids = set()
    for line in server.cli("CLIENT", "LIST").splitlines():
        fields = {key: value for key, _, value in (part.partition("=") for part in line.split())}
        if "b" in fields.get("flags", ""):
            ids.add(fields["id"])
    return ids


# -- Redis killed and restarted -------------------------------------------------------


async def test_redis_killed_and_restarted_mid_traffic(redis_server: RedisServer) -> None:
    layer = quick_layer(redis_server.url)
    traffic = Traffic(a=layer)
    kinds = ("direct", "group")

    def may_lose(attempt: Attempt) -> bool:
        # Acknowledged before the kill: it may have died with the server. Anything
        # acknowledged later is in the restarted server, including a group send: the
        # layer holds the membership and must not let it reach nobody.
        return attempt.epoch == BEFORE

    async with layer:
        channel = await layer.new_channel()
        await layer.group_add(GROUP, channel)
        sends = {"direct": partial(layer.send, channel), "group": partial(layer.group_send, GROUP)}
        async with anyio.create_task_group() as consumers:
            consumers.start_soon(traffic.consume, "a", layer, channel)
            async with anyio.create_task_group() as senders:
                senders.start_soon(traffic.send_forever, "a", sends)
                await wait_for(
                    lambda: all(traffic.arrived("a", kind) >= ENOUGH for kind in kinds),
                    "traffic before the kill",
                )
                before = layer.statistics()
                redis_server.kill()  # synchronous: no send starts meanwhile, so epochs are exact
                traffic.epoch = DOWN
                await wait_for(
                    lambda: traffic.refused(epoch=DOWN) >= 10, "sends to fail during the outage"
                )
                down = layer.statistics()
                await anyio.to_thread.run_sync(redis_server.start)
                traffic.epoch = UP
                await wait_for(
                    lambda: layer.statistics().reconnects >= 1,
                    "the receive loop to reconnect",
                    RECOVER_WITHIN,
                )
                await wait_for(
                    lambda: all(
                        traffic.arrived("a", kind, since=UP, rejoined="a") >= ENOUGH
                        for kind in kinds
                    ),
                    "traffic after the restart",
                )
                traffic.stop()
            await traffic.drain(partial(layer.group_send, GROUP))
            consumers.cancel_scope.cancel()
        leaving = time.monotonic()
    took = time.monotonic() - leaving
    after = layer.statistics()

    assert before.errors == before.unavailable == before.reconnects == 0
    assert down.unavailable > 0
    assert down.errors > down.unavailable  # the receive loop failed too
    assert traffic.refused(epoch=BEFORE) <= 1  # at most the send in flight at the kill
    assert traffic.refused(epoch=UP) == 0  # Redis answers again: no call may fail
    assert after.unavailable == traffic.refused()  # every refusal counted, nothing else
    assert after.errors > after.unavailable
    assert after.reconnects >= 1
    assert after.receive_loops == 0
    assert not after.owned
    assert took < EXIT_WITHIN
    # Every message accounted for: received, refused, or lost with the killed server.
    tally = traffic.tally(
        "a", kinds, may_lose=may_lose, may_land=lambda attempt: attempt.epoch == BEFORE
    )
    assert tally.refused >= 10


async def test_two_processes_group_send_across_an_outage(redis_server: RedisServer) -> None:
    first, second = quick_layer(redis_server.url), quick_layer(redis_server.url)
    traffic = Traffic(a=first, b=second)
    kinds = ("a.group", "b.group")

    def may_lose_for(consumer: str) -> Callable[[Attempt], bool]:
        def may_lose(attempt: Attempt) -> bool:
            # After a restart Redis has no members until each process re-adds its own:
            # a group send from the other process may reach nobody until then.
            return attempt.epoch == BEFORE or consumer not in attempt.rejoined

        return may_lose

    async with first, second:
        channels = {"a": await first.new_channel(), "b": await second.new_channel()}
        await first.group_add(GROUP, channels["a"])
        await second.group_add(GROUP, channels["b"])
        assert first.client_prefix != second.client_prefix
        async with anyio.create_task_group() as consumers:
            consumers.start_soon(traffic.consume, "a", first, channels["a"])
            consumers.start_soon(traffic.consume, "b", second, channels["b"])
            async with anyio.create_task_group() as senders:
                senders.start_soon(
                    traffic.send_forever, "a", {"a.group": partial(first.group_send, GROUP)}
                )
                senders.start_soon(
                    traffic.send_forever, "b", {"b.group": partial(second.group_send, GROUP)}
                )
                await wait_for(
                    lambda: all(traffic.arrived(c, k) >= ENOUGH for c in "ab" for k in kinds),
                    "group traffic between the processes",
                )
                redis_server.kill()
                traffic.epoch = DOWN
                await wait_for(
                    lambda: all(traffic.refused(sender=s, epoch=DOWN) >= 5 for s in "ab"),
                    "both processes' group sends to fail",
                )
                await anyio.to_thread.run_sync(redis_server.start)
                traffic.epoch = UP
                await wait_for(
                    lambda: traffic.rejoined() == {"a", "b"},
                    "both processes to re-add their members",
                    RECOVER_WITHIN,
                )
                await wait_for(
                    lambda: all(
                        traffic.arrived(c, k, since=UP, rejoined=c) >= ENOUGH
                        for c in "ab"
                        for k in kinds
                    ),
                    "group traffic between the processes after the restart",
                )
                traffic.stop()
            await traffic.drain(partial(first.group_send, GROUP))
            consumers.cancel_scope.cancel()
        leaving = time.monotonic()
    took = time.monotonic() - leaving

    for consumer in "ab":
        traffic.tally(
            consumer,
            kinds,
            may_lose=may_lose_for(consumer),
            may_land=lambda attempt: attempt.epoch == BEFORE,
        )
    for name, layer in traffic.layers.items():
        stats = layer.statistics()
        assert stats.unavailable == traffic.refused(sender=name)
        assert traffic.refused(sender=name, epoch=UP) == 0
        assert stats.reconnects >= 1
        assert stats.receive_loops == 0
    assert took < EXIT_WITHIN


# -- clients killed ------------------------------------------------------------------


async def test_client_kill_reconnects_the_receive_loops(redis_server: RedisServer) -> None:
    layer = quick_layer(redis_server.url)
    traffic = Traffic(a=layer)
    kinds = ("direct", "group")

    def may_lose(attempt: Attempt) -> bool:
        return attempt.epoch == BEFORE  # a pop answered as its connection was killed

    async with layer:
        channel = await layer.new_channel()
        await layer.group_add(GROUP, channel)
        sends = {"direct": partial(layer.send, channel), "group": partial(layer.group_send, GROUP)}
        async with anyio.create_task_group() as consumers:
            consumers.start_soon(traffic.consume, "a", layer, channel)
            async with anyio.create_task_group() as senders:
                senders.start_soon(traffic.send_forever, "a", sends)
                await wait_for(
                    lambda: all(traffic.arrived("a", kind) >= ENOUGH for kind in kinds),
                    "traffic before the kill",
                )
                await wait_for(lambda: bool(blocked_clients(redis_server)), "a blocked pop")
                loops = blocked_clients(redis_server)
                # Synchronous, so no send starts meanwhile: the epochs are exact.
                killed = int(redis_server.cli("CLIENT", "KILL", "TYPE", "normal"))
                traffic.epoch = UP
                assert killed >= 2  # the receive loop's connection and the pool's
                await wait_for(
                    lambda: all(traffic.arrived("a", kind, since=UP) >= ENOUGH for kind in kinds),
                    "traffic after the kill",
                )
                await wait_for(
                    lambda: bool(blocked_clients(redis_server) - loops),
                    "the receive loop to pop on a new connection",
                )
                traffic.stop()
            await traffic.drain(partial(layer.group_send, GROUP))
            consumers.cancel_scope.cancel()
    stats = layer.statistics()

    traffic.tally("a", kinds, may_lose=may_lose, may_land=lambda attempt: attempt.epoch == BEFORE)
    assert stats.unavailable == traffic.refused()
    assert stats.receive_loops == 0
    # The loop's blocking pop lost its connection: that is a failure and a reconnect.
    assert stats.errors >= 1
    assert stats.reconnects >= 1


# -- no owner ------------------------------------------------------------------------


async def test_unowned_calls_fail_promptly_during_an_outage(redis_server: RedisServer) -> None:
    layer = RedisChannelLayer(hosts=[redis_server.url])
    channel = await layer.new_channel()
    await layer.group_add(GROUP, channel)
    await layer.group_send(GROUP, {"type": "test.message", "n": 0})
    with anyio.fail_after(CALL_WITHIN):
        assert (await layer.receive(channel))["n"] == 0

    refusals: list[float] = []

    async def parked_receive() -> None:
        started = anyio.current_time()
        with pytest.raises(ChannelLayerUnavailable):
            await layer.receive(channel)
        refusals.append(anyio.current_time() - started)

    with anyio.fail_after(CALL_WITHIN + 1):
        async with anyio.create_task_group() as tg:
            tg.start_soon(parked_receive)
            await wait_for(lambda: bool(blocked_clients(redis_server)), "the unowned pop")
            redis_server.kill()

    calls: list[Callable[[], Awaitable[object]]] = [
        partial(layer.send, channel, {"type": "test.message"}),
        partial(layer.send, "normal", {"type": "test.message"}),
        partial(layer.receive, channel),
        partial(layer.receive, "normal"),
        partial(layer.group_send, GROUP, {"type": "test.message"}),
        partial(layer.group_add, GROUP, "normal"),
        partial(layer.group_discard, GROUP, "normal"),
        layer.flush,
    ]
    for call in calls:
        started = anyio.current_time()
        with anyio.fail_after(CALL_WITHIN), pytest.raises(ChannelLayerUnavailable):
            await call()
        refusals.append(anyio.current_time() - started)

    assert len(refusals) == len(calls) + 1
    assert max(refusals) < 1.0
    stats = layer.statistics()
    assert stats.unavailable == len(refusals)
    assert stats.receive_loops == 0
    assert not stats.owned

    await anyio.to_thread.run_sync(redis_server.start)
    await layer.group_add(GROUP, channel)  # Redis forgot the group with everything else
    await layer.group_send(GROUP, {"type": "test.message", "n": 1})
    with anyio.fail_after(CALL_WITHIN):
        assert (await layer.receive(channel))["n"] == 1
    assert layer.statistics().unavailable == len(refusals)


# -- Sentinel ------------------------------------------------------------------------


def sentinel_host(setup: RedisSentinelSetup) -> dict[str, Any]:
    return {"sentinels": setup.sentinels, "master_name": setup.master_name}


async def test_sentinel_primary_loss_fails_over(redis_sentinel: RedisSentinelSetup) -> None:
    setup = redis_sentinel
    layer = quick_layer(sentinel_host(setup))
    traffic = Traffic(a=layer)
    kinds = ("direct", "group")

    def may_lose(attempt: Attempt) -> bool:
        # Only what the dead primary held: not yet popped, or not yet replicated. Later
        # sends can only be acknowledged by the promoted replica (read-only before).
        return attempt.epoch == BEFORE

    async with layer:
        channel = await layer.new_channel()
        await layer.group_add(GROUP, channel)
        sends = {"direct": partial(layer.send, channel), "group": partial(layer.group_send, GROUP)}
        async with anyio.create_task_group() as consumers:
            consumers.start_soon(traffic.consume, "a", layer, channel)
            async with anyio.create_task_group() as senders:
                senders.start_soon(traffic.send_forever, "a", sends)
                await wait_for(
                    lambda: all(traffic.arrived("a", kind) >= ENOUGH for kind in kinds),
                    "traffic before the primary dies",
                )
                replica = setup.replica
                setup.kill_primary()
                traffic.epoch = DOWN
                await anyio.to_thread.run_sync(setup.wait_master, replica.port)
                traffic.epoch = UP
                await wait_for(
                    lambda: layer.statistics().reconnects >= 1,
                    "the receive loop to reconnect",
                    RECOVER_WITHIN,
                )
                await wait_for(
                    lambda: all(traffic.arrived("a", kind, since=UP) >= ENOUGH for kind in kinds),
                    "traffic on the promoted replica",
                )
                traffic.stop()
            await traffic.drain(partial(layer.group_send, GROUP))
            consumers.cancel_scope.cancel()
        leaving = time.monotonic()
    took = time.monotonic() - leaving
    stats = layer.statistics()

    traffic.tally("a", kinds, may_lose=may_lose, may_land=lambda attempt: attempt.epoch == BEFORE)
    assert traffic.refused(epoch=DOWN) > 0  # the primary was gone for a while
    assert traffic.refused(epoch=UP) == 0  # every Sentinel names the promoted replica
    assert stats.unavailable == traffic.refused()
    assert stats.reconnects >= 1
    assert stats.receive_loops == 0
    assert took < EXIT_WITHIN


#: How long a process may keep using the old primary after a Sentinel failover.
FOLLOW_WITHIN = 3.0


async def test_sentinel_failover_moves_every_process_to_the_new_primary(
    redis_sentinel: RedisSentinelSetup,
) -> None:
    """An owned layer (long-lived pooled connections) and a process with fresh ones.

    After ``SENTINEL FAILOVER`` the fresh connections go to the promoted replica at once;
    the owned layer must follow within :data:`FOLLOW_WITHIN`, or the two processes talk
    past each other until Sentinel converts the old primary (some 10 s later).
    """
    setup = redis_sentinel
    owner = quick_layer(sentinel_host(setup))
    other = RedisChannelLayer(hosts=[sentinel_host(setup)], capacity=5000)  # no owner
    traffic = Traffic(a=owner)
    kinds = ("a.direct", "b.group")

    def may_lose(attempt: Attempt) -> bool:
        # Before both processes are seen on the new primary, a message may have gone
        # to the old one, which drops everything when Sentinel makes it a replica.
        return attempt.epoch < SETTLED

    async with owner:
        channel = await owner.new_channel()
        await owner.group_add(GROUP, channel)
        async with anyio.create_task_group() as consumers:
            consumers.start_soon(traffic.consume, "a", owner, channel)
            async with anyio.create_task_group() as senders:
                senders.start_soon(
                    traffic.send_forever, "a", {"a.direct": partial(owner.send, channel)}
                )
                senders.start_soon(
                    traffic.send_forever, "b", {"b.group": partial(other.group_send, GROUP)}
                )
                await wait_for(
                    lambda: all(traffic.arrived("a", kind) >= ENOUGH for kind in kinds),
                    "traffic before the failover",
                )
                traffic.epoch = DOWN
                await anyio.to_thread.run_sync(setup.failover)
                traffic.epoch = UP
                await wait_for(
                    lambda: all(traffic.arrived("a", kind, since=UP) >= ENOUGH for kind in kinds),
                    "both processes' messages to meet on the promoted replica",
                    FOLLOW_WITHIN,
                )
                traffic.epoch = SETTLED
                await wait_for(
                    lambda: all(
                        traffic.arrived("a", kind, since=SETTLED) >= ENOUGH for kind in kinds
                    ),
                    "traffic after the failover",
                )
                traffic.stop()
            await traffic.drain(partial(owner.group_send, GROUP))
            consumers.cancel_scope.cancel()
    stats = owner.statistics()

    traffic.tally("a", kinds, may_lose=may_lose, may_land=lambda attempt: True)
    assert traffic.refused(epoch=SETTLED) == 0
    assert stats.unavailable == traffic.refused(sender="a")
    assert other.statistics().unavailable == traffic.refused(sender="b")
    assert stats.reconnects >= 1
    assert stats.receive_loops == 0


# -- cancellation -------------------------------------------------------------------


def tiny_timeout(rng: random.Random) -> float:
    """Return 0 (cancelled at the first checkpoint) or a few to a few hundred µs."""
    return rng.choice([0.0, rng.uniform(0, 5e-5), rng.uniform(0, 5e-4), rng.uniform(0, 2e-3)])


async def send_in_order(layer: RedisChannelLayer, channel: str, count: int) -> None:
    for number in range(count):
        await layer.send(channel, {"type": "test.message", "n": number})


async def receive_with_random_cancels(
    layer: RedisChannelLayer, channel: str, count: int, rng: random.Random
) -> tuple[list[int], int]:
    """Receive ``count`` messages, each ``receive()`` under a random tiny deadline.

    Returns the numbers received and how many ``receive()`` calls were cancelled.
    """
    got: list[int] = []
    cancelled = 0
    while len(got) < count:
        with anyio.move_on_after(tiny_timeout(rng)) as scope:
            got.append((await layer.receive(channel))["n"])
        cancelled += scope.cancelled_caught
    return got, cancelled


async def test_cancelled_receives_lose_nothing_with_an_owner(redis_server: RedisServer) -> None:
    count = 2000
    layer = quick_layer(redis_server.url, capacity=count)  # no drops: only cancellation
    async with layer:
        channel = await layer.new_channel()
        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(send_in_order, layer, channel, count)
                got, cancelled = await receive_with_random_cancels(
                    layer, channel, count, random.Random(1492)
                )
    assert got == list(range(count))
    assert cancelled >= 1000
    stats = layer.statistics()
    assert (stats.sent, stats.delivered) == (count, count)
    assert stats.dropped_full == stats.discarded == stats.expired == stats.errors == 0
    assert stats.channels == 0
    assert stats.receive_loops == 0


async def test_cancelled_receives_lose_nothing_without_an_owner(
    redis_server: RedisServer,
) -> None:
    count = 200
    layer = RedisChannelLayer(hosts=[redis_server.url], capacity=count)
    channel = await layer.new_channel()
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(send_in_order, layer, channel, count)
            got, cancelled = await receive_with_random_cancels(
                layer, channel, count, random.Random(1492)
            )
    assert got == list(range(count))
    assert cancelled >= count // 2
    stats = layer.statistics()
    assert (stats.sent, stats.delivered) == (count, count)
    assert stats.dropped_full == stats.discarded == stats.expired == stats.errors == 0
    assert redis_server.cli("EXISTS", f"asgi{channel.partition('!')[0]}!").strip() == "0"
