"""The memory layer's state: channels, groups, and their lazy expiry (never awaits).

Expiry needs no background task. Two queues hold what may come due:

* ``due_channels``: one ``(expires_at, name)`` entry per channel name that had a
  message queued since its entry was last processed. With one ``expiry`` for every
  message and a monotonic clock the queue is nearly sorted; an entry re-queued with a
  later message's expiry may be processed up to ``expiry`` late, which only delays
  reclaiming memory (``take`` checks expiry itself).
* ``due_groups``: a heap of ``(due, seq, group)``, one entry per group, due when its
  oldest membership lapses. Members are kept in join order, so lapsed ones are a
  prefix of the group's ``dict``.

:meth:`Registry.tick` runs :meth:`Registry.sweep` every ``SWEEP_EVERY`` operations
with a budget proportional to the operations since the last sweep, so reclaiming
is amortised and keeps pace with whatever creates work.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable
from typing import Final

import anyio

from achannels.layers._base import LayerMessage
from achannels.layers._names import require_valid_channel_name

__all__ = ["SWEEP_EVERY", "Channel", "Group", "Registry"]

SWEEP_EVERY: Final = 128  # operations between two sweeps
SWEEP_RATIO: Final = 8  # due entries a sweep may process per operation since the last
IDLE_CACHE: Final = 1024  # empty channels kept for reuse: a consumer's next receive()


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
    """Channels, groups, counters and the sweep that reclaims them.

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
        self.idle: dict[str, Channel] = {}  # recently emptied ones, oldest first, bounded
        self.groups: dict[str, Group] = {}
        self.groups_of: dict[str, set[str]] = {}  # channel name -> names of its groups
        self.due_channels: deque[tuple[float, str]] = deque()
        self.armed: set[str] = set()  # channel names with an entry in due_channels
        self.due_groups: list[tuple[float, int, Group]] = []
        self.members = 0
        self.sent = self.delivered = self.dropped_full = self.expired = 0
        self._seq = itertools.count()
        self._ops = 0

    # Channels

    def open(self, name: str) -> Channel:
        """Return the channel called ``name``, creating it if needed.

        Raises:
            TypeError: ``name`` is not a valid channel name (checked on creation only:
                a known channel was checked when it was created).
        """
        ch = self.channels.get(name)
        if ch is None:
            ch = self.idle.pop(name, None)
            if ch is None:
                ch = Channel(require_valid_channel_name(name), self.get_capacity(name))
            self.channels[name] = ch
        return ch

    def release(self, ch: Channel) -> None:
        """Retire ``ch`` to the idle cache if it holds no state (nothing queued, nobody
        waiting), so that a consumer's next ``receive()`` does not rebuild it."""
        if not ch.buffer and not ch.waiters and not ch.woken and not ch.closed:
            del self.channels[ch.name]
            idle = self.idle
            idle[ch.name] = ch
            if len(idle) > IDLE_CACHE:
                del idle[next(iter(idle))]

    def put(self, ch: Channel, item: tuple[float, LayerMessage]) -> None:
        """Queue ``item`` (room was checked by the caller) and wake one receiver."""
        ch.buffer.append(item)
        if ch.name not in self.armed:
            self.armed.add(ch.name)
            self.due_channels.append((item[0], ch.name))
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

    # Groups

    def add_member(self, group: str, channel: str, now: float) -> None:
        """Add ``channel`` to ``group`` or refresh its join time."""
        grp = self.groups.get(group)
        if grp is None:
            grp = self.groups[group] = Group(group)
            self._arm_group(grp, now + self.group_expiry)
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

    def _arm_group(self, grp: Group, due: float) -> None:
        heapq.heappush(self.due_groups, (due, next(self._seq), grp))

    # Reclaiming

    def clear(self) -> None:
        """Drop all queued messages and groups; keep channels that have receivers."""
        for ch in list(self.channels.values()):
            ch.buffer.clear()
            self.release(ch)
        self.idle.clear()
        self.groups.clear()
        self.groups_of.clear()
        self.members = 0
        self.due_channels.clear()
        self.armed.clear()
        self.due_groups.clear()

    def tick(self, operations: int) -> None:
        """Count ``operations``; every ``SWEEP_EVERY`` of them, sweep in proportion."""
        self._ops += operations
        if self._ops >= SWEEP_EVERY:
            budget = self._ops * SWEEP_RATIO
            self._ops = 0
            self.sweep(self.clock(), budget)

    def sweep(self, now: float, budget: int) -> None:
        """Reclaim up to ``budget`` due entries: expired messages, channels, members."""
        budget = self._expire_channels(now, budget)
        self.expire_groups(now, budget)

    def _expire_channels(self, now: float, budget: int) -> int:
        due = self.due_channels
        while budget > 0 and due and due[0][0] < now:
            budget -= 1
            name = due.popleft()[1]
            self.armed.discard(name)
            ch = self.channels.get(name)
            if ch is None:
                continue
            if self.drop_expired(ch, now) and not ch.waiters and not ch.woken:
                self.leave_all_groups(name)  # unread and nobody listening: presumed dead
            if ch.buffer:
                self.armed.add(name)
                due.append((ch.buffer[0][0], name))
            else:
                self.release(ch)
        return budget

    def expire_groups(self, now: float, budget: int) -> None:
        """Remove up to about ``budget`` memberships older than ``group_expiry``."""
        heap = self.due_groups
        while budget > 0 and heap and heap[0][0] < now:
            budget -= 1
            grp = heapq.heappop(heap)[2]
            if self.groups.get(grp.name) is not grp:
                continue  # emptied (and maybe re-created) since it was armed
            lapsed: list[str] = []
            for channel, joined in grp.members.items():
                if joined + self.group_expiry >= now or len(lapsed) >= budget:
                    break
                lapsed.append(channel)
            budget -= len(lapsed)
            for channel in lapsed:
                self.remove_member(grp, channel)
            if grp.members:
                self._arm_group(grp, next(iter(grp.members.values())) + self.group_expiry)
