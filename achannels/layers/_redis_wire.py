"""What the Redis layers put on the wire, compatible with channels_redis 4.3 (sans-IO).

Everything here is pure: host configuration, shard placement, key names, the
message format and the Lua scripts. The layers in :mod:`achannels.layers.redis` and
:mod:`achannels.layers._redis_pubsub` do the I/O.

The format is channels_redis's, so processes running Channels and achannels share
one Redis during a migration:

* a channel is a sorted set at ``{prefix}{name}``, scored by the ``time.time()`` of
  the send; a process-local channel ``"specific.<client>!<id>"`` lives in the set of
  its non-local part ``"{prefix}specific.<client>!"`` and the full name travels in
  the message's ``"__asgi_channel__"`` field (a list of names for group sends);
* a group is a sorted set at ``{prefix}:group:{name}`` of member channel names,
  scored by join time;
* a message is msgpack (or JSON), optionally Fernet-encrypted with keys derived as
  channels_redis derives them, behind 12 random bytes that keep equal messages
  distinct members of the sorted set;
* a name is placed on a shard by ``crc32(name) & 0xFFF`` split evenly over the ring.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, TypeAlias

from achannels.layers._base import LayerMessage
from achannels.layers._names import non_local_name

__all__ = [
    "ASGI_CHANNEL",
    "GROUP_ADD",
    "GROUP_MEMBERS",
    "GROUP_SEND",
    "HostConfig",
    "SEND",
    "Serializer",
    "SerializerFormat",
    "channel_key",
    "consistent_hash",
    "decode_hosts",
    "group_key",
    "pack_group_messages",
]

HostConfig: TypeAlias = dict[str, Any]
SerializerFormat: TypeAlias = Literal["msgpack", "json"]

ASGI_CHANNEL: Final = "__asgi_channel__"
_DEFAULT_HOST: Final = "redis://localhost:6379"


def decode_hosts(hosts: object) -> list[HostConfig]:
    """Turn a ``hosts`` setting into one keyword dict per shard, as channels_redis does.

    Entries may be URLs, ``(host, port)`` pairs, or dicts (``{"address": url, ...}``,
    ``{"host": ..., "port": ...}``, or Sentinel's ``{"sentinels": [...],
    "master_name": ...}``). ``None`` or an empty list means ``redis://localhost:6379``.

    Raises:
        ValueError: ``hosts`` is a single string instead of a list.
        TypeError: an entry is none of the forms above.
    """
    if not hosts:
        return [{"address": _DEFAULT_HOST}]
    if isinstance(hosts, str | bytes):
        raise ValueError("You must pass a list of Redis hosts, even if there is only one.")
    if not isinstance(hosts, Iterable):
        raise TypeError(f"hosts must be a list, not {type(hosts).__name__}")
    return [_decode_host(entry) for entry in hosts]


def _decode_host(entry: object) -> HostConfig:
    if isinstance(entry, Mapping):
        return dict(entry)
    if isinstance(entry, tuple | list) and len(entry) == 2:
        return {"host": entry[0], "port": entry[1]}
    if isinstance(entry, str):
        return {"address": entry}
    raise TypeError(f"a Redis host must be a URL, (host, port) or a dict, not {entry!r}")


def consistent_hash(value: str | bytes, ring_size: int) -> int:
    """Return the shard index of ``value``: channels_redis's CRC32 ring."""
    if ring_size == 1:
        return 0
    data = value.encode("utf8") if isinstance(value, str) else value
    return int((binascii.crc32(data) & 0xFFF) / (4096 / ring_size))


def channel_key(prefix: str, channel: str) -> str:
    """Return the sorted-set key of ``channel`` (process-local names share one)."""
    return prefix + non_local_name(channel)


def group_key(prefix: str, group: str) -> str:
    """Return the sorted-set key that holds ``group``'s members."""
    return f"{prefix}:group:{group}"


class Serializer:
    """Encode and decode layer messages as channels_redis's serializers do.

    Args:
        format: ``"msgpack"`` (the default there too) or ``"json"``.
        symmetric_encryption_keys: a list of keys; the first encrypts, any decrypts
            (Fernet keys derived as ``urlsafe_b64encode(sha256(key))``).
        random_prefix_length: random bytes put before each message (12 for the
            sorted-set layer, 0 for pub/sub).
        expiry: with encryption, tokens older than ``expiry + 10`` s are refused.

    Raises:
        ValueError: an unknown format, keys given as one string, or a missing
            optional dependency (install ``achannels[redis]``).
    """

    def __init__(
        self,
        format: SerializerFormat = "msgpack",
        *,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        random_prefix_length: int = 12,
        expiry: float | None = None,
    ) -> None:
        self.dumps, self.loads = _codec(format)
        self.random_prefix_length = random_prefix_length
        self.ttl = None if expiry is None else int(expiry + 10)
        self.crypter = _crypter(symmetric_encryption_keys) if symmetric_encryption_keys else None

    def serialize(self, message: Mapping[str, Any]) -> bytes:
        """Return the bytes stored in Redis for ``message``."""
        data = self.dumps(message)
        if self.crypter is not None:
            data = self.crypter.encrypt(data)
        if self.random_prefix_length:
            data = secrets.token_bytes(self.random_prefix_length) + data
        return data

    def deserialize(self, data: bytes) -> LayerMessage:
        """Return the message stored as ``data``.

        Raises:
            ValueError: ``data`` is not a message in this format, or (encrypted) was
                made with another key or is too old.
        """
        data = data[self.random_prefix_length :]
        if self.crypter is not None:
            data = self._decrypt(data)
        try:
            message = self.loads(data)
        except Exception as exc:
            raise ValueError(f"cannot decode a layer message: {exc}") from exc
        if not isinstance(message, dict):
            raise ValueError(f"a layer message must decode to a dict, not {type(message)}")
        return message

    def _decrypt(self, data: bytes) -> bytes:
        from cryptography.fernet import InvalidToken

        assert self.crypter is not None
        try:
            decrypted: bytes = self.crypter.decrypt(data, self.ttl)
        except InvalidToken as exc:
            raise ValueError("cannot decrypt a layer message: wrong key or expired") from exc
        return decrypted


def _codec(format: str) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    if format == "json":
        return (lambda message: json.dumps(message).encode("utf-8")), json.loads
    if format != "msgpack":
        raise ValueError(f"serializer_format must be 'msgpack' or 'json', not {format!r}")
    try:
        import msgpack
    except ImportError as exc:
        raise ValueError(
            "the msgpack format needs msgpack: pip install 'achannels[redis]'"
        ) from exc
    return msgpack.packb, msgpack.unpackb


def _crypter(keys: Sequence[str | bytes]) -> Any:
    if isinstance(keys, str | bytes):
        raise ValueError("symmetric_encryption_keys must be a list of possible keys")
    try:
        from cryptography.fernet import Fernet, MultiFernet
    except ImportError as exc:
        raise ValueError("encryption needs cryptography: pip install 'achannels[redis]'") from exc
    fernets = []
    for key in keys:
        raw = key.encode("utf-8") if isinstance(key, str) else key
        fernets.append(Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest())))
    return MultiFernet(fernets)


def pack_group_messages(
    members: Iterable[str],
    message: LayerMessage,
    *,
    prefix: str,
    serializer: Serializer,
) -> dict[str, tuple[bytes, list[str]]]:
    """Encode one group message per destination key, as channels_redis does.

    Members that are process-local channels of one process share a key, so they
    share one encoded message naming them all in ``"__asgi_channel__"``.

    Returns:
        key -> (encoded message, the member channels it carries; the first one's
        capacity applies to the key).
    """
    targets: dict[str, list[str]] = {}
    for member in members:
        targets.setdefault(channel_key(prefix, member), []).append(member)
    return {
        key: (serializer.serialize({**message, ASGI_CHANNEL: names}), names)
        for key, names in targets.items()
    }


# The scripts. Each runs atomically on one shard (one key slot in a Cluster).

#: KEYS[1] channel; ARGV: now, expiry, capacity, message. Returns expired count, or
#: -1 - expired when the channel is full (nothing added).
SEND: Final = b"""
local expired = redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, tonumber(ARGV[1]) - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return -1 - expired
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
return expired
"""

#: KEYS[1] group; ARGV: now, group_expiry, channel. Adds (or refreshes) a member.
GROUP_ADD: Final = b"""
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
return 1
"""

#: KEYS[1] group; ARGV: now, group_expiry. Drops lapsed members, returns the rest.
GROUP_MEMBERS: Final = b"""
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, tonumber(ARGV[1]) - tonumber(ARGV[2]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

#: KEYS: channel keys; ARGV: now, expiry, drop_oldest (0/1), then per key its message
#: and capacity. Returns {expired, dropped_oldest, full key indexes (1-based)...}.
GROUP_SEND: Final = b"""
local now = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2])
local drop_oldest = ARGV[3] == '1'
local ttl = math.ceil(expiry)
local expired = 0
local dropped = 0
local result = {0, 0}
for i = 1, #KEYS do
    local key = KEYS[i]
    expired = expired + redis.call('ZREMRANGEBYSCORE', key, 0, now - expiry)
    local room = redis.call('ZCARD', key) < tonumber(ARGV[3 + 2 * i])
    if not room and drop_oldest then
        redis.call('ZPOPMIN', key)
        dropped = dropped + 1
        room = true
    end
    if room then
        redis.call('ZADD', key, now, ARGV[2 + 2 * i])
        redis.call('EXPIRE', key, ttl)
    else
        result[#result + 1] = i
    end
end
result[1] = expired
result[2] = dropped
return result
"""
