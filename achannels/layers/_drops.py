"""Warnings for group deliveries dropped because a member was full (sans-IO).

Every layer counts such drops in ``statistics().dropped_full``; this makes them
visible in the log too, without flooding it during a burst: at most one warning per
``interval`` seconds, each carrying the number dropped since the previous one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

__all__ = ["DropReporter", "logger"]

logger = logging.getLogger("achannels.layers")


class DropReporter:
    """Rate-limited warnings on the ``achannels.layers`` logger.

    Args:
        interval: the least number of seconds between two warnings.
    """

    def __init__(self, *, interval: float = 1.0) -> None:
        self.interval = interval
        self._unreported = 0
        self._next = -float("inf")

    def report(self, group: str, full: Sequence[str], policy: str, now: float) -> None:
        """Record that ``group_send`` to ``group`` found the channels ``full``.

        Args:
            group: the group sent to.
            full: the member channels that were full.
            policy: the layer's ``group_full_policy``, for the message.
            now: the layer's clock.
        """
        self._unreported += len(full)
        if now < self._next:
            return
        shown = ", ".join(full[:3]) + (", ..." if len(full) > 3 else "")
        logger.warning(
            "group_send to %r: %d member channel(s) full (%s), policy %r; "
            "%d message(s) dropped since the last report",
            group, len(full), shown, policy, self._unreported,
        )  # fmt: skip
        self._unreported = 0
        self._next = now + self.interval
