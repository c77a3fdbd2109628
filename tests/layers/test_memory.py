"""The in-memory channel layer, on asyncio and trio."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import anyio
import pytest
from anyio.lowlevel import checkpoint

from achannels.exceptions import ChannelFull
from achannels.layers import BaseChannelLayer, ChannelLayer, InMemoryChannelLayer, LayerStatistics
from achannels.layers._reaper import DUE_BUDGET
from achannels.layers._registry import IDLE_CACHE
from achannels.layers.memory import registry_of
from tests.layers.memory_helpers import FakeClock, msg

pytestmark = pytest.mark.anyio


async def test_send_then_receive_in_order() -> None:
    layer = InMemoryChannelLayer()
    for n in range(3):
        await layer.send("orders", msg(n))
    assert [(await layer.receive("orders"))["n"] for _ in range(3)] == [0, 1, 2]
    assert layer.statistics() == LayerStatistics(sent=3, delivered=3)


async def test_receive_waits_for_a_send() -> None:
    layer = InMemoryChannelLayer()
    got: list[dict[str, Any]] = []
    async with anyio.create_task_group() as tg:

        async def receiver() -> None:
            got.append(await layer.receive("inbox"))

        tg.start_soon(receiver)
        await anyio.wait_all_tasks_blocked()
        assert layer.statistics().channels == 1  # a parked receiver keeps its channel
        await layer.send("inbox", msg(1))
    assert got == [msg(1)]
    assert layer.statistics().channels == 0


@pytest.mark.parametrize(
    "call", ["send", "receive", "new_channel", "flush", "group_add", "group_discard", "group_send"]
)
async def test_base_layer_leaves_the_api_to_subclasses(call: str) -> None:
    layer = BaseChannelLayer()
    args = {
        "send": ("c", msg()),
        "receive": ("c",),
        "new_channel": (),
        "flush": (),
        "group_add": ("g", "c"),
        "group_discard": ("g", "c"),
        "group_send": ("g", msg()),
    }[call]
    with pytest.raises(NotImplementedError):
        await getattr(layer, call)(*args)
    await layer.close()


async def test_is_a_channel_layer() -> None:
    layer: ChannelLayer = InMemoryChannelLayer()
    assert isinstance(layer, ChannelLayer)
    assert "groups" in layer.extensions
    assert "flush" in layer.extensions


async def test_full_channel_raises_and_frees_up_after_a_receive() -> None:
    layer = InMemoryChannelLayer(capacity=2)
    await layer.send("c", msg(1))
    await layer.send("c", msg(2))
    with pytest.raises(ChannelFull):
        await layer.send("c", msg(3))
    assert await layer.receive("c") == msg(1)
    await layer.send("c", msg(3))
    assert layer.statistics().sent == 3


async def test_channel_capacity_patterns_glob_and_regex() -> None:
    # Channels 4.3.2's memory layer crashes on the first send with channel_capacity set.
    layer = InMemoryChannelLayer(
        capacity=3, channel_capacity={"small.*": 1, re.compile(r"^big\."): 5}
    )
    for name, capacity in (("small.one", 1), ("big.one", 5), ("other", 3)):
        for n in range(capacity):
            await layer.send(name, msg(n))
        with pytest.raises(ChannelFull):
            await layer.send(name, msg(capacity))


async def test_a_full_channel_with_expired_messages_has_room() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(capacity=1, expiry=10, clock=clock)
    await layer.send("c", msg(1))
    clock.advance(11)
    await layer.send("c", msg(2))
    assert await layer.receive("c") == msg(2)
    assert layer.statistics().expired == 1


async def test_invalid_names_and_messages_are_rejected() -> None:
    layer = InMemoryChannelLayer()
    with pytest.raises(TypeError):
        await layer.send("bad name", msg())
    with pytest.raises(TypeError):
        await layer.send("x" * 100, msg())
    with pytest.raises(TypeError):
        await layer.receive("bad/name")
    with pytest.raises(TypeError):
        await layer.group_add("bad!group", "chan")
    with pytest.raises(TypeError):
        await layer.group_discard("group", "bad name")
    with pytest.raises(TypeError):
        await layer.group_send("bad group", msg())
    with pytest.raises(TypeError):
        await layer.send("chan", {"no": "type"})
    with pytest.raises(TypeError):
        await layer.group_send("group", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reserved"):
        await layer.send("chan", {"type": "x", "__asgi_channel__": "y"})
    with pytest.raises(TypeError):
        await layer.new_channel(prefix="p" * 90)
    assert layer.statistics() == LayerStatistics()


async def test_new_channel_names_are_unique_and_receivable() -> None:
    layer = InMemoryChannelLayer()
    created = {await layer.new_channel() for _ in range(1000)}
    assert len(created) == 1000
    name = await layer.new_channel(prefix="chat")
    assert re.fullmatch(r"chat\.inmemory![A-Za-z0-9_-]{12}", name)
    await layer.send(name, msg(7))
    assert await layer.receive(name) == msg(7)  # full process-local names are fine here


async def test_receive_is_a_checkpoint_that_takes_nothing_when_cancelled() -> None:
    layer = InMemoryChannelLayer()
    await layer.send("c", msg(1))
    with anyio.CancelScope() as scope:
        scope.cancel()
        await layer.receive("c")
    assert scope.cancelled_caught
    assert layer.receive_nowait("c") == msg(1)


async def test_receive_nowait() -> None:
    layer = InMemoryChannelLayer()
    with pytest.raises(anyio.WouldBlock):
        layer.receive_nowait("c")
    layer.send_nowait("c", msg(1))
    assert layer.receive_nowait("c") == msg(1)
    with pytest.raises(anyio.WouldBlock):
        layer.receive_nowait("c")
    assert layer.statistics().channels == 0


async def test_expiry_with_an_injected_clock() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=60, clock=clock)
    await layer.send("c", msg(1))
    clock.advance(30)
    await layer.send("c", msg(2))
    clock.advance(31)  # the first is 61 s old, the second 31 s
    assert layer.statistics().expired == 1  # the sweep keeps the second one
    assert await layer.receive("c") == msg(2)
    clock.advance(100)
    await layer.send("d", msg(3))
    clock.advance(61)
    with pytest.raises(anyio.WouldBlock):
        layer.receive_nowait("d")
    stats = layer.statistics()
    assert (stats.sent, stats.delivered, stats.expired, stats.channels) == (3, 1, 2, 0)


async def test_group_expiry_removes_stale_memberships() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(group_expiry=100, clock=clock)
    await layer.group_add("room", "stale")
    await layer.group_add("room", "fresh")
    clock.advance(60)
    await layer.group_add("room", "fresh")  # a refresh restarts its membership
    clock.advance(50)
    await layer.group_send("room", msg(1))
    assert layer.receive_nowait("fresh") == msg(1)
    with pytest.raises(anyio.WouldBlock):
        layer.receive_nowait("stale")
    assert layer.statistics().group_members == 1
    clock.advance(60)
    stats = layer.statistics()
    assert (stats.groups, stats.group_members) == (0, 0)


async def test_group_discard() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(clock=clock)
    await layer.group_add("room", "a")
    await layer.group_add("room", "b")
    await layer.group_discard("room", "a")
    await layer.group_discard("room", "a")  # not a member: nothing happens
    await layer.group_discard("nobody", "a")
    await layer.group_send("room", msg(1))
    assert layer.receive_nowait("b") == msg(1)
    with pytest.raises(anyio.WouldBlock):
        layer.receive_nowait("a")
    await layer.group_discard("room", "b")
    clock.advance(86401)  # the emptied group's expiry entry is stale, and skipped
    assert layer.statistics() == LayerStatistics(sent=1, delivered=1)


async def test_group_send_to_an_unknown_group_does_nothing() -> None:
    layer = InMemoryChannelLayer()
    await layer.group_send("empty", msg())
    assert layer.statistics() == LayerStatistics()


async def test_group_send_fans_out_one_shared_message_exactly_once() -> None:
    layer = InMemoryChannelLayer()
    members = [f"member.{i}" for i in range(1000)]
    for name in members:
        await layer.group_add("big", name)
    message = msg(42)
    await layer.group_send("big", message)
    for name in members:
        assert layer.receive_nowait(name) is message
        with pytest.raises(anyio.WouldBlock):
            layer.receive_nowait(name)
    stats = layer.statistics()
    assert (stats.sent, stats.delivered, stats.channels, stats.group_members) == (
        1000,
        1000,
        0,
        1000,
    )


async def test_group_send_wakes_parked_receivers() -> None:
    layer = InMemoryChannelLayer()
    got: dict[str, dict[str, Any]] = {}
    async with anyio.create_task_group() as tg:
        for _ in range(50):
            name = await layer.new_channel()
            await layer.group_add("room", name)

            async def receiver(name: str = name) -> None:
                got[name] = await layer.receive(name)

            tg.start_soon(receiver)
        await anyio.wait_all_tasks_blocked()
        await layer.group_send("room", msg(1))
    assert len(got) == 50
    assert all(m == msg(1) for m in got.values())


async def test_copy_messages_copies_per_delivery() -> None:
    layer = InMemoryChannelLayer(copy_messages=True)
    await layer.group_add("room", "a")
    await layer.group_add("room", "b")
    message: dict[str, Any] = {"type": "t", "items": [1]}
    await layer.group_send("room", message)
    await layer.send("a", message)
    message["items"].append(2)
    got = [layer.receive_nowait("a"), layer.receive_nowait("b"), layer.receive_nowait("a")]
    assert all(m == {"type": "t", "items": [1]} for m in got)
    assert len({id(m) for m in got}) == 3


async def test_full_member_is_skipped_counted_and_logged_once_per_burst(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(capacity=1, clock=clock)
    await layer.group_add("room", "slow")
    await layer.group_add("room", "fast")
    await layer.send("slow", msg(0))
    with caplog.at_level(logging.WARNING, logger="achannels.layers"):
        for n in range(1, 4):  # one burst: three drops, one warning
            await layer.group_send("room", msg(n))
            assert layer.receive_nowait("fast") == msg(n)
        assert len(caplog.records) == 1
        assert "slow" in caplog.records[0].getMessage()
        clock.advance(2)
        await layer.group_send("room", msg(4))
    assert len(caplog.records) == 2
    assert "3 message(s) dropped since the last report" in caplog.records[1].getMessage()
    assert all(r.name == "achannels.layers" for r in caplog.records)
    assert layer.statistics().dropped_full == 4
    assert layer.receive_nowait("slow") == msg(0)


async def test_full_policy_raise_delivers_to_the_others_first() -> None:
    layer = InMemoryChannelLayer(capacity=1, group_full_policy="raise")
    await layer.group_add("room", "slow")
    await layer.group_add("room", "fast")
    await layer.send("slow", msg(0))
    with pytest.raises(ChannelFull, match="slow"):
        await layer.group_send("room", msg(1))
    assert layer.receive_nowait("fast") == msg(1)
    assert layer.receive_nowait("slow") == msg(0)
    assert layer.statistics().dropped_full == 1


async def test_full_policy_drop_oldest_keeps_the_newest() -> None:
    layer = InMemoryChannelLayer(capacity=2, group_full_policy="drop_oldest")
    await layer.group_add("room", "slow")
    for n in range(5):
        await layer.group_send("room", msg(n))
    assert [layer.receive_nowait("slow")["n"] for _ in range(2)] == [3, 4]
    stats = layer.statistics()
    assert (stats.sent, stats.dropped_full, stats.delivered) == (5, 3, 2)


async def test_bad_policy_and_group_expiry_are_rejected() -> None:
    with pytest.raises(ValueError, match="group_full_policy"):
        InMemoryChannelLayer(group_full_policy="block")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="group_expiry"):
        InMemoryChannelLayer(group_expiry=0)


async def test_many_concurrent_senders_and_receivers() -> None:
    layer = InMemoryChannelLayer(capacity=10)
    senders, per_sender, receivers = 20, 50, 7
    total = senders * per_sender
    got: list[int] = []
    done = anyio.Event()

    async def send_all(base: int) -> None:
        for n in range(base, base + per_sender):
            while True:  # a bounded channel: back off until a receiver makes room
                try:
                    await layer.send("work", msg(n))
                    break
                except ChannelFull:
                    await checkpoint()

    async def receive_forever() -> None:
        while True:
            got.append((await layer.receive("work"))["n"])
            if len(got) == total:
                done.set()

    async with anyio.create_task_group() as tg:
        for _ in range(receivers):
            tg.start_soon(receive_forever)
        for s in range(senders):
            tg.start_soon(send_all, s * per_sender)
        await done.wait()
        tg.cancel_scope.cancel()
    assert sorted(got) == list(range(total))
    assert layer.statistics().channels == 0


async def until_parked(layer: InMemoryChannelLayer, channel: str, receivers: int) -> None:
    """Yield until ``receivers`` tasks wait in ``layer.receive(channel)``.

    Cheaper than ``wait_all_tasks_blocked``, which sleeps 0.1 s per try on asyncio.
    """
    while registry_of(layer).waiting(channel) < receivers:
        await checkpoint()


async def test_cancelled_receive_loses_and_duplicates_nothing() -> None:
    layer = InMemoryChannelLayer()
    got: list[int] = []
    for round_ in range(120):
        scopes = [anyio.CancelScope() for _ in range(4)]
        async with anyio.create_task_group() as tg:
            for scope in scopes:

                async def receiver(scope: anyio.CancelScope = scope) -> None:
                    with scope:
                        got.append((await layer.receive("c"))["n"])

                tg.start_soon(receiver)
            await until_parked(layer, "c", 4)
            for k in range(3):  # wake three receivers, then cancel two of them at once
                layer.send_nowait("c", msg(round_ * 3 + k))
            scopes[round_ % 4].cancel()
            scopes[(round_ + 1) % 4].cancel()
            for _ in range(round_ % 3):  # vary how far the others get before they go
                await checkpoint()
            for scope in scopes:
                scope.cancel()
        while True:
            try:
                got.append(layer.receive_nowait("c")["n"])
            except anyio.WouldBlock:
                break
    assert sorted(got) == list(range(360))
    assert layer.statistics().channels == 0


async def test_a_cancelled_woken_receiver_passes_the_message_on() -> None:
    layer = InMemoryChannelLayer()
    first, second = anyio.CancelScope(), anyio.CancelScope()
    got: list[tuple[str, int]] = []

    async def receiver(label: str, scope: anyio.CancelScope) -> None:
        with scope:
            got.append((label, (await layer.receive("c"))["n"]))

    async with anyio.create_task_group() as tg:
        tg.start_soon(receiver, "first", first)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(receiver, "second", second)
        await anyio.wait_all_tasks_blocked()
        layer.send_nowait("c", msg(1))  # wakes "first"...
        first.cancel()  # ...which is cancelled before it runs
        await anyio.wait_all_tasks_blocked()
        if not got or got[0][0] != "first":  # asyncio: the cancel won, "second" got it
            assert got == [("second", 1)]
        else:  # trio: a rescheduled task completes its wait, "second" still waits
            layer.send_nowait("c", msg(2))
            await anyio.wait_all_tasks_blocked()
            assert got == [("first", 1), ("second", 2)]
    assert layer.statistics().channels == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_natively_cancelled_woken_receiver_passes_the_message_on() -> None:
    # AnyIO and trio never cancel a task whose wait already completed; a plain
    # asyncio Task.cancel() (from code outside AnyIO) can, and must not lose it either.
    layer = InMemoryChannelLayer()
    first = asyncio.ensure_future(layer.receive("c"))
    await until_parked(layer, "c", 1)
    second = asyncio.ensure_future(layer.receive("c"))
    await until_parked(layer, "c", 2)
    layer.send_nowait("c", msg(1))  # wakes "first"...
    first.cancel()  # ...which is cancelled before it runs, and passes the wake-up on
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == msg(1)
    assert layer.statistics() == LayerStatistics(sent=1, delivered=1)


async def test_flush_clears_everything_but_keeps_waiting_receivers() -> None:
    layer = InMemoryChannelLayer()
    await layer.send("a", msg(1))
    await layer.group_add("room", "b")
    got: list[dict[str, Any]] = []
    async with anyio.create_task_group() as tg:

        async def receiver() -> None:
            got.append(await layer.receive("waiting"))

        tg.start_soon(receiver)
        await anyio.wait_all_tasks_blocked()
        await layer.flush()
        stats = layer.statistics()
        assert (stats.channels, stats.groups, stats.group_members) == (1, 0, 0)
        with pytest.raises(anyio.WouldBlock):
            layer.receive_nowait("a")
        await layer.send("waiting", msg(2))
    assert got == [msg(2)]
    assert layer.statistics().channels == 0


async def test_close_fails_waiting_receivers_and_leaves_the_layer_usable() -> None:
    layer = InMemoryChannelLayer()
    await layer.group_add("room", "x")
    errors: list[BaseException] = []
    async with anyio.create_task_group() as tg:

        async def receiver() -> None:
            try:
                await layer.receive("x")
            except anyio.ClosedResourceError as exc:
                errors.append(exc)

        tg.start_soon(receiver)
        await anyio.wait_all_tasks_blocked()
        await layer.close()
    assert len(errors) == 1
    assert layer.statistics() == LayerStatistics()
    await layer.send("x", msg(1))
    assert await layer.receive("x") == msg(1)


async def test_an_expired_unread_channel_leaves_its_groups(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=10, clock=clock)
    await layer.group_add("room", "dead")
    await layer.group_add("lobby", "dead")
    await layer.group_add("room", "alive")
    await layer.group_send("room", msg(1))
    assert layer.receive_nowait("alive") == msg(1)
    clock.advance(11)
    stats = layer.statistics()  # "dead" never read its message: presumed dead, as in Channels
    assert (stats.expired, stats.channels, stats.groups, stats.group_members) == (1, 0, 1, 1)
    assert "channel 'dead' left 2 group(s): its messages expired unread" in caplog.text


async def test_abandoned_channels_are_reclaimed_without_a_receiver() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=60, clock=clock)
    count = 100_000
    for i in range(count):
        await layer.send(f"abandoned.{i}", msg(i))
    registry = registry_of(layer)  # the internals, to prove nothing is left behind
    assert registry.kept() == (count, 0, 0)
    clock.advance(61)
    operations = 0
    while registry.kept()[0] or registry.scheduled() > 1:  # traffic elsewhere
        layer.send_nowait("busy", msg())
        layer.receive_nowait("busy")
        operations += 2
        assert operations <= count // 8 + 512, "reclaiming must keep pace with operations"
    assert registry.scheduled() == 1  # "busy"'s entry, not yet due
    assert registry.kept() == (0, 0, IDLE_CACHE)
    stats = layer.statistics()
    assert (stats.sent, stats.expired, stats.channels) == (count + operations // 2, count, 0)


# After ``expiry``, receive() and group_send() reclaim what is due, as Channels' do.


async def test_expired_unread_channels_are_gone_after_a_receive_as_in_channels() -> None:
    """Channels' ``test_expiry_unread``, on an injected clock."""
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=0.1, clock=clock)
    await layer.send("test-channel-1", {"type": "message.1"})
    clock.advance(0.2)
    await layer.send("test-channel-2", {"type": "message.2"})
    assert len(layer.channels) == 2  # send alone reclaims nothing, as in Channels
    assert (await layer.receive("test-channel-2"))["type"] == "message.2"
    assert len(layer.channels) == 0


async def test_two_expired_channels_are_gone_after_a_receive_on_one() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=10, clock=clock)
    await layer.send("one", msg(1))
    await layer.send("two", msg(2))
    clock.advance(11)
    async with anyio.create_task_group() as tg:
        tg.start_soon(layer.receive, "one")
        await anyio.wait_all_tasks_blocked()
        assert list(layer.channels) == ["one"], "'two' was reclaimed; 'one' has a receiver"
        assert list(layer.channels["one"]) == []
        tg.cancel_scope.cancel()
    assert len(layer.channels) == 0
    stats = layer.statistics()
    assert (stats.expired, stats.channels) == (2, 0)


async def test_group_send_reclaims_expired_members_first_as_in_channels() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=10, clock=clock)
    await layer.group_add("room", "dead")
    await layer.group_add("room", "alive")
    await layer.group_send("room", msg(1))
    assert layer.receive_nowait("alive") == msg(1)
    clock.advance(11)
    await layer.group_send("room", msg(2))
    assert list(layer.groups["room"]) == ["alive"]
    assert [message for _, message in layer.channels["alive"]] == [msg(2)]
    assert "dead" not in layer.channels


async def test_a_receiver_whose_messages_expired_keeps_its_groups() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=10, clock=clock)
    await layer.group_add("room", "me")
    await layer.group_send("room", msg(1))
    clock.advance(11)
    async with anyio.create_task_group() as tg:
        tg.start_soon(layer.receive, "me")
        await anyio.wait_all_tasks_blocked()
        assert list(layer.groups["room"]) == ["me"]
        await layer.group_send("room", msg(2))
    assert layer.statistics().expired == 1


async def test_a_channel_with_a_backlog_is_reclaimed_when_its_last_message_expires() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=10, clock=clock)
    await layer.send("backlog", msg(1))
    clock.advance(5)
    await layer.send("backlog", msg(2))
    clock.advance(1)
    await layer.send("later", msg(3))
    clock.advance(4.5)  # msg(1) has expired, msg(2) and msg(3) have not
    await layer.group_send("nobody", msg())
    assert [message for _, message in layer.channels["backlog"]] == [msg(2)]
    clock.advance(5)  # msg(2) has expired, msg(3) has not
    await layer.group_send("nobody", msg())
    assert list(layer.channels) == ["later"]


async def test_one_call_reclaims_a_bounded_number_of_due_channels() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=10, clock=clock)
    count = 2 * DUE_BUDGET + 100
    for i in range(count):
        layer.send_nowait(f"abandoned.{i}", msg(i))
    clock.advance(11)
    left = count
    while left:
        await layer.group_send("nobody", msg())
        left = max(0, left - DUE_BUDGET)
        assert len(layer.channels) == left
    assert layer.statistics().expired == count


async def test_discard_channel_leaves_groups_and_counts_what_it_drops() -> None:
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.send(channel, {"type": "a"})
    await layer.group_send("g", {"type": "b"})
    assert await layer.discard_channel(channel) == 2
    stats = layer.statistics()
    assert (stats.discarded, stats.channels, stats.group_members) == (2, 0, 0)
    assert await layer.discard_channel(channel) == 0


async def test_discard_channel_nowait_does_the_same_without_yielding() -> None:
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.group_send("g", {"type": "b"})
    assert layer.discard_channel_nowait(channel) == 1  # a plain call: nothing to await
    stats = layer.statistics()
    assert (stats.discarded, stats.channels, stats.group_members) == (1, 0, 0)
    with pytest.raises(TypeError):
        layer.discard_channel_nowait("not a name")


async def test_channels_and_groups_can_be_inspected_as_in_channels() -> None:
    layer = InMemoryChannelLayer()
    await layer.send("a", msg(1))
    await layer.group_add("g", "b")
    assert list(layer.channels) == ["a"]
    assert [message for _, message in layer.channels["a"]] == [msg(1)]
    assert set(layer.groups) == {"g"}
    assert list(layer.groups["g"]) == ["b"]
    with pytest.raises(TypeError):
        layer.groups["h"] = {}  # type: ignore[index]
