"""``InMemoryChannelLayer.call_on_message``: start a reader only when a message comes."""

from __future__ import annotations

import anyio
import pytest
from anyio.lowlevel import checkpoint

from achannels.layers import InMemoryChannelLayer
from achannels.layers._registry import IDLE_CACHE
from tests.layers.memory_helpers import msg

pytestmark = pytest.mark.anyio


class Bell:
    """A notify callback that counts its calls."""

    def __init__(self) -> None:
        self.rung = 0

    def __call__(self) -> None:
        self.rung += 1


async def test_a_send_rings_once_and_the_message_stays_queued() -> None:
    layer = InMemoryChannelLayer()
    bell = Bell()
    assert layer.call_on_message("inbox", bell) is True
    assert bell.rung == 0
    await layer.send("inbox", msg(1))
    await layer.send("inbox", msg(2))
    assert bell.rung == 1  # once: the reader it starts drains the rest
    assert [layer.receive_nowait("inbox")["n"] for _ in range(2)] == [1, 2]


async def test_a_group_send_rings_each_member_that_nobody_reads() -> None:
    layer = InMemoryChannelLayer()
    bells = {name: Bell() for name in ("a", "b")}
    for name, bell in bells.items():
        await layer.group_add("room", name)
        assert layer.call_on_message(name, bell)
    await layer.group_add("room", "c")  # no bell: its message just waits
    await layer.group_send("room", msg(7))
    assert [bell.rung for bell in bells.values()] == [1, 1]
    assert layer.receive_nowait("c")["n"] == 7


async def test_a_waiting_receiver_gets_the_message_instead() -> None:
    layer = InMemoryChannelLayer()
    bell = Bell()
    got: list[int] = []
    async with anyio.create_task_group() as tg:

        async def receiver() -> None:
            got.append((await layer.receive("inbox"))["n"])

        tg.start_soon(receiver)
        await anyio.wait_all_tasks_blocked()
        assert layer.call_on_message("inbox", bell)
        await layer.send("inbox", msg(3))
    assert got == [3]
    assert bell.rung == 0


async def test_nothing_is_arranged_when_a_message_is_already_queued() -> None:
    layer = InMemoryChannelLayer()
    bell = Bell()
    await layer.send("inbox", msg(1))
    assert layer.call_on_message("inbox", bell) is False
    await layer.send("inbox", msg(2))
    assert bell.rung == 0


async def test_discard_and_close_forget_it_and_flush_keeps_it() -> None:
    layer = InMemoryChannelLayer()
    discarded, closed, flushed = Bell(), Bell(), Bell()
    layer.call_on_message("one", discarded)
    await layer.discard_channel("one")
    await layer.send("one", msg(1))
    layer.call_on_message("two", flushed)
    await layer.flush()
    await layer.send("two", msg(2))
    layer.call_on_message("three", closed)
    await layer.close()
    await layer.send("three", msg(3))
    assert (discarded.rung, flushed.rung, closed.rung) == (0, 1, 0)


async def test_an_armed_channel_is_kept_however_many_channels_come_and_go() -> None:
    # An armed channel outside any group must not fall out of the idle cache: a new
    # channel object under its name would queue messages nobody is told about.
    layer = InMemoryChannelLayer()
    bell = Bell()
    layer.call_on_message("armed", bell)
    with pytest.raises(anyio.WouldBlock):  # a look at the empty channel lets go of it...
        layer.receive_nowait("armed")
    for n in range(IDLE_CACHE + 10):  # ...and then these would push it out
        await layer.send(f"other{n}", msg(n))
        layer.receive_nowait(f"other{n}")
    await layer.send("armed", msg(0))
    assert bell.rung == 1


async def test_an_invalid_name_is_refused() -> None:
    layer = InMemoryChannelLayer()
    with pytest.raises(TypeError):
        layer.call_on_message("not valid!", Bell())
    await checkpoint()
