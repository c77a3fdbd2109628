"""The memory layer's state: channels, groups and counters (sans-IO, never awaits).

A channel is a FIFO of ``(expires_at, message)`` plus the receivers parked on it. It
exists in :attr:`Registry.channels` only while it holds messages or receivers; an
emptied channel moves to a small bounded idle cache, so that a consumer that drains
its channel and waits again reuses it instead of rebuilding (and re-validating) it.

Wake-ups: each queued message wakes at most one parked receiver and ``woken`` counts
receivers woken but not yet run. A woken receiver that is cancelled before it runs
passes its wake-up on, so a message is never stranded while someone waits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from copy import deepcopy
from typing import Final

import anyio

from achannels.layers._base import LayerMessage
from achannels.layers._names import require_valid_channel_name
from achannels.layers._reaper import Reaper

__all__ = ["Channel", "Group", "Registry"]

IDLE_CACHE: Final = 1024  # emptied channels kept for reuse


class Channel:
    """One channel: a FIFO of ``(expires_at, message)`` and the receivers parked on it."""

    __slots__ = ("buffer", "capacity", "closed", "name", "waiters", "woken")

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.buffer: deque[tuple[float, LayerMessage]] = deque()
        self.waiters: dict[anyio.Event, None] = {}  # parked receivers, oldest first
        self.woken = 0  # receivers woken but not yet run: they still count as interested
        self.closed = False

    def wake_one(self) -> None:
        """Wake the receiver that has waited longest."""
        event = next(iter(self.waiters))
        del self.waiters[event]
        self.woken += 1
        event.set()


class Group:
    """One group: member channel names mapped to their join time, oldest first."""

    __slots__ = ("members", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[str, float] = {}


class Registry:
    """Channels, groups and counters of one memory layer.

    Args:
        expiry: message lifetime in seconds.
        group_expiry: membership lifetime in seconds.
        get_capacity: the capacity of a channel, by name.
        clock: the monotonic clock.
    """

    def __init__(
        self,
        *,
        expiry: float,
        group_expiry: float,
        get_capacity: Callable[[str], int],
        clock: Callable[[], float],
    ) -> None:
        self.expiry = expiry
        self.group_expiry = group_expiry
        self.get_capacity = get_capacity
        self.clock = clock
        self.channels: dict[str, Channel] = {}  # channels with messages or receivers
        self.idle: dict[str, Channel] = {}  # recently emptied ones, oldest first
        self.groups: dict[str, Group] = {}
        self.groups_of: dict[str, set[str]] = {}  # channel name -> names of its groups
        self.members = 0
        self.sent = self.delivered = self.dropped_full = self.expired = self.discarded = 0
        self.reaper = Reaper(self)

    # Channels

    def open(self, name: str) -> Channel:
        """Return the channel called ``name``, creating it if needed.

        Raises:
            TypeError: ``name`` is not a valid channel name (checked on creation only).
        """
        ch = self.channels.get(name)
        if ch is None:
            ch = self.idle.pop(name, None)
            if ch is None:
                ch = Channel(require_valid_channel_name(name), self.get_capacity(name))
            self.channels[name] = ch
        return ch

    def release(self, ch: Channel) -> None:
        """Retire ``ch`` to the idle cache if nothing is queued and nobody waits."""
        if not ch.buffer and not ch.waiters and not ch.woken and not ch.closed:
            del self.channels[ch.name]
            idle = self.idle
            idle[ch.name] = ch
            if len(idle) > IDLE_CACHE:
                del idle[next(iter(idle))]

    def put(self, ch: Channel, item: tuple[float, LayerMessage]) -> None:
        """Queue ``item`` (the caller checked for room) and wake one receiver."""
        ch.buffer.append(item)
        self.reaper.arm_channel(ch.name, item[0])
        if ch.waiters:
            ch.wake_one()

    def take(self, ch: Channel) -> LayerMessage | None:
        """Dequeue the oldest unexpired message of ``ch``, or return ``None``."""
        buffer = ch.buffer
        if buffer and buffer[0][0] < (now := self.clock()):
            self.drop_expired(ch, now)
        if not buffer:
            return None
        message = buffer.popleft()[1]
        self.delivered += 1
        self.wake_if_owed(ch)
        self.release(ch)
        return message

    def wake_if_owed(self, ch: Channel) -> None:
        """Wake one more receiver if more messages are queued than receivers woken."""
        if ch.waiters and len(ch.buffer) > ch.woken:
            ch.wake_one()

    def drop_expired(self, ch: Channel, now: float) -> int:
        """Discard and count the expired messages at the head of ``ch``."""
        buffer = ch.buffer
        dropped = 0
        while buffer and buffer[0][0] < now:
            buffer.popleft()
            dropped += 1
        self.expired += dropped
        return dropped

    def fan_out(
        self, grp: Group, message: LayerMessage, now: float, *, drop_oldest: bool, copy: bool
    ) -> list[str]:
        """Queue ``message`` on every member of ``grp``; return the members found full.

        A full member is skipped, or with ``drop_oldest`` loses its oldest message.
        Without ``copy`` every member shares one ``(expires_at, message)`` tuple.
        """
        item = (now + self.expiry, message)
        full: list[str] = []
        for name in grp.members:
            ch = self.open(name)
            if len(ch.buffer) >= ch.capacity and not self.drop_expired(ch, now):
                full.append(name)
                if not drop_oldest:
                    continue
                ch.buffer.popleft()
            if copy:
                item = (item[0], deepcopy(message))
            self.put(ch, item)
        self.sent += len(grp.members) - (0 if drop_oldest else len(full))
        self.dropped_full += len(full)
        return full

    # Groups

    def add_member(self, group: str, channel: str, now: float) -> None:
        """Add ``channel`` to ``group`` or refresh its join time."""
        grp = self.groups.get(group)
        if grp is None:
            grp = self.groups[group] = Group(group)
            self.reaper.arm_group(grp, now + self.group_expiry)
        if grp.members.pop(channel, None) is None:
            self.members += 1
            self.groups_of.setdefault(channel, set()).add(group)
        grp.members[channel] = now  # (re)inserted last: members stay in join order

    def remove_member(self, grp: Group, channel: str) -> None:
        """Remove a member of ``grp``; forget the group when it becomes empty."""
        del grp.members[channel]
        self.members -= 1
        groups = self.groups_of[channel]
        groups.discard(grp.name)
        if not groups:
            del self.groups_of[channel]
        if not grp.members:
            del self.groups[grp.name]

    def leave_all_groups(self, channel: str) -> None:
        """Remove ``channel`` from every group it belongs to."""
        for name in self.groups_of.get(channel, set()).copy():
            self.remove_member(self.groups[name], channel)

    # Whole-layer operations

    def clear(self) -> None:
        """Drop every queued message and group; keep channels that have receivers."""
        for ch in list(self.channels.values()):
            ch.buffer.clear()
            self.release(ch)
        self.idle.clear()
        self.groups.clear()
        self.groups_of.clear()
        self.members = 0
        self.reaper.clear()

    def close(self) -> None:
        """Clear everything and wake every parked receiver to find its channel closed."""
        for ch in self.channels.values():
            ch.closed = True
            ch.buffer.clear()
            ch.woken += len(ch.waiters)
            for event in ch.waiters:
                event.set()
            ch.waiters.clear()
        self.channels.clear()
        self.clear()
