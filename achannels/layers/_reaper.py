"""Lazy expiry for the memory layer: no background task, bounded and amortised work.

Three queues hold what may come due, each in the order it comes due:

* ``due_channels``: one ``(expires_at, name)`` entry per channel name that had a
  message queued since its entry was last processed, appended when the message is
  queued. With one ``expiry`` for every message and a monotonic clock, appending
  keeps it sorted.
* ``late_channels``: a heap of the same entries for channels that still held
  unexpired messages when their entry was processed, due when the oldest of those
  expires. Only channels with a backlog at that moment get here, once per ``expiry``
  at most.
* ``due_groups``: a heap of ``(due, seq, group)``, one entry per group, due when its
  oldest membership lapses. Members are kept in join order, so lapsed ones are a
  prefix of the group's ``dict``.

Each entry is processed once, so reclaiming costs amortised O(1) per operation that
made the entry. Two things process them:

* :meth:`Reaper.sweep_due`, which the layer's ``receive()`` and ``group_send()`` run
  first, as Channels' do: everything due, up to ``DUE_BUDGET`` entries of each kind
  (the rest goes on the next calls), so one call never pauses for long;
* :meth:`Reaper.tick`, which runs :meth:`Reaper.sweep` every ``SWEEP_EVERY``
  operations with a budget of ``SWEEP_RATIO`` entries per operation since the last
  sweep, so reclaiming keeps pace with traffic that never receives.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import deque
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from achannels.layers._registry import Group, Registry

logger = logging.getLogger("achannels.layers")

__all__ = ["DUE_BUDGET", "SWEEP_EVERY", "SWEEP_RATIO", "Reaper"]

SWEEP_EVERY: Final = 128  # operations between two sweeps
SWEEP_RATIO: Final = 8  # due entries a sweep may process per operation since the last
DUE_BUDGET: Final = SWEEP_EVERY * SWEEP_RATIO  # due entries of each kind per sweep_due()


class Reaper:
    """Reclaims expired messages, abandoned channels and lapsed memberships of ``reg``."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self.due_channels: deque[tuple[float, str]] = deque()
        self.late_channels: list[tuple[float, str]] = []
        self.armed: set[str] = set()  # channel names with an entry in either of those
        self.due_groups: list[tuple[float, int, Group]] = []
        self._seq = itertools.count()
        self._ops = 0

    def arm_channel(self, name: str, expires_at: float) -> None:
        """Make sure channel ``name`` is looked at once ``expires_at`` has passed."""
        if name not in self.armed:
            self.armed.add(name)
            self.due_channels.append((expires_at, name))

    def arm_group(self, grp: Group, due: float) -> None:
        """Look at ``grp`` once ``due`` has passed."""
        heapq.heappush(self.due_groups, (due, next(self._seq), grp))

    def clear(self) -> None:
        """Forget every entry (the registry was cleared)."""
        self.due_channels.clear()
        self.late_channels.clear()
        self.armed.clear()
        self.due_groups.clear()

    def tick(self, operations: int) -> None:
        """Count ``operations``; every ``SWEEP_EVERY`` of them, sweep in proportion."""
        self._ops += operations
        if self._ops >= SWEEP_EVERY:
            budget = self._ops * SWEEP_RATIO
            self._ops = 0
            self.sweep(self.reg.clock(), budget)

    def sweep(self, now: float, budget: int) -> None:
        """Process up to about ``budget`` due entries."""
        budget = self._expire_channels(now, budget)
        self.expire_groups(now, budget)

    def sweep_due(self, now: float) -> None:
        """Reclaim what is due at ``now``: up to ``DUE_BUDGET`` entries of each kind.

        Channels' layer cleans up this way at the start of ``receive()`` and
        ``group_send()``; when nothing is due, this is a few comparisons.
        """
        due, late = self.due_channels, self.late_channels
        if (due and due[0][0] < now) or (late and late[0][0] < now):
            self._expire_channels(now, DUE_BUDGET)
        if self.due_groups and self.due_groups[0][0] < now:
            self.expire_groups(now, DUE_BUDGET)

    def _next_due_channel(self, now: float) -> str | None:
        """Remove and return the name of a channel whose entry is due, if any."""
        due, late = self.due_channels, self.late_channels
        if due and due[0][0] < now:
            name = due.popleft()[1]
        elif late and late[0][0] < now:
            name = heapq.heappop(late)[1]
        else:
            return None
        self.armed.discard(name)
        return name

    def _expire_channels(self, now: float, budget: int) -> int:
        reg = self.reg
        while budget > 0 and (name := self._next_due_channel(now)) is not None:
            budget -= 1
            ch = reg.channels.get(name)
            if ch is None:
                continue
            if reg.drop_expired(ch, now) and not ch.waiters and not ch.woken:
                # Unread and nobody listening: presumed dead, as in Channels. Say so:
                # a live consumer stuck for longer than ``expiry`` loses its groups.
                groups = len(reg.groups_of.get(name, ()))
                if groups:
                    logger.warning(
                        "channel %r left %d group(s): its messages expired unread", name, groups
                    )
                reg.leave_all_groups(name)
            if ch.buffer:
                self.armed.add(name)
                heapq.heappush(self.late_channels, (ch.buffer[0][0], name))
            else:
                reg.release(ch)
        return budget

    def expire_groups(self, now: float, budget: int) -> None:
        """Remove up to about ``budget`` memberships older than ``group_expiry``."""
        reg = self.reg
        heap = self.due_groups
        while budget > 0 and heap and heap[0][0] < now:
            budget -= 1
            grp = heapq.heappop(heap)[2]
            if reg.groups.get(grp.name) is not grp:
                continue  # emptied (and maybe re-created) since it was armed
            lapsed: list[str] = []
            for channel, joined in grp.members.items():
                if joined + reg.group_expiry >= now or len(lapsed) >= budget:
                    break
                lapsed.append(channel)
            budget -= len(lapsed)
            for channel in lapsed:
                reg.remove_member(grp, channel)
            if lapsed:
                logger.info(
                    "%d membership(s) of group %r lapsed after group_expiry", len(lapsed), grp.name
                )
            if grp.members:
                self.arm_group(grp, next(iter(grp.members.values())) + reg.group_expiry)
