"""The channel layer contract: the :class:`ChannelLayer` protocol and its helpers.

A channel layer moves messages (``dict`` objects with a ``str`` ``"type"``) between
named channels, and fans a message out to every channel in a named group. The
contract is the one Channels documents, so Channels-style code calls it unchanged;
:meth:`ChannelLayer.statistics` is the achannels addition that makes every drop
visible.
"""

from __future__ import annotations

import fnmatch
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeAlias, runtime_checkable

from achannels.layers import _names

__all__ = [
    "BaseChannelLayer",
    "CapacityPattern",
    "ChannelLayer",
    "LayerMessage",
    "LayerStatistics",
    "RedisLayerStatistics",
]

#: A layer message: a ``dict`` with a ``str`` ``"type"`` (checked at run time).
LayerMessage: TypeAlias = dict[str, Any]
#: ``channel_capacity`` keys: glob strings (``"http.response!*"``) or compiled regexes.
CapacityPattern: TypeAlias = str | re.Pattern[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerStatistics:
    """A snapshot of a channel layer's counters.

    The first five fields count since the layer was created (``flush()`` does not
    reset them); the last three describe the layer right now.

    Attributes:
        sent: messages put on a channel, by ``send()`` or as one group delivery each.
        delivered: messages handed to a receiver.
        dropped_full: group deliveries dropped because the member's channel was full
            (the new message under ``"skip"``/``"raise"``, the oldest under
            ``"drop_oldest"``).
        expired: messages discarded unread because they outlived ``expiry``.
        discarded: messages discarded unread because their channel was released
            (``discard_channel()``: the connection that owned it ended).
        channels: channels holding messages or with a receiver waiting.
        groups: groups with at least one member.
        group_members: memberships over all groups.
    """

    sent: int = 0
    delivered: int = 0
    dropped_full: int = 0
    expired: int = 0
    discarded: int = 0
    channels: int = 0
    groups: int = 0
    group_members: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisLayerStatistics(LayerStatistics):
    """A Redis layer's counters: the memory layer's, seen from this process, plus a network's.

    ``channels`` counts this process's local buffers; ``groups`` and
    ``group_members`` count the memberships this process added and still holds.
    ``expired`` includes messages Redis held past ``expiry`` that a send removed.

    Attributes:
        errors: failed attempts to talk to Redis (by callers or receive loops).
        unavailable: calls that raised ``ChannelLayerUnavailable`` to their caller.
        reconnects: times a receive loop got its shard back after a failure.
        undecodable: messages popped that could not be decoded (another format or
            encryption key, or corrupt); they are dropped and logged.
        owned: whether an owner (``async with layer``) holds pools and receive loops.
        receive_loops: receive loops running now.
    """

    errors: int = 0
    unavailable: int = 0
    reconnects: int = 0
    undecodable: int = 0
    owned: bool = False
    receive_loops: int = 0


@runtime_checkable
class ChannelLayer(Protocol):
    """What every channel layer provides (Channels' layer API plus ``statistics()``).

    Every coroutine method is a checkpoint. ``receive()`` is the only one that waits:
    cancelling it takes no message off the channel.
    """

    @property
    def extensions(self) -> Sequence[str]:
        """The optional parts of the API this layer offers: ``"groups"``, ``"flush"``."""
        ...

    async def send(self, channel: str, message: LayerMessage) -> None:
        """Put ``message`` on ``channel``; raise ``ChannelFull`` when it is at capacity."""
        ...

    async def receive(self, channel: str) -> LayerMessage:
        """Wait for and return the next message on ``channel``."""
        ...

    async def new_channel(self, prefix: str = "specific.") -> str:
        """Return a new, unique channel name this process can receive on."""
        ...

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (again: refresh its membership)."""
        ...

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; do nothing when it is not a member."""
        ...

    async def group_send(self, group: str, message: LayerMessage) -> None:
        """Send ``message`` to every channel in ``group``."""
        ...

    async def flush(self) -> None:
        """Discard every message, channel and group."""
        ...

    async def close(self) -> None:
        """Release the layer's resources."""
        ...

    def statistics(self) -> LayerStatistics:
        """Return the layer's counters."""
        ...


class BaseChannelLayer:
    """Configuration and name rules shared by layers, compatible with Channels' class.

    Args:
        expiry: seconds a message may wait unread before it is discarded.
        capacity: the default number of messages a channel holds.
        channel_capacity: per-channel capacities, keyed by glob strings or compiled
            regexes (``re.Pattern.match``, so anchored at the start only); the first
            matching key, in mapping order, wins.

    Raises:
        ValueError: a capacity below 1 or a non-positive ``expiry``.
    """

    MAX_NAME_LENGTH: ClassVar[int] = _names.MAX_NAME_LENGTH
    channel_name_regex: ClassVar[re.Pattern[str]] = _names.CHANNEL_NAME_REGEX
    group_name_regex: ClassVar[re.Pattern[str]] = _names.GROUP_NAME_REGEX
    #: Channels' message for a bad name: ``invalid_name_error.format("Group")``.
    invalid_name_error: ClassVar[str] = _names.INVALID_NAME_ERROR
    extensions: Sequence[str] = ()

    def __init__(
        self,
        *,
        expiry: float = 60,
        capacity: int = 100,
        channel_capacity: Mapping[CapacityPattern, int] | None = None,
    ) -> None:
        if not expiry > 0:
            raise ValueError(f"expiry must be positive, not {expiry!r}")
        self.expiry = expiry
        self.capacity = _check_capacity(capacity)
        self.channel_capacity = self.compile_capacities(channel_capacity or {})

    def compile_capacities(
        self, channel_capacity: Mapping[CapacityPattern, int]
    ) -> list[tuple[re.Pattern[str], int]]:
        """Compile ``channel_capacity`` keys: glob strings to regexes, regexes as given."""
        return [(_compile(key), _check_capacity(value)) for key, value in channel_capacity.items()]

    def get_capacity(self, channel: str) -> int:
        """Return the capacity of ``channel``: the first matching pattern's, or the default."""
        for pattern, capacity in self.channel_capacity:
            if pattern.match(channel):
                return capacity
        return self.capacity

    def match_type_and_length(self, name: object) -> bool:
        """Return whether ``name`` is a ``str`` of at most 99 characters."""
        return _names.match_type_and_length(name)

    def require_valid_channel_name(self, name: object, receive: bool = False) -> bool:
        """Return ``True`` for a valid channel name; raise ``TypeError`` otherwise."""
        _names.require_valid_channel_name(name, receive=receive)
        return True

    def require_valid_group_name(self, name: object) -> bool:
        """Return ``True`` for a valid group name; raise ``TypeError`` otherwise."""
        _names.require_valid_group_name(name)
        return True

    def valid_channel_names(self, names: object, receive: bool = False) -> bool:
        """Check a non-empty ``list`` of channel names; raise ``TypeError`` otherwise."""
        if not isinstance(names, list) or not names:
            raise TypeError("names must be a non-empty list")
        for name in names:
            _names.require_valid_channel_name(name, receive=receive)
        return True

    def non_local_name(self, name: str) -> str:
        """Return ``name`` up to and including its ``!``, or all of it when it has none."""
        return _names.non_local_name(name)

    def valid_channel_name(self, name: object, receive: bool = False) -> bool:
        """Deprecated alias of :meth:`require_valid_channel_name`, as in Channels 4.3."""
        warnings.warn(
            "valid_channel_name is deprecated, use require_valid_channel_name instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_channel_name(name, receive)

    def valid_group_name(self, name: object) -> bool:
        """Deprecated alias of :meth:`require_valid_group_name`, as in Channels 4.3."""
        warnings.warn(
            "valid_group_name is deprecated, use require_valid_group_name instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_group_name(name)

    # The layer API: subclasses implement what they support, as with Channels.

    async def send(self, channel: str, message: LayerMessage) -> None:
        """Put ``message`` on ``channel`` (not implemented here)."""
        raise NotImplementedError("send() should be implemented in a channel layer")

    async def receive(self, channel: str) -> LayerMessage:
        """Wait for the next message on ``channel`` (not implemented here)."""
        raise NotImplementedError("receive() should be implemented in a channel layer")

    async def new_channel(self, prefix: str = "specific.") -> str:
        """Return a new channel name (not implemented here)."""
        raise NotImplementedError("new_channel() should be implemented in a channel layer")

    async def flush(self) -> None:
        """Discard everything (the ``flush`` extension; not implemented here)."""
        raise NotImplementedError("flush() not implemented (flush extension)")

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (the ``groups`` extension; not implemented here)."""
        raise NotImplementedError("group_add() not implemented (groups extension)")

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group`` (the ``groups`` extension; not implemented here)."""
        raise NotImplementedError("group_discard() not implemented (groups extension)")

    async def group_send(self, group: str, message: LayerMessage) -> None:
        """Send to every member of ``group`` (the ``groups`` extension; not implemented here)."""
        raise NotImplementedError("group_send() not implemented (groups extension)")

    async def close(self) -> None:
        """Release resources; the base class holds none. Not a checkpoint."""


def _check_capacity(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"a channel capacity must be an int of at least 1, not {value!r}")
    return value


def _compile(pattern: CapacityPattern) -> re.Pattern[str]:
    # A compiled regex is used as given; a string is a glob, as in Channels.
    return pattern if isinstance(pattern, re.Pattern) else re.compile(fnmatch.translate(pattern))
