"""When the memory layer's channels and groups come due for reclaiming (sans-IO).

The memory layer reclaims lazily, with no background task; this module only keeps
the schedule. It knows nothing of channels or groups: it holds the objects it is
given, hands back the ones that have come due, and imports nothing of the package.
:mod:`achannels.layers._registry` decides what to do with them.

Three queues hold what may come due, each in the order it comes due:

* ``due channels``: one ``(expires_at, channel)`` entry per channel that had a
  message queued since its entry was last handed back, appended when the message is
  queued. With one ``expiry`` for every message and a monotonic clock, appending
  keeps it sorted; an entry that would not (``expiry`` was lowered) goes to the heap.
* ``late channels``: a heap of the same entries for channels that still held
  unexpired messages when their entry was handed back, due when the oldest of those
  expires. Only channels with a backlog at that moment get here, once per ``expiry``
  at most.
* ``due groups``: a heap of ``(joined, seq, group)``, one entry per group, keyed by
  the join time of its oldest membership. Every group has the same
  ``group_expiry``, so join times sort the heap as due times would, and the caller
  passes ``group_expiry`` in: a new value applies to every entry at once.

Each entry is handed back once, so reclaiming costs amortised O(1) per operation
that made the entry. :meth:`Reaper.tick` counts operations and grants a budget of
``SWEEP_RATIO`` entries per operation every ``SWEEP_EVERY`` operations, so
reclaiming keeps pace with traffic that never receives; ``DUE_BUDGET`` bounds the
work of one ``receive()`` or ``group_send()``.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from typing import Final, Generic, TypeVar

__all__ = ["DUE_BUDGET", "SWEEP_EVERY", "SWEEP_RATIO", "Reaper"]

SWEEP_EVERY: Final = 128  # operations between two sweeps
SWEEP_RATIO: Final = 8  # due entries a sweep may process per operation since the last
DUE_BUDGET: Final = SWEEP_EVERY * SWEEP_RATIO  # due entries of each kind per receive()

C = TypeVar("C")
G = TypeVar("G")


class Reaper(Generic[C, G]):
    """The schedule of channels (``C``) and groups (``G``) that may come due.

    The caller arms a channel at most once until it is handed back, and a group
    once per group object.
    """

    __slots__ = ("_due_channels", "_due_groups", "_late_channels", "_ops", "_seq")

    def __init__(self) -> None:
        self._due_channels: deque[tuple[float, C]] = deque()
        self._late_channels: list[tuple[float, int, C]] = []
        self._due_groups: list[tuple[float, int, G]] = []
        self._seq = itertools.count()  # heap tie-breaker: channels and groups do not compare
        self._ops = 0

    def __len__(self) -> int:
        """Return the number of entries scheduled."""
        return len(self._due_channels) + len(self._late_channels) + len(self._due_groups)

    def arm_channel(self, channel: C, expires_at: float) -> None:
        """Hand ``channel`` back once ``expires_at`` has passed."""
        due = self._due_channels
        if due and expires_at < due[-1][0]:
            self.arm_late(channel, expires_at)  # out of order: ``expiry`` was lowered
        else:
            due.append((expires_at, channel))

    def arm_late(self, channel: C, expires_at: float) -> None:
        """Hand ``channel`` back once ``expires_at`` has passed (its backlog's head)."""
        heapq.heappush(self._late_channels, (expires_at, next(self._seq), channel))

    def arm_group(self, group: G, joined: float) -> None:
        """Hand ``group`` back once a membership from ``joined`` has lapsed."""
        heapq.heappush(self._due_groups, (joined, next(self._seq), group))

    def channels_due(self, now: float) -> bool:
        """Return whether a channel entry has come due at ``now``."""
        due, late = self._due_channels, self._late_channels
        return bool((due and due[0][0] < now) or (late and late[0][0] < now))

    def groups_due(self, now: float, group_expiry: float) -> bool:
        """Return whether a group entry has come due at ``now``."""
        heap = self._due_groups
        return bool(heap) and heap[0][0] + group_expiry < now

    def pop_channel(self, now: float) -> C | None:
        """Remove and return a channel whose entry has come due, if any."""
        due, late = self._due_channels, self._late_channels
        if due and due[0][0] < now:
            return due.popleft()[1]
        if late and late[0][0] < now:
            return heapq.heappop(late)[2]
        return None

    def pop_group(self, now: float, group_expiry: float) -> G | None:
        """Remove and return a group whose oldest membership has lapsed, if any."""
        if self.groups_due(now, group_expiry):
            return heapq.heappop(self._due_groups)[2]
        return None

    def tick(self, operations: int) -> int:
        """Count ``operations``; return the budget of a sweep when one is due, else 0."""
        self._ops += operations
        if self._ops < SWEEP_EVERY:
            return 0
        budget = self._ops * SWEEP_RATIO
        self._ops = 0
        return budget

    def clear(self) -> None:
        """Forget every entry."""
        self._due_channels.clear()
        self._late_channels.clear()
        self._due_groups.clear()
