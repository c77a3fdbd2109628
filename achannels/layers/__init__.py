"""Channel layers: move messages between consumers, in one process or across many.

:class:`ChannelLayer` is the contract (Channels' layer API plus ``statistics()``);
:class:`InMemoryChannelLayer` implements it inside one process.
:func:`open_channel_layer` creates a layer and owns it for a block;
:data:`channel_layers` and :func:`get_channel_layer` read Django's ``CHANNEL_LAYERS``
setting, as ``channels.layers`` does.
"""

from __future__ import annotations

from achannels.layers._base import BaseChannelLayer, ChannelLayer, LayerStatistics
from achannels.layers._manager import (
    DEFAULT_CHANNEL_LAYER,
    ChannelLayerManager,
    channel_layers,
    get_channel_layer,
)
from achannels.layers._open import create_channel_layer, layer_from_config, open_channel_layer
from achannels.layers.memory import InMemoryChannelLayer

__all__ = [
    "BaseChannelLayer",
    "ChannelLayer",
    "ChannelLayerManager",
    "DEFAULT_CHANNEL_LAYER",
    "InMemoryChannelLayer",
    "LayerStatistics",
    "channel_layers",
    "create_channel_layer",
    "get_channel_layer",
    "layer_from_config",
    "open_channel_layer",
]
