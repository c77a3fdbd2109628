"""The in-memory channel layer: one process, no server, bounded, and leak-free.

Each channel is a bounded FIFO with its parked receivers; a group is an ordered
``dict`` of member channel names. ``group_send`` to G members is G appends of one
shared ``(expires_at, message)`` tuple plus one ``Event.set()`` per member with a
receiver parked: no task and no copy per member.

**Messages are treated as immutable.** Unlike Channels, the layer does not deep-copy:
every receiver gets the very ``dict`` that was sent, so mutate neither a message you
sent nor one you received. ``copy_messages=True`` restores Channels' copy per delivery.

**Nothing grows without bound, and no task group is needed.** Expired messages,
channels abandoned with messages in them, and memberships older than ``group_expiry``
are reclaimed lazily, each once, so the work is amortised. As in Channels,
``receive()`` and ``group_send()`` first reclaim what has come due (up to 1024
entries of each kind a call, so no call pauses for long): after ``expiry``, a channel
whose messages expired unread is gone from :attr:`~InMemoryChannelLayer.channels` once
either is called. A sweep every 128 operations with a budget of 8 due entries per
operation (a group delivery counts as one) keeps pace with traffic that never
receives, and ``statistics()`` sweeps all that is due before counting. As in
Channels, a channel whose messages expire while nobody receives on it is presumed
dead and leaves its groups; a receiver that finds expired messages is alive, so its
memberships stay.

**A full member of a group never loses a message silently.** ``group_full_policy``
chooses what ``group_send`` does for a member whose channel is at capacity:

* ``"skip"`` (the default, as in Channels): the member misses this message;
* ``"drop_oldest"``: the member's oldest queued message is discarded to make room;
* ``"raise"``: like ``"skip"``, then, after every other member got the message,
  ``group_send`` raises :class:`~achannels.exceptions.ChannelFull`.

Every such drop is counted in ``statistics().dropped_full``; ``"skip"`` and
``"drop_oldest"`` also log a warning on the ``achannels.layers`` logger, at most once
per second, carrying the number dropped since the previous warning.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from types import MappingProxyType
from typing import Final, Literal, TypeAlias

import anyio
from anyio.lowlevel import checkpoint

from achannels.exceptions import ChannelFull
from achannels.layers._base import BaseChannelLayer, CapacityPattern, LayerMessage, LayerStatistics
from achannels.layers._drops import DropReporter
from achannels.layers._names import (
    require_valid_channel_name,
    require_valid_group_name,
    require_valid_message,
)
from achannels.layers._registry import Registry

__all__ = ["GroupFullPolicy", "InMemoryChannelLayer"]

GroupFullPolicy: TypeAlias = Literal["skip", "raise", "drop_oldest"]

_POLICIES: Final = ("skip", "raise", "drop_oldest")


class InMemoryChannelLayer(BaseChannelLayer):
    """A channel layer inside one process, for development, tests and single-process apps.

    Args:
        expiry: seconds a message may wait unread; older ones are discarded and counted
            in ``statistics().expired``.
        group_expiry: seconds after ``group_add`` (or the last ``group_add`` that
            refreshed it) a membership lapses.
        capacity: messages a channel holds before ``send`` raises ``ChannelFull``.
        channel_capacity: per-channel capacities by glob string or compiled regex,
            first match wins (this works, unlike Channels 4.3.2's memory layer).
        group_full_policy: ``"skip"``, ``"drop_oldest"`` or ``"raise"`` (module docs).
        copy_messages: deep-copy the message for every delivery, as Channels does.
        clock: the monotonic clock expiry is measured with (injectable for tests).

    Raises:
        ValueError: an invalid capacity, expiry or policy.

    Every coroutine method is a checkpoint that checks for cancellation before it acts,
    so a cancelled call has no effect. The layer is not thread-safe: use it from the
    event loop thread that created it.
    """

    extensions = ("groups", "flush")

    def __init__(
        self,
        *,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[CapacityPattern, int] | None = None,
        group_full_policy: GroupFullPolicy = "skip",
        copy_messages: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        if not group_expiry > 0:
            raise ValueError(f"group_expiry must be positive, not {group_expiry!r}")
        if group_full_policy not in _POLICIES:
            raise ValueError(f"group_full_policy must be one of {_POLICIES}")
        self.group_expiry = group_expiry
        self.group_full_policy = group_full_policy
        self.copy_messages = copy_messages
        self._clock = clock
        self._reg = Registry(
            expiry=expiry, group_expiry=group_expiry, get_capacity=self.get_capacity, clock=clock
        )
        self._drops = DropReporter()

    async def send(self, channel: str, message: LayerMessage) -> None:
        """Put ``message`` on ``channel`` (a checkpoint; see :meth:`send_nowait`)."""
        await checkpoint()
        self.send_nowait(channel, message)

    def send_nowait(self, channel: str, message: LayerMessage) -> None:
        """Put ``message`` on ``channel`` without yielding.

        Raises:
            ChannelFull: the channel holds ``get_capacity(channel)`` unexpired messages.
            TypeError: an invalid channel name or message.
        """
        require_valid_message(message)
        reg = self._reg
        ch = reg.open(channel)
        now = self._clock()
        if len(ch.buffer) >= ch.capacity and not reg.drop_expired(ch, now):
            raise ChannelFull(channel)
        reg.put(ch, (now + self.expiry, deepcopy(message) if self.copy_messages else message))
        reg.sent += 1
        reg.reaper.tick(1)

    async def receive(self, channel: str) -> LayerMessage:
        """Wait for the next message on ``channel`` and return it.

        First reclaims what has come due, as Channels' ``receive()`` does (module
        docs). Always a checkpoint; waits without polling when the channel is empty. Concurrent
        receivers on one channel each get different messages, first come first served.
        Cancellation takes no message: one that arrived for a cancelled receiver stays
        queued for the next. Full process-local names (with ``!``) are accepted.

        Raises:
            anyio.ClosedResourceError: :meth:`close` was called while waiting.
            TypeError: an invalid channel name.
        """
        await checkpoint()
        reg = self._reg
        self._reclaim_due(receiving=channel)
        reg.reaper.tick(1)
        ch = reg.open(channel)
        while (message := reg.take(ch)) is None:
            event = anyio.Event()
            ch.waiters[event] = None
            try:
                await event.wait()
            except BaseException:
                if event in ch.waiters:
                    del ch.waiters[event]
                else:  # woken for a message it will not take: wake someone else
                    ch.woken -= 1
                    reg.wake_if_owed(ch)
                reg.release(ch)
                raise
            ch.woken -= 1
            if ch.closed:
                raise anyio.ClosedResourceError
        return message

    def _reclaim_due(self, *, receiving: str) -> None:
        """Reclaim what is due, as Channels' ``receive()`` does, but keep ``receiving``.

        The receiving channel's expired messages are dropped first: it has a receiver,
        so it is alive and keeps its groups.
        """
        reg = self._reg
        now = self._clock()
        own = reg.channels.get(receiving)
        if own is not None:
            reg.drop_expired(own, now)
        reg.reaper.sweep_due(now)

    def receive_nowait(self, channel: str) -> LayerMessage:
        """Return the next message on ``channel`` without yielding.

        Raises:
            anyio.WouldBlock: the channel holds no unexpired message.
        """
        reg = self._reg
        ch = reg.channels.get(channel)
        if ch is None:
            require_valid_channel_name(channel)
            raise anyio.WouldBlock
        message = reg.take(ch)
        if message is None:
            reg.release(ch)
            raise anyio.WouldBlock
        reg.reaper.tick(1)
        return message

    async def new_channel(self, prefix: str = "specific.") -> str:
        """Return a new channel name ``"<prefix>.inmemory!<random>"`` (a checkpoint).

        The random part comes from :mod:`secrets` (72 bits).

        Raises:
            TypeError: ``prefix`` makes the name invalid or longer than 99 characters.
        """
        name = f"{prefix}.inmemory!{secrets.token_urlsafe(9)}"
        require_valid_channel_name(name)
        await checkpoint()
        return name

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group``, or refresh its membership (a checkpoint)."""
        require_valid_group_name(group)
        require_valid_channel_name(channel)
        await checkpoint()
        self._reg.add_member(group, channel, self._clock())
        self._reg.reaper.tick(1)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group`` if it is a member (a checkpoint)."""
        require_valid_group_name(group)
        require_valid_channel_name(channel)
        await checkpoint()
        grp = self._reg.groups.get(group)
        if grp is not None and channel in grp.members:
            self._reg.remove_member(grp, channel)
        self._reg.reaper.tick(1)

    async def group_send(self, group: str, message: LayerMessage) -> None:
        """Put ``message`` on every member's channel without waiting (a checkpoint).

        First reclaims what has come due, as Channels' ``group_send()`` does, so
        members presumed dead and lapsed memberships do not get the message.

        Raises:
            ChannelFull: under ``group_full_policy="raise"``, after delivering to every
                member that had room, when at least one member was full.
        """
        require_valid_group_name(group)
        require_valid_message(message)
        await checkpoint()
        reg = self._reg
        now = self._clock()
        # As Channels' group_send: channels whose messages expired unread leave their
        # groups, and lapsed members miss this message.
        reg.reaper.sweep_due(now)
        grp = reg.groups.get(group)
        if grp is None:
            return
        full = reg.fan_out(
            grp,
            message,
            now,
            drop_oldest=self.group_full_policy == "drop_oldest",
            copy=self.copy_messages,
        )
        reg.reaper.tick(len(grp.members))
        if full and self.group_full_policy == "raise":
            shown = ", ".join(full[:3]) + (", ..." if len(full) > 3 else "")
            raise ChannelFull(f"{len(full)} member(s) of group {group!r} full: {shown}")
        if full:
            self._drops.report(group, full, self.group_full_policy, now)

    async def discard_channel(self, channel: str) -> int:
        """Release ``channel``: leave its groups and drop what is queued on it.

        For a channel whose only receiver is gone (achannels calls it when a
        connection ends). Returns how many messages were dropped, which are counted
        in ``statistics().discarded``. A checkpoint, before it acts.
        """
        require_valid_channel_name(channel)
        await checkpoint()
        reg = self._reg
        reg.leave_all_groups(channel)
        ch = reg.channels.get(channel)
        if ch is None:
            return 0
        dropped = len(ch.buffer)
        ch.buffer.clear()
        reg.discarded += dropped
        reg.release(ch)
        return dropped

    async def flush(self) -> None:
        """Discard every message, channel and group (a checkpoint, before it acts).

        Receivers already waiting keep waiting. The cumulative counters are kept.
        """
        await checkpoint()
        self._reg.clear()

    async def close(self) -> None:
        """Discard everything and fail waiting receivers with ``ClosedResourceError``.

        The work is done before the checkpoint, so it happens even if the caller is
        cancelled. As with Channels, the layer can still be used afterwards.
        """
        self._reg.close()
        await checkpoint()

    @property
    def channels(self) -> Mapping[str, Sequence[tuple[float, LayerMessage]]]:
        """Channels holding messages or receivers: name -> queued ``(expires_at, message)``.

        A read-only snapshot, for inspection and tests, as Channels' layer exposes it.
        """
        return MappingProxyType({name: ch.buffer for name, ch in self._reg.channels.items()})

    @property
    def groups(self) -> Mapping[str, Mapping[str, float]]:
        """Groups: name -> member channel -> join time (a read-only snapshot)."""
        return MappingProxyType(
            {name: MappingProxyType(grp.members) for name, grp in self._reg.groups.items()}
        )

    def statistics(self) -> LayerStatistics:
        """Reclaim everything that is due, then return the layer's counters."""
        reg = self._reg
        reg.reaper.sweep(self._clock(), sys.maxsize)
        return LayerStatistics(
            sent=reg.sent,
            delivered=reg.delivered,
            dropped_full=reg.dropped_full,
            expired=reg.expired,
            discarded=reg.discarded,
            channels=len(reg.channels),
            groups=len(reg.groups),
            group_members=reg.members,
        )
