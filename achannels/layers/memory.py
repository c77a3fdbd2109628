"""The in-memory channel layer: one process, no server, bounded, and leak-free.

Each channel is a bounded FIFO with its parked receivers; a group is an ordered
``dict`` of its members' channels, which it keeps while they are idle. ``group_send``
to G members is G appends of one shared ``(expires_at, message)`` tuple plus one
``Event.set()`` per member with a receiver parked: no task, no copy, and no channel
looked up, re-created or its name checked again per member. A channel name is checked
once, when its channel is created.

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

**Settings may be changed after construction**, and each lives on the layer only, so
every call sees the new value: a new ``expiry`` applies to messages queued from then
on (a queued message keeps the expiry time it was given, as in Channels), a new
``group_expiry`` to every membership at once, and a new ``capacity`` or
``channel_capacity`` (assign it, do not mutate it) to every channel.
"""

from __future__ import annotations

import re
import secrets
import sys
import time
from collections.abc import Callable, Mapping, Sequence
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
from achannels.layers._registry import Channel, Registry

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
        self._reg = Registry()  # first: the capacity setters resize its channels
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        if not group_expiry > 0:
            raise ValueError(f"group_expiry must be positive, not {group_expiry!r}")
        if group_full_policy not in _POLICIES:
            raise ValueError(f"group_full_policy must be one of {_POLICIES}")
        self.group_expiry = group_expiry
        self.group_full_policy = group_full_policy
        self.copy_messages = copy_messages
        self._clock = clock
        self._drops = DropReporter()

    @property
    def capacity(self) -> int:
        """The capacity of a channel no ``channel_capacity`` pattern matches."""
        return self._capacity

    @capacity.setter
    def capacity(self, value: int) -> None:
        self._capacity = value
        self._reg.resize(self.get_capacity)

    @property
    def channel_capacity(self) -> list[tuple[re.Pattern[str], int]]:
        """The compiled ``channel_capacity`` patterns, first match wins."""
        return self._channel_capacity

    @channel_capacity.setter
    def channel_capacity(self, value: list[tuple[re.Pattern[str], int]]) -> None:
        self._channel_capacity = value
        self._reg.resize(self.get_capacity)

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
        ch = reg.find(channel) or self._create(channel)
        now = self._clock()
        if not reg.offer(ch, (now + self.expiry, message), now, copy=self.copy_messages):
            raise ChannelFull(channel)
        if budget := reg.tick(1):
            self._sweep(budget)

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
        reg = self._reg
        reg.sweep_due(self._clock(), group_expiry=self.group_expiry, receiving=channel)
        if budget := reg.tick(1):
            self._sweep(budget)
        ch = reg.find(channel) or self._create(channel)
        if ch.buffer:
            # A checkpoint before taking, so a cancelled call takes nothing. With nothing
            # queued the wait below is the checkpoint: a reader that has just drained the
            # channel with receive_nowait() is not scheduled twice per message.
            await checkpoint()
        while (message := reg.take(ch, self._clock)) is None:
            event = reg.park(ch)
            try:
                await event.wait()
            except BaseException:
                reg.abandon(ch, event)
                raise
            if not reg.resume(ch):
                raise anyio.ClosedResourceError
        return message

    def receive_nowait(self, channel: str) -> LayerMessage:
        """Return the next message on ``channel`` without yielding.

        Raises:
            anyio.WouldBlock: the channel holds no unexpired message.
        """
        reg = self._reg
        ch = reg.find_active(channel)
        if ch is None:
            if not reg.knows(channel):  # a kept channel's name was checked when it was made
                require_valid_channel_name(channel)
            raise anyio.WouldBlock
        message = reg.take(ch, self._clock)
        if message is None:
            reg.release(ch)
            raise anyio.WouldBlock
        if budget := reg.tick(1):
            self._sweep(budget)
        return message

    def call_on_message(self, channel: str, notify: Callable[[], None]) -> bool:
        """Arrange for ``notify()`` to be called once, when a message reaches ``channel``.

        For a reader that would otherwise park on an empty channel for a long time:
        achannels' connections start their reader task from ``notify``, so one that
        has joined groups but has had no message keeps no task. ``notify`` runs
        synchronously inside the ``send()``/``group_send()`` that queued the message
        (only if no receiver was waiting, which would get it instead) and must not
        raise. Not a checkpoint. :meth:`discard_channel`, :meth:`close` and a later
        call forget it; :meth:`flush` keeps it.

        Returns:
            ``False``, arranging nothing, if a message is queued already: receive it.

        Raises:
            TypeError: an invalid channel name.
        """
        reg = self._reg
        return reg.call_on_message(reg.find(channel) or self._create(channel), notify)

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
        reg = self._reg
        reg.add_member(group, reg.find(channel) or self._create(channel), self._clock())
        if budget := reg.tick(1):
            self._sweep(budget)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group`` if it is a member (a checkpoint)."""
        require_valid_group_name(group)
        require_valid_channel_name(channel)
        await checkpoint()
        self._reg.discard_member(group, channel)
        if budget := self._reg.tick(1):
            self._sweep(budget)

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
        reg.sweep_due(now, group_expiry=self.group_expiry)
        members, full = reg.fan_out(
            group,
            (now + self.expiry, message),
            now,
            drop_oldest=self.group_full_policy == "drop_oldest",
            copy=self.copy_messages,
        )
        if budget := reg.tick(members):
            self._sweep(budget)
        if full:
            self._report_full(group, full, now)

    def _report_full(self, group: str, full: list[str], now: float) -> None:
        """Raise or log, by ``group_full_policy``, that members of ``group`` were full."""
        if self.group_full_policy == "raise":
            shown = ", ".join(full[:3]) + (", ..." if len(full) > 3 else "")
            raise ChannelFull(f"{len(full)} member(s) of group {group!r} full: {shown}")
        self._drops.report(group, full, self.group_full_policy, now)

    async def discard_channel(self, channel: str) -> int:
        """Release ``channel``: leave its groups and drop what is queued on it.

        For a channel whose only receiver is gone (achannels calls it when a
        connection ends). Returns how many messages were dropped, which are counted
        in ``statistics().discarded``. A checkpoint, before it acts.
        """
        require_valid_channel_name(channel)
        await checkpoint()
        return self._reg.discard(channel)

    def discard_channel_nowait(self, channel: str) -> int:
        """Release ``channel`` as :meth:`discard_channel` does, without yielding.

        What a connection's shielded cleanup calls: there a checkpoint is only a trip
        through the event loop.
        """
        require_valid_channel_name(channel)
        return self._reg.discard(channel)

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
        return MappingProxyType(self._reg.buffers())

    @property
    def groups(self) -> Mapping[str, Mapping[str, float]]:
        """Groups: name -> member channel -> join time (a read-only snapshot)."""
        return MappingProxyType(
            {name: MappingProxyType(members) for name, members in self._reg.memberships().items()}
        )

    def statistics(self) -> LayerStatistics:
        """Reclaim everything that is due, then return the layer's counters."""
        self._reg.sweep(self._clock(), sys.maxsize, group_expiry=self.group_expiry)
        return self._reg.statistics()

    def _create(self, channel: str) -> Channel:
        """Return a new channel for a name the registry does not know.

        The name is checked here, once per channel object, and not on every call.

        Raises:
            TypeError: ``channel`` is not a valid channel name.
        """
        return self._reg.create(require_valid_channel_name(channel), self.get_capacity(channel))

    def _sweep(self, budget: int) -> None:
        """Reclaim up to about ``budget`` due entries (every so many operations, module docs)."""
        self._reg.sweep(self._clock(), budget, group_expiry=self.group_expiry)


def registry_of(layer: InMemoryChannelLayer) -> Registry:
    """Return the registry behind ``layer`` (package-internal: for tests and tools)."""
    return layer._reg
