"""``group_send`` delivers to the channels its groups hold, on asyncio and trio.

A group keeps its members' channel objects, so a member whose channel went idle
(drained, nobody waiting) is not re-created, nor its name checked again, for each
delivery, however many channels are idle; bounds, policies and counts are unchanged.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from achannels.layers import InMemoryChannelLayer, LayerStatistics, _registry
from achannels.layers._registry import IDLE_CACHE
from achannels.layers.memory import registry_of
from tests.layers.memory_helpers import FakeClock, msg

pytestmark = pytest.mark.anyio

MEMBERS = IDLE_CACHE + 100  # more idle channels than the idle cache keeps


@pytest.fixture
def created(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every channel object the memory layer creates."""
    names: list[str] = []
    original = _registry.Channel.__init__

    def counting_init(self: _registry.Channel, name: str, capacity: int) -> None:
        names.append(name)
        original(self, name, capacity)

    monkeypatch.setattr(_registry.Channel, "__init__", counting_init)
    return names


async def members(layer: InMemoryChannelLayer, count: int = MEMBERS) -> list[str]:
    names = [f"member.{i}" for i in range(count)]
    for name in names:
        await layer.group_add("room", name)
    return names


def drain(layer: InMemoryChannelLayer, names: list[str]) -> list[dict[str, Any]]:
    return [layer.receive_nowait(name) for name in names]


async def test_idle_members_channels_are_not_recreated(created: list[str]) -> None:
    layer = InMemoryChannelLayer()
    names = await members(layer)
    for n in range(3):
        await layer.group_send("room", msg(n))
        assert drain(layer, names) == [msg(n)] * MEMBERS
    assert created == names  # once each, at group_add
    assert registry_of(layer).kept() == (0, MEMBERS, 0)  # inactive, held by the group


async def test_a_member_that_leaves_goes_to_the_idle_cache(created: list[str]) -> None:
    layer = InMemoryChannelLayer()
    await layer.group_add("room", "member")
    await layer.group_add("lobby", "member")
    await layer.group_discard("room", "member")
    assert registry_of(layer).kept() == (0, 1, 0)  # still in the lobby
    await layer.group_discard("lobby", "member")
    assert registry_of(layer).kept() == (0, 0, 1)
    await layer.send("member", msg(1))
    assert layer.receive_nowait("member") == msg(1)
    assert created == ["member"]


async def test_send_and_group_send_share_a_members_channel() -> None:
    layer = InMemoryChannelLayer()
    await layer.group_add("room", "member")
    await layer.send("member", msg(1))
    await layer.group_send("room", msg(2))
    await layer.send("member", msg(3))
    assert drain(layer, ["member"] * 3) == [msg(1), msg(2), msg(3)]
    with pytest.raises(anyio.WouldBlock):
        layer.receive_nowait("member")
    assert layer.statistics() == LayerStatistics(
        sent=3, delivered=3, channels=0, groups=1, group_members=1
    )


async def test_a_receiver_parked_before_group_add_gets_group_messages() -> None:
    layer = InMemoryChannelLayer()
    got: list[dict[str, Any]] = []
    async with anyio.create_task_group() as tg:

        async def receiver() -> None:
            got.append(await layer.receive("member"))

        tg.start_soon(receiver)
        await anyio.wait_all_tasks_blocked()
        await layer.group_add("room", "member")
        await layer.group_send("room", msg(1))
    assert got == [msg(1)]


async def test_full_idle_and_expired_members_keep_their_semantics() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(capacity=1, expiry=10, clock=clock)
    names = await members(layer)
    await layer.group_send("room", msg(1))
    drain(layer, names[::2])  # even members idle, odd members full
    await layer.group_send("room", msg(2))
    stats = layer.statistics()
    assert (stats.sent, stats.dropped_full) == (MEMBERS + MEMBERS // 2, MEMBERS // 2)
    assert drain(layer, names) == [msg(2), msg(1)] * (MEMBERS // 2)
    await layer.group_send("room", msg(3))
    clock.advance(11)  # nobody read msg(3): every member is presumed dead
    stats = layer.statistics()
    assert (stats.expired, stats.channels, stats.groups, stats.group_members) == (MEMBERS, 0, 0, 0)
    assert registry_of(layer).kept() == (0, 0, IDLE_CACHE)


async def test_close_releases_idle_members() -> None:
    layer = InMemoryChannelLayer()
    names = await members(layer, 10)
    await layer.group_send("room", msg(1))
    drain(layer, names)
    await layer.close()
    assert registry_of(layer).kept() == (0, 0, 0)
    assert registry_of(layer).scheduled() == 0
    await layer.group_send("room", msg(2))
    assert layer.statistics().sent == 10  # the group is gone
