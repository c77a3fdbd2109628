"""Channels-compatible generic consumers: WebSocket (sync, async, JSON) and HTTP.

``from channels.generic.websocket import AsyncWebsocketConsumer`` becomes
``from achannels.generic.websocket import AsyncWebsocketConsumer``; likewise
``achannels.generic.http.AsyncHttpConsumer``.
"""

from __future__ import annotations
