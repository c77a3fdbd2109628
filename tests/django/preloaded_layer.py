"""A memory layer that feeds itself, so that a ``runworker`` subprocess has work.

The memory layer lives inside one process, so a test cannot send to a worker
subprocess through it. Instead the worker's own layer is configured with messages
to send: the first time a channel is received on, its preloaded messages are sent
to it, inside the worker process, through the ordinary ``send()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from achannels.layers import InMemoryChannelLayer

__all__ = ["PreloadedChannelLayer"]


class PreloadedChannelLayer(InMemoryChannelLayer):
    """An ``InMemoryChannelLayer`` that sends ``preload[channel]`` on first receive."""

    def __init__(
        self, preload: Mapping[str, Sequence[dict[str, Any]]] | None = None, **config: Any
    ) -> None:
        super().__init__(**config)
        self._preload = {channel: list(messages) for channel, messages in (preload or {}).items()}

    async def receive(self, channel: str) -> dict[str, Any]:
        """Send the channel's preloaded messages first (once), then receive as usual."""
        for message in self._preload.pop(channel, []):
            await self.send(channel, message)
        return await super().receive(channel)
