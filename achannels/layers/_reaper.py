"""Lazy expiry for the memory layer: no background task, bounded and amortised work.

Two queues hold what may come due:

* ``due_channels``: one ``(expires_at, name)`` entry per channel name that had a
  message queued since its entry was last processed. With one ``expiry`` for every
  message and a monotonic clock the queue is nearly sorted; an entry re-queued with a
  later message's expiry may be processed up to ``expiry`` late, which only delays
  reclaiming memory (receiving checks expiry itself).
* ``due_groups``: a heap of ``(due, seq, group)``, one entry per group, due when its
  oldest membership lapses. Members are kept in join order, so lapsed ones are a
  prefix of the group's ``dict``.

:meth:`Reaper.tick` runs :meth:`Reaper.sweep` every ``SWEEP_EVERY`` operations with a
budget of ``SWEEP_RATIO`` entries per operation since the last sweep, so reclaiming
keeps pace with whatever creates work and each pause is proportional to the call that
triggers it.
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

__all__ = ["SWEEP_EVERY", "SWEEP_RATIO", "Reaper"]

SWEEP_EVERY: Final = 128  # operations between two sweeps
SWEEP_RATIO: Final = 8  # due entries a sweep may process per operation since the last


class Reaper:
    """Reclaims expired messages, abandoned channels and lapsed memberships of ``reg``."""

    def __init__(self, reg: Registry) -> None:
        self.reg = reg
        self.due_channels: deque[tuple[float, str]] = deque()
        self.armed: set[str] = set()  # channel names with an entry in due_channels
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

    def _expire_channels(self, now: float, budget: int) -> int:
        reg = self.reg
        due = self.due_channels
        while budget > 0 and due and due[0][0] < now:
            budget -= 1
            name = due.popleft()[1]
            self.armed.discard(name)
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
                self.arm_channel(name, ch.buffer[0][0])
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
