"""The memory layer's settings live on the layer only: a change applies to every path."""

from __future__ import annotations

import anyio
import pytest

from achannels.exceptions import ChannelFull
from achannels.layers import InMemoryChannelLayer
from tests.layers.memory_helpers import FakeClock, msg

pytestmark = pytest.mark.anyio


async def test_a_new_expiry_applies_to_group_send() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=60, clock=clock)
    await layer.group_add("room", "member")
    layer.expiry = 1
    await layer.group_send("room", msg(1))
    clock.advance(2)
    with pytest.raises(anyio.WouldBlock):
        layer.receive_nowait("member")
    assert layer.statistics().expired == 1


async def test_send_and_group_send_queue_with_the_same_expiry() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=60, clock=clock)
    await layer.group_add("room", "member")
    layer.expiry = 5
    await layer.send("member", msg(1))
    await layer.group_send("room", msg(2))
    assert [expires_at for expires_at, _ in layer.channels["member"]] == [1005.0, 1005.0]


async def test_a_lowered_expiry_still_reclaims_an_abandoned_member() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(expiry=60, clock=clock)
    await layer.send("queued.earlier", msg(0))  # due for a look in 60 s
    await layer.group_add("room", "dead")
    layer.expiry = 1
    await layer.group_send("room", msg(1))  # due for a look in 1 s: out of order
    clock.advance(2)
    stats = layer.statistics()
    assert (stats.expired, stats.groups, stats.group_members) == (1, 0, 0)
    assert list(layer.channels) == ["queued.earlier"]


async def test_a_lowered_group_expiry_applies_to_existing_memberships() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(group_expiry=100, clock=clock)
    await layer.group_add("room", "member")
    layer.group_expiry = 10
    clock.advance(11)
    await layer.group_send("room", msg(1))
    with pytest.raises(anyio.WouldBlock):
        layer.receive_nowait("member")
    stats = layer.statistics()
    assert (stats.sent, stats.groups, stats.group_members) == (0, 0, 0)


async def test_a_raised_group_expiry_keeps_existing_memberships() -> None:
    clock = FakeClock()
    layer = InMemoryChannelLayer(group_expiry=10, clock=clock)
    await layer.group_add("room", "member")
    layer.group_expiry = 100
    clock.advance(11)
    await layer.group_send("room", msg(1))
    assert layer.receive_nowait("member") == msg(1)
    assert layer.statistics().group_members == 1


async def test_a_new_capacity_applies_to_existing_channels() -> None:
    layer = InMemoryChannelLayer(capacity=1)
    await layer.group_add("room", "member")
    await layer.send("member", msg(0))
    layer.capacity = 3
    await layer.send("member", msg(1))
    await layer.group_send("room", msg(2))
    with pytest.raises(ChannelFull):
        await layer.send("member", msg(3))
    assert layer.statistics().dropped_full == 0


async def test_a_new_channel_capacity_applies_to_existing_channels() -> None:
    layer = InMemoryChannelLayer(capacity=5)
    await layer.group_add("room", "small.one")
    await layer.group_send("room", msg(0))
    assert layer.receive_nowait("small.one") == msg(0)  # its channel is now idle
    layer.channel_capacity = layer.compile_capacities({"small.*": 1})
    await layer.group_send("room", msg(1))
    await layer.group_send("room", msg(2))
    assert layer.statistics().dropped_full == 1
    with pytest.raises(ChannelFull):
        await layer.send("small.one", msg(3))
    assert layer.get_capacity("small.one") == 1
