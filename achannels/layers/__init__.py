"""Channel layers: move messages between consumers, in one process or across many.

:class:`ChannelLayer` is the contract (Channels' layer API plus ``statistics()``);
:class:`InMemoryChannelLayer` implements it inside one process.
"""

from __future__ import annotations

from achannels.layers._base import BaseChannelLayer, ChannelLayer, LayerStatistics
from achannels.layers.memory import InMemoryChannelLayer

__all__ = ["BaseChannelLayer", "ChannelLayer", "InMemoryChannelLayer", "LayerStatistics"]
