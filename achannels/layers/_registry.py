"""The memory layer's state: channels, groups and counters, and reclaiming them (sans-IO).

A channel is a FIFO of ``(expires_at, message)`` plus the receivers parked on it. It
is *active* (listed by :meth:`Registry.buffers`, counted in ``statistics().channels``)
only while it holds messages or receivers. An inactive channel object is kept for
reuse: by its groups while it is a member of any, so ``group_send`` delivers to the
objects a group holds, with no lookup, re-creation or name check per member; or else
in a small bounded idle cache, so a consumer that drains its channel and waits again
reuses it. A name has at most one channel object.

Wake-ups: each queued message wakes at most one parked receiver and ``woken`` counts
receivers woken but not yet run. A woken receiver that is cancelled before it runs
passes its wake-up on, so a message is never stranded while someone waits.

The registry keeps no setting of the layer: each queued item carries its own
``expires_at``, and the layer passes the time, ``group_expiry`` and capacities in,
so a setting changed on the layer applies to every path. What may come due is
scheduled in :mod:`achannels.layers._reaper`; the registry reclaims what that hands
back (the layer's module docs say when).

Nothing here holds a reference back to what holds it (a group holds its members'
channels, a channel only its groups' names), so none of it needs the cyclic garbage
collector.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable
from copy import deepcopy
from typing import Final, TypeAlias

import anyio

from achannels.layers._base import LayerMessage, LayerStatistics
from achannels.layers._reaper import DUE_BUDGET, Reaper

__all__ = ["IDLE_CACHE", "Channel", "Group", "Item", "Registry"]

logger = logging.getLogger("achannels.layers")

IDLE_CACHE: Final = 1024  # emptied channels outside any group kept for reuse

#: A queued message with the time it expires.
Item: TypeAlias = tuple[float, LayerMessage]


class _NoItems(deque[Item]):
    """The buffer of every channel holding nothing: an empty deque is ~600 bytes."""

    __slots__ = ()

    def append(self, item: Item) -> None:
        raise RuntimeError("a channel's buffer is made (Channel.make_buffer) before it holds items")


NO_ITEMS: Final[deque[Item]] = _NoItems()


class Channel:
    """One channel: a FIFO of ``(expires_at, message)`` and the receivers parked on it."""

    __slots__ = (
        "active",
        "buffer",
        "capacity",
        "closed",
        "groups",
        "name",
        "notify",
        "waiters",
        "woken",
    )

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity  # the layer's capacity for ``name``, see Registry.resize
        # Made for the first message, given back once the channel is released: an idle
        # member of a group keeps none.
        self.buffer: deque[Item] = NO_ITEMS
        self.waiters: dict[anyio.Event, None] = {}  # parked receivers, oldest first
        self.woken = 0  # receivers woken but not yet run: they still count as interested
        self.closed = False
        self.active = False  # listed in the registry: holds messages or receivers
        # Called once, in place of waking a receiver, when a message arrives and nobody
        # waits: a connection starts its reader then, so an idle one keeps no task.
        self.notify: Callable[[], None] | None = None
        # The names of its groups (names: no reference cycle), made on the first join:
        # most channels join none. A list, not a set: most members are in one or two
        # groups, and a small set costs ~130 bytes more than a small list; a member
        # leaving all its groups leaves from the end, in constant time per group.
        self.groups: list[str] | None = None

    def wake_one(self) -> None:
        """Wake the receiver that has waited longest."""
        event = next(iter(self.waiters))
        del self.waiters[event]
        self.woken += 1
        event.set()

    def make_buffer(self) -> deque[Item]:
        """Return the buffer, made first if the channel has none."""
        if self.buffer is NO_ITEMS:
            self.buffer = deque()
        return self.buffer

    def ring(self) -> None:
        """Call (and forget) :attr:`notify`: a message arrived and nobody waits."""
        notify, self.notify = self.notify, None
        if notify is not None:
            notify()


class Group:
    """One group: member channels mapped to their join time, oldest first."""

    __slots__ = ("members", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[Channel, float] = {}


class Registry:
    """Channels, groups and counters of one memory layer.

    Channels are handed out by :meth:`find`, :meth:`find_active` and :meth:`create`
    and come back as arguments; everything else about them stays in this module.

    Attributes:
        find_active: return the channel called ``name`` if it holds messages or
            receivers, else ``None``.
        tick: count ``operations``; return the budget for :meth:`sweep` when one is
            due, else 0 (the reaper's :meth:`~achannels.layers._reaper.Reaper.tick`).
    """

    def __init__(self) -> None:
        self._channels: dict[str, Channel] = {}  # the active ones
        self._joined: dict[str, Channel] = {}  # members of at least one group
        self._idle: dict[str, Channel] = {}  # recently emptied non-members, oldest first
        self._groups: dict[str, Group] = {}
        self._reaper: Reaper[str, Group] = Reaper()
        # Channel names with an entry in the reaper's schedule: names, not channels, so
        # an entry keeps no channel alive and a re-created channel is not armed twice.
        self._armed: set[str] = set()
        self._members = 0
        self._sent = self._delivered = self._dropped_full = self._expired = 0
        self._discarded = 0
        # Bound once: each runs in every send or receive.
        self.find_active: Callable[[str], Channel | None] = self._channels.get
        self.tick: Callable[[int], int] = self._reaper.tick

    # Channels

    def find(self, name: str) -> Channel | None:
        """Return the channel object called ``name``, if one is kept.

        One found in the idle cache leaves it: the caller is about to use it.
        """
        return self._channels.get(name) or self._joined.get(name) or self._idle.pop(name, None)

    def knows(self, name: str) -> bool:
        """Whether a channel object called ``name`` is kept (active, a member, or idle)."""
        return name in self._channels or name in self._joined or name in self._idle

    def create(self, name: str, capacity: int) -> Channel:
        """Return a new channel (the caller checked that :meth:`find` has none)."""
        return Channel(name, capacity)

    def offer(self, ch: Channel, item: Item, now: float, *, copy: bool) -> bool:
        """Queue ``item`` as :meth:`put` does if ``ch`` has room; return whether it had.

        Expired messages are dropped to make room. With ``copy``, the message is
        deep-copied once there is room.
        """
        if len(ch.buffer) >= ch.capacity and not self._drop_expired(ch, now):
            return False
        self.put(ch, (item[0], deepcopy(item[1])) if copy else item)
        return True

    def put(self, ch: Channel, item: Item) -> None:
        """Queue ``item`` (the caller checked for room), count it and wake one receiver."""
        if not ch.active:
            self._activate(ch)
        ch.make_buffer().append(item)
        self._sent += 1
        if ch.name not in self._armed:
            self._armed.add(ch.name)
            self._reaper.arm_channel(ch.name, item[0])
        if ch.waiters:
            ch.wake_one()
        elif ch.notify is not None:
            ch.ring()

    def take(self, ch: Channel, clock: Callable[[], float]) -> LayerMessage | None:
        """Dequeue the oldest unexpired message of ``ch``, or return ``None``."""
        buffer = ch.buffer
        if buffer and buffer[0][0] < (now := clock()):
            self._drop_expired(ch, now)
        if not buffer:
            return None
        message = buffer.popleft()[1]
        self._delivered += 1
        if ch.waiters:
            self._wake_if_owed(ch)
        if not buffer:
            self.release(ch)
        return message

    def park(self, ch: Channel) -> anyio.Event:
        """Add a receiver waiting on ``ch``; return the event that wakes it."""
        if not ch.active:
            self._activate(ch)
        event = anyio.Event()
        ch.waiters[event] = None
        return event

    def call_on_message(self, ch: Channel, notify: Callable[[], None]) -> bool:
        """Arrange for ``notify()`` to be called once when a message reaches ``ch``.

        Only while nobody waits on ``ch``: a message for a parked receiver wakes it
        instead. ``notify`` runs synchronously inside the send; it must not raise. Returns
        ``False``, arranging nothing, if a message is queued already.
        """
        if ch.buffer:
            return False
        if not ch.active:
            self._activate(ch)
        ch.notify = notify
        return True

    def resume(self, ch: Channel) -> bool:
        """Count a woken receiver of ``ch`` as running; return whether ``ch`` is open."""
        ch.woken -= 1
        return not ch.closed

    def abandon(self, ch: Channel, event: anyio.Event) -> None:
        """Forget a receiver that stopped waiting, passing on a wake-up it got."""
        if event in ch.waiters:
            del ch.waiters[event]
        else:  # woken for a message it will not take: wake someone else
            ch.woken -= 1
            self._wake_if_owed(ch)
        self.release(ch)

    def release(self, ch: Channel) -> None:
        """Make ``ch`` inactive if nothing is queued and nobody waits."""
        if ch.active and not ch.buffer and not ch.waiters and not ch.woken and ch.notify is None:
            ch.active = False
            ch.buffer = NO_ITEMS
            del self._channels[ch.name]
            if not ch.groups:
                self._cache_idle(ch)

    def discard(self, name: str) -> int:
        """Release channel ``name``: leave its groups, drop and count what is queued."""
        ch = self.find(name)
        if ch is None:
            return 0
        self._leave_all_groups(ch)
        ch.notify = None
        dropped = len(ch.buffer)
        ch.buffer.clear()
        self._discarded += dropped
        self.release(ch)
        return dropped

    def resize(self, capacity_of: Callable[[str], int]) -> None:
        """Give every kept channel its capacity ``capacity_of(name)`` (capacities changed)."""
        for ch in itertools.chain(self._channels.values(), self._joined.values()):
            ch.capacity = capacity_of(ch.name)
        self._idle.clear()  # cheaper to forget than to resize

    def _activate(self, ch: Channel) -> None:
        ch.active = True
        self._channels[ch.name] = ch

    def _cache_idle(self, ch: Channel) -> None:
        idle = self._idle
        idle[ch.name] = ch
        if len(idle) > IDLE_CACHE:
            del idle[next(iter(idle))]

    def _wake_if_owed(self, ch: Channel) -> None:
        # More messages queued than receivers woken: wake one more.
        if ch.waiters and len(ch.buffer) > ch.woken:
            ch.wake_one()

    def _drop_expired(self, ch: Channel, now: float) -> int:
        buffer = ch.buffer
        dropped = 0
        while buffer and buffer[0][0] < now:
            buffer.popleft()
            dropped += 1
        self._expired += dropped
        return dropped

    # Groups

    def add_member(self, group: str, ch: Channel, now: float) -> None:
        """Add ``ch`` to ``group`` or refresh its join time."""
        grp = self._groups.get(group)
        if grp is None:
            grp = self._groups[group] = Group(group)
            self._reaper.arm_group(grp, now)
        if grp.members.pop(ch, None) is None:
            self._members += 1
            if ch.groups is None:
                ch.groups = []
            if not ch.groups:
                self._joined[ch.name] = ch
            ch.groups.append(group)
        grp.members[ch] = now  # (re)inserted last: members stay in join order

    def discard_member(self, group: str, name: str) -> None:
        """Remove channel ``name`` from ``group`` if it is a member."""
        grp = self._groups.get(group)
        ch = self._joined.get(name)
        if grp is not None and ch is not None and ch in grp.members:
            self._remove_member(grp, ch)

    def fan_out(
        self, group: str, item: Item, now: float, *, drop_oldest: bool, copy: bool
    ) -> tuple[int, list[str]]:
        """Queue ``item`` on every member of ``group``.

        A full member is skipped, or with ``drop_oldest`` loses its oldest message.
        Without ``copy`` every member shares ``item``.

        Returns:
            The number of members and the names of those found full.
        """
        grp = self._groups.get(group)
        if grp is None:
            return 0, []
        full: list[str] = []
        channels, armed = self._channels, self._armed
        for ch in grp.members:  # put() inlined: the loop runs once per member
            buffer = ch.buffer
            if buffer is NO_ITEMS:
                buffer = ch.buffer = deque()
            elif len(buffer) >= ch.capacity and not self._drop_expired(ch, now):
                full.append(ch.name)
                if not drop_oldest:
                    continue
                buffer.popleft()
            if not ch.active:
                ch.active = True
                channels[ch.name] = ch
            buffer.append((item[0], deepcopy(item[1])) if copy else item)
            if ch.name not in armed:
                armed.add(ch.name)
                self._reaper.arm_channel(ch.name, item[0])
            if ch.waiters:
                ch.wake_one()
            elif ch.notify is not None:
                ch.ring()
        members = len(grp.members)
        self._sent += members if drop_oldest else members - len(full)
        self._dropped_full += len(full)
        return members, full

    def _remove_member(self, grp: Group, ch: Channel) -> None:
        del grp.members[ch]
        self._members -= 1
        groups = ch.groups
        if groups:  # always true for a member; narrows the type
            if groups[-1] == grp.name:
                groups.pop()
            else:
                groups.remove(grp.name)
        if not ch.groups:
            del self._joined[ch.name]
            if not ch.active:
                self._cache_idle(ch)
        if not grp.members:
            del self._groups[grp.name]

    def _leave_all_groups(self, ch: Channel) -> None:
        while ch.groups:  # from the end: each removal takes constant time
            self._remove_member(self._groups[ch.groups[-1]], ch)

    # Reclaiming

    def sweep(self, now: float, budget: int, *, group_expiry: float) -> None:
        """Reclaim up to about ``budget`` due entries."""
        budget = self._expire_channels(now, budget)
        self._expire_groups(now, budget, group_expiry)

    def sweep_due(self, now: float, *, group_expiry: float, receiving: str | None = None) -> None:
        """Reclaim what is due, up to ``DUE_BUDGET`` entries of each kind.

        The ``receiving`` channel's expired messages are dropped first: it has a
        receiver, so it is alive and keeps its groups. When nothing is due, this is
        a few comparisons.
        """
        if receiving is not None and (own := self._channels.get(receiving)) is not None:
            self._drop_expired(own, now)
        if self._reaper.channels_due(now):
            self._expire_channels(now, DUE_BUDGET)
        if self._reaper.groups_due(now, group_expiry):
            self._expire_groups(now, DUE_BUDGET, group_expiry)

    def _expire_channels(self, now: float, budget: int) -> int:
        while budget > 0 and (name := self._reaper.pop_channel(now)) is not None:
            budget -= 1
            self._armed.discard(name)
            ch = self._channels.get(name)
            if ch is not None:  # else emptied since it was armed
                self._expire_channel(ch, now)
        return budget

    def _expire_channel(self, ch: Channel, now: float) -> None:
        if self._drop_expired(ch, now) and not ch.waiters and not ch.woken and ch.groups:
            # Unread and nobody listening: presumed dead, as in Channels. Say so: a
            # live consumer stuck for longer than ``expiry`` loses its groups.
            logger.warning(
                "channel %r left %d group(s): its messages expired unread", ch.name, len(ch.groups)
            )
            self._leave_all_groups(ch)
        if ch.buffer:
            self._armed.add(ch.name)
            self._reaper.arm_late(ch.name, ch.buffer[0][0])
        else:
            self.release(ch)

    def _expire_groups(self, now: float, budget: int, group_expiry: float) -> None:
        while budget > 0 and (grp := self._reaper.pop_group(now, group_expiry)) is not None:
            budget -= 1
            if self._groups.get(grp.name) is grp:  # else emptied since it was armed
                budget -= self._lapse(grp, now, budget, group_expiry)

    def _lapse(self, grp: Group, now: float, budget: int, group_expiry: float) -> int:
        # Members are in join order, so the lapsed ones are a prefix.
        lapsed: list[Channel] = []
        for ch, joined in grp.members.items():
            if joined + group_expiry >= now or len(lapsed) >= budget:
                break
            lapsed.append(ch)
        for ch in lapsed:
            self._remove_member(grp, ch)
        if lapsed:
            logger.info(
                "%d membership(s) of group %r lapsed after group_expiry", len(lapsed), grp.name
            )
        if grp.members:
            self._reaper.arm_group(grp, next(iter(grp.members.values())))
        return len(lapsed)

    # The whole registry

    def clear(self) -> None:
        """Drop every queued message and group; keep the channels someone reads."""
        self._reaper.clear()
        self._armed.clear()
        for ch in self._joined.values():
            ch.groups = None
        self._joined.clear()
        self._groups.clear()
        self._members = 0
        for ch in list(self._channels.values()):
            ch.buffer.clear()
            self.release(ch)
        self._idle.clear()

    def close(self) -> None:
        """Clear everything and wake every parked receiver to find its channel closed.

        A pending :meth:`call_on_message` is forgotten: nobody waits there yet.
        """
        for ch in self._channels.values():
            ch.notify = None
            ch.closed = True
            ch.active = False
            ch.buffer.clear()
            ch.woken += len(ch.waiters)
            for event in ch.waiters:
                event.set()
            ch.waiters.clear()
        self._channels.clear()
        self.clear()

    def statistics(self) -> LayerStatistics:
        """Return the counters (the caller sweeps first)."""
        return LayerStatistics(
            sent=self._sent,
            delivered=self._delivered,
            dropped_full=self._dropped_full,
            expired=self._expired,
            discarded=self._discarded,
            channels=len(self._channels),
            groups=len(self._groups),
            group_members=self._members,
        )

    def buffers(self) -> dict[str, deque[Item]]:
        """Return the active channels' names and queues."""
        return {name: ch.buffer for name, ch in self._channels.items()}

    def memberships(self) -> dict[str, dict[str, float]]:
        """Return each group's member channel names and join times."""
        return {
            name: {ch.name: joined for ch, joined in grp.members.items()}
            for name, grp in self._groups.items()
        }

    # Introspection, for tests

    def waiting(self, name: str) -> int:
        """Return how many receivers are parked on channel ``name``."""
        ch = self._channels.get(name)
        return 0 if ch is None else len(ch.waiters)

    def kept(self) -> tuple[int, int, int]:
        """Return how many channel objects are active, members and idle (kept for reuse)."""
        return len(self._channels), len(self._joined), len(self._idle)

    def scheduled(self) -> int:
        """Return how many entries the reaper holds."""
        return len(self._reaper)
