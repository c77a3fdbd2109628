"""Channel layers on Redis: achannels across processes and machines.

:class:`RedisChannelLayer` is channels_redis's ``RedisChannelLayer`` rebuilt on
AnyIO and coredis: the same settings, keys and message format (so Channels and
achannels processes share one Redis during a migration), on trio or asyncio.
:class:`RedisPubSubChannelLayer` is its pub/sub sibling.

**Who owns the background work.** A layer used inside ``async with layer:`` (which
``Router(layer=...)``'s lifespan, ``ProtocolTypeRouter``'s lifespan,
``open_channel_layer()`` and the worker commands do for you) keeps, for that block,
one connection pool per shard and the receive loops of this process, all in a task
group the block owns. Used where nobody owns it (a sync view through
``async_to_sync``, a Celery task, a test with no set-up, another thread), every call
opens its own short-lived connection instead: slower, never leaking, never failing
for want of an owner.

**Receiving never loses a message to cancellation.** A blocking pop is never
cancelled while Redis may be answering it. With an owner, one receive loop per shard
and process-channel key pops messages into bounded per-channel buffers that
``receive()`` waits on, so cancelling ``receive()`` touches no socket; without one,
``receive()`` runs its short blocking pop shielded and keeps what arrives for the
next call.

**Where it differs from channels_redis, on purpose.**

* A process-local channel (``"specific.<process>!<id>"``) is sent to the shard of
  its process key, where its receiver reads; channels_redis hashes the full name and
  loses such messages with several shards (Channels #1492). The receive loops read
  every shard, so messages from channels_redis processes still arrive.
* Nothing is dropped silently: a full channel in a group send, a full local buffer,
  an expired or undecodable message are counted in :meth:`statistics` and logged,
  under the memory layer's ``group_full_policy``.
* ``send()`` is one round trip (a script), and ``group_send()`` one round trip for
  the members plus one per shard that holds members, not one per member.
* Group memberships made by this process are added again after Redis restarts.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import math
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any, Final, NamedTuple, Self

import anyio
import anyio.abc
from anyio.lowlevel import checkpoint

from achannels.exceptions import ChannelFull, ChannelLayerUnavailable
from achannels.layers._base import (
    BaseChannelLayer,
    CapacityPattern,
    LayerMessage,
    RedisLayerStatistics,
)
from achannels.layers._drops import DropReporter
from achannels.layers._names import (
    non_local_name,
    require_valid_channel_name,
    require_valid_group_name,
    require_valid_message,
)
from achannels.layers._redis_client import (
    Client,
    connection_failure,
    describe_host,
    is_cluster,
    open_client,
)
from achannels.layers._redis_pubsub import RedisPubSubChannelLayer
from achannels.layers._redis_wire import (
    ASGI_CHANNEL,
    GROUP_ADD,
    GROUP_MEMBERS,
    GROUP_SEND,
    SEND,
    HostConfig,
    Serializer,
    SerializerFormat,
    channel_key,
    consistent_hash,
    decode_hosts,
    group_key,
    pack_group_messages,
)
from achannels.layers.memory import GroupFullPolicy

__all__ = ["RedisChannelLayer", "RedisLayerStatistics", "RedisPubSubChannelLayer"]

logger = logging.getLogger("achannels.layers.redis")

_POLICIES: Final = ("skip", "raise", "drop_oldest")
_DRAIN: Final = 100  # messages a receive loop takes per round trip after a blocking pop
_BACKOFF_MIN: Final = 0.05
_BACKOFF_MAX: Final = 1.0


class _Item(NamedTuple):
    expires_at: float  # wall clock, as Redis scores are
    message: LayerMessage
    raw: bytes  # kept to put a normal channel's message back when nobody takes it
    score: float
    shard: int


class _Inbox:
    """One channel's local buffer and the receivers parked on it."""

    __slots__ = ("capacity", "items", "waiters", "woken")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: deque[_Item] = deque()
        self.waiters: dict[anyio.Event, None] = {}
        self.woken = 0

    def wake_if_owed(self) -> None:
        if self.waiters and self.woken < len(self.items):
            event = next(iter(self.waiters))
            del self.waiters[event]
            self.woken += 1
            event.set()


class _Owner:
    """What exists while someone owns the layer: pools, receive loops, their group."""

    def __init__(self, task_group: anyio.abc.TaskGroup, clients: list[Client]) -> None:
        self.task_group = task_group
        self.clients = clients
        self.thread = threading.get_ident()
        self.loops: dict[tuple[int, str], anyio.Event] = {}  # (shard, key) -> demand signal
        self.shard_up = [anyio.Event() for _ in clients]  # set when a call on it succeeds
        self.stale = [False for _ in clients]  # memberships to restore before the next call
        self.stopping = False
        self.idle = anyio.Event()  # set when the last loop ends
        self.depth = 1


class RedisChannelLayer(BaseChannelLayer):
    """A channel layer on one or more Redis servers (sharded), Sentinel or a Cluster.

    Args:
        hosts: a list of shards, as channels_redis takes them: URLs,
            ``(host, port)`` pairs, ``{"address": url, ...}`` dicts, Sentinel
            ``{"sentinels": [(host, port), ...], "master_name": ...}`` dicts, or
            ``{"address": url, "cluster": True}`` for a Redis Cluster. Default
            ``redis://localhost:6379``.
        prefix: the prefix of every key (channels_redis's default, ``"asgi"``).
        expiry: seconds a message may wait unread.
        group_expiry: seconds a membership lasts after ``group_add``.
        capacity: messages a channel holds before ``send`` raises ``ChannelFull``.
        channel_capacity: per-channel capacities by glob or compiled regex.
        symmetric_encryption_keys: Fernet-encrypt messages (channels_redis's keys).
        random_prefix_length: random bytes before each message (keep channels_redis's 12).
        serializer_format: ``"msgpack"`` or ``"json"``.
        group_full_policy: ``"skip"``, ``"drop_oldest"`` or ``"raise"``, as the memory
            layer's: what a group send does for a member whose channel is full.

    Raises:
        ValueError: an invalid capacity, expiry, policy, format or key list.
    """

    extensions = ("groups", "flush")
    #: Seconds a blocking pop waits on the server; bounds how long closing the layer
    #: waits for its receive loops, and how long an unowned receive defers a cancel.
    brpop_timeout: float = 1.0
    #: The server-side wait of one shielded pop when nobody owns the layer.
    unowned_poll: float = 0.25

    def __init__(
        self,
        hosts: Sequence[Any] | None = None,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[CapacityPattern, int] | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        random_prefix_length: int = 12,
        serializer_format: SerializerFormat = "msgpack",
        group_full_policy: GroupFullPolicy = "skip",
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        if not isinstance(prefix, str):
            raise TypeError("prefix must be a str")
        if not group_expiry > 0:
            raise ValueError(f"group_expiry must be positive, not {group_expiry!r}")
        if group_full_policy not in _POLICIES:
            raise ValueError(f"group_full_policy must be one of {_POLICIES}")
        self.hosts: list[HostConfig] = decode_hosts(hosts)
        self.ring_size = len(self.hosts)
        self.prefix = prefix
        self.group_expiry = group_expiry
        self.group_full_policy = group_full_policy
        self.serializer = Serializer(
            serializer_format,
            symmetric_encryption_keys=symmetric_encryption_keys,
            random_prefix_length=random_prefix_length,
            expiry=expiry,
        )
        self.client_prefix = secrets.token_hex(16)
        self._send_index = itertools.cycle(range(self.ring_size))
        self._owner: _Owner | None = None
        self._inboxes: dict[str, _Inbox] = {}
        self._released: dict[str, float] = {}  # channel -> when late arrivals stop mattering
        self._memberships: dict[str, dict[str, float]] = {}  # group -> channel -> joined
        self._process_keys: set[str] = set()
        self._drops = DropReporter()
        self._counts: dict[str, int] = dict.fromkeys(
            ("sent", "delivered", "dropped_full", "expired", "discarded", "errors",
             "unavailable", "reconnects", "undecodable"),
            0,
        )  # fmt: skip

    def __repr__(self) -> str:
        hosts = ", ".join(describe_host(host) for host in self.hosts)
        return f"{type(self).__name__}(hosts=[{hosts}], prefix={self.prefix!r})"

    # -- ownership ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Own the layer's pools and receive loops until the block ends.

        Entering again from the owner's thread nests (the outermost block owns).
        Other threads and event loops keep using per-call connections.

        Raises:
            RuntimeError: another thread owns the layer.
        """
        owner = self._owner
        if owner is not None:
            if owner.thread != threading.get_ident():
                raise RuntimeError("this RedisChannelLayer is owned by another thread")
            owner.depth += 1
            return self
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            clients = [
                await stack.enter_async_context(
                    open_client(host, on_failover=functools.partial(self._failed_over, index))
                )
                for index, host in enumerate(self.hosts)
            ]
            task_group = await stack.enter_async_context(anyio.create_task_group())
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        self._owner = _Owner(task_group, clients)
        self._owner.idle.set()
        self._stack = stack
        task_group.start_soon(self._housekeeping, self._owner)
        for key in self._process_keys:
            self._start_process_loops(self._owner, key)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the receive loops (letting in-flight pops finish), then close the pools."""
        owner = self._owner
        assert owner is not None, "RedisChannelLayer exited without being entered"
        owner.depth -= 1
        if owner.depth:
            return
        owner.stopping = True
        for demand in owner.loops.values():
            demand.set()
        with anyio.move_on_after(self.brpop_timeout + 2, shield=True):
            await owner.idle.wait()
        owner.task_group.cancel_scope.cancel()
        self._owner = None
        try:
            # The body's exception is the caller's: the group must not wrap it.
            await self._stack.__aexit__(None, None, None)
        finally:
            for inbox in self._inboxes.values():  # parked receivers go on without an owner
                for event in inbox.waiters:
                    event.set()
                inbox.woken += len(inbox.waiters)
                inbox.waiters.clear()

    def _failed_over(self, index: int) -> None:
        # Writes the old primary had not replicated may be gone: restore memberships.
        self._counts["reconnects"] += 1
        if self._owner is not None:
            self._owner.stale[index] = True

    def _owned_here(self) -> _Owner | None:
        owner = self._owner
        if owner is not None and not owner.stopping and owner.thread == threading.get_ident():
            return owner
        return None

    @asynccontextmanager
    async def _connect(self, index: int) -> AsyncIterator[Client]:
        """Yield a client for shard ``index``: the owner's, or one for this call.

        Raises:
            ChannelLayerUnavailable: the shard cannot be reached.
        """
        owner = self._owned_here()
        try:
            if owner is not None:
                client = owner.clients[index]
                if owner.stale[index]:  # a loop lost the shard: Redis may have restarted empty
                    await self._rejoin_groups(client, index)
                    owner.stale[index] = False
                yield client
                owner.shard_up[index].set()  # a receive loop backing off may retry now
            else:
                async with open_client(self.hosts[index]) as client:
                    yield client
        except BaseException as exc:
            failure = connection_failure(exc)
            if failure is None:
                raise
            self._counts["errors"] += 1
            self._counts["unavailable"] += 1
            where = describe_host(self.hosts[index])
            raise ChannelLayerUnavailable(f"Redis at {where} is unavailable: {failure!r}") from exc

    # -- the layer API ----------------------------------------------------------------

    async def send(self, channel: str, message: LayerMessage) -> None:
        """Put ``message`` on ``channel`` (one round trip).

        A process-local channel's message goes to the shard of its process key, with
        the full name in ``"__asgi_channel__"``; a normal channel's goes to the next
        shard in turn, as with channels_redis.

        Raises:
            ChannelFull: the channel holds its capacity of unexpired messages.
            ChannelLayerUnavailable: Redis cannot be reached (the message was not sent,
                or, if the connection broke after sending, may have been).
            TypeError: an invalid channel name or message.
        """
        require_valid_channel_name(channel)
        require_valid_message(message)
        if "!" in channel:
            payload = {**message, ASGI_CHANNEL: channel}
            index = consistent_hash(non_local_name(channel), self.ring_size)
        else:
            payload, index = message, next(self._send_index)
        data = self.serializer.serialize(payload)
        key = channel_key(self.prefix, channel)
        args = (time.time(), self.expiry, self.get_capacity(channel), data)
        async with self._connect(index) as client:
            result = int(await _eval(client, SEND, [key], args))
        if result < 0:
            self._counts["expired"] += -1 - result
            raise ChannelFull(channel)
        self._counts["expired"] += result
        self._counts["sent"] += 1

    async def new_channel(self, prefix: str = "specific") -> str:
        """Return a new process-local channel name, ``"<prefix>.<process>!<random>"``.

        With an owner, the receive loops for its process key start now, so messages
        sent to it are buffered even before the first ``receive()``. A checkpoint.
        """
        name = f"{prefix}.{self.client_prefix}!{secrets.token_hex(16)}"
        require_valid_channel_name(name)
        key = channel_key(self.prefix, name)
        if key not in self._process_keys:
            self._process_keys.add(key)
            if (owner := self._owned_here()) is not None:
                self._start_process_loops(owner, key)
        await checkpoint()
        return name

    async def receive(self, channel: str) -> LayerMessage:
        """Wait for the next message on ``channel`` and return it.

        Cancellation takes no message: with an owner, ``receive()`` only waits on a
        local buffer; without one, a pop in flight completes (shielded, at most
        ``unowned_poll`` seconds) and what it took waits for the next call.

        Raises:
            TypeError: an invalid channel name.
            ValueError: a process-local channel that this layer did not create.
        """
        if channel not in self._inboxes:  # a buffered channel's name was checked already
            require_valid_channel_name(channel)
            if "!" in channel and not non_local_name(channel).endswith(self.client_prefix + "!"):
                raise ValueError(f"{channel!r} is not a channel of this layer (wrong prefix)")
        while True:
            owner = self._owned_here()
            if owner is not None:
                message = await self._receive_owned(owner, channel)
            else:
                await checkpoint()
                message = await self._receive_unowned(channel)
            if message is not None:
                return message

    def receive_nowait(self, channel: str) -> LayerMessage:
        """Return the next message already buffered in this process for ``channel``.

        Raises:
            anyio.WouldBlock: nothing is buffered (``receive()`` would wait).
        """
        inbox = self._inboxes.get(channel)
        message = None if inbox is None else self._take(channel, inbox)
        if message is None:
            raise anyio.WouldBlock
        return message

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (or refresh it), as channels_redis does (one round trip).

        Raises:
            ChannelLayerUnavailable: Redis cannot be reached.
        """
        require_valid_group_name(group)
        require_valid_channel_name(channel)
        now = time.time()
        key = group_key(self.prefix, group)
        async with self._connect(consistent_hash(group, self.ring_size)) as client:
            await _eval(client, GROUP_ADD, [key], (now, self.group_expiry, channel))
        self._memberships.setdefault(group, {})[channel] = now

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; do nothing if it is not a member."""
        require_valid_group_name(group)
        require_valid_channel_name(channel)
        self._forget_membership(group, channel)
        async with self._connect(consistent_hash(group, self.ring_size)) as client:
            await client.zrem(group_key(self.prefix, group), [channel])

    async def group_send(self, group: str, message: LayerMessage) -> None:
        """Send ``message`` to every member of ``group`` without waiting for any.

        One round trip reads the members; then one script per shard (per key slot
        in a Cluster) delivers to all of that shard's members. A member whose channel
        is full is handled by ``group_full_policy`` and counted in ``dropped_full``.

        Raises:
            ChannelFull: under ``"raise"``, after every member with room got it.
            ChannelLayerUnavailable: Redis cannot be reached (some members may have
                received the message).
        """
        require_valid_group_name(group)
        require_valid_message(message)
        now = time.time()
        async with self._connect(consistent_hash(group, self.ring_size)) as client:
            raw = await _eval(client, GROUP_MEMBERS, [group_key(self.prefix, group)],
                              (now, self.group_expiry))  # fmt: skip
        members = [m.decode() if isinstance(m, bytes) else str(m) for m in raw]
        if not members:
            await checkpoint()
            return
        packed = pack_group_messages(
            members, message, prefix=self.prefix, serializer=self.serializer
        )
        full: list[str] = []
        for index, keys in self._keys_by_shard(packed).items():
            full += await self._deliver(index, keys, packed, now)
        if full:
            self._report_full(group, full)

    async def _add_members(self, client: Client, group: str, members: dict[str, float]) -> None:
        key = group_key(self.prefix, group)
        await client.zadd(key, members)
        await client.expire(key, math.ceil(self.group_expiry))

    async def discard_channel(self, channel: str) -> int:
        """Release ``channel``: leave the groups this process added it to, drop its buffer.

        achannels calls this when the connection that owned the channel ends. Messages
        still buffered, and any arriving later, are counted in ``discarded``.
        Returns how many were buffered.
        """
        require_valid_channel_name(channel)
        for group in [g for g, members in self._memberships.items() if channel in members]:
            await self.group_discard(group, channel)
        inbox = self._inboxes.pop(channel, None)
        dropped = 0 if inbox is None else len(inbox.items)
        self._counts["discarded"] += dropped
        if "!" in channel:
            self._released[channel] = time.time() + self.expiry
        await checkpoint()
        return dropped

    async def flush(self) -> None:
        """Delete every key under the prefix on every shard, and what is buffered here."""
        for index in range(self.ring_size):
            async with self._connect(index) as client:
                await _delete_prefixed(client, self.prefix, is_cluster(self.hosts[index]))
        self._memberships.clear()
        self._released.clear()
        for channel, inbox in list(self._inboxes.items()):
            inbox.items.clear()
            if not inbox.waiters:
                del self._inboxes[channel]

    async def close(self) -> None:
        """Release nothing: pools and loops belong to the ``async with`` block. A checkpoint."""
        await checkpoint()

    def statistics(self) -> RedisLayerStatistics:
        """Return the counters (expired local buffers are swept first)."""
        self._sweep(time.time())
        owner = self._owner
        return RedisLayerStatistics(
            **self._counts,
            channels=len(self._inboxes),
            groups=len(self._memberships),
            group_members=sum(len(m) for m in self._memberships.values()),
            owned=owner is not None,
            receive_loops=0 if owner is None else len(owner.loops),
        )

    # -- receiving -----------------------------------------------------------------

    def _inbox(self, channel: str) -> _Inbox:
        inbox = self._inboxes.get(channel)
        if inbox is None:
            inbox = self._inboxes[channel] = _Inbox(self.get_capacity(channel))
        return inbox

    def _take(self, channel: str, inbox: _Inbox) -> LayerMessage | None:
        now = time.time()
        items = inbox.items
        while items:
            item = items.popleft()
            if item.expires_at >= now:
                self._counts["delivered"] += 1
                return item.message
            self._counts["expired"] += 1
            logger.warning("a message for %r expired in this process's buffer", channel)
        if not inbox.waiters and not inbox.woken:
            self._inboxes.pop(channel, None)
        return None

    async def _receive_owned(self, owner: _Owner, channel: str) -> LayerMessage | None:
        inbox = self._inbox(channel)
        if "!" in channel:
            key = channel_key(self.prefix, channel)
            if key not in self._process_keys:
                self._process_keys.add(key)
                self._start_process_loops(owner, key)
        if len(inbox.items) > inbox.woken:
            await checkpoint()  # this call may not wait: check for cancellation before taking
        while (message := self._take(channel, inbox)) is None:
            inbox = self._inbox(channel)
            event = anyio.Event()
            inbox.waiters[event] = None
            if "!" not in channel:
                self._want(owner, channel)
            try:
                await event.wait()
            except BaseException:
                if event in inbox.waiters:
                    del inbox.waiters[event]
                else:  # woken for a message it will not take: pass the wake-up on
                    inbox.woken -= 1
                    inbox.wake_if_owed()
                raise
            inbox.woken -= 1
            if self._owned_here() is not owner:
                return None  # the owner left: go on without one
        return message

    async def _receive_unowned(self, channel: str) -> LayerMessage:
        key = channel_key(self.prefix, channel)
        home = consistent_hash(non_local_name(channel), self.ring_size)
        while True:
            inbox = self._inboxes.get(channel)
            if inbox is not None and (message := self._take(channel, inbox)) is not None:
                return message
            # Take what waits on any shard first, then wait on the likeliest one.
            with anyio.CancelScope(shield=True):
                if not await self._pop_waiting(key):
                    await self._pop_blocking(home, key)
            await checkpoint()

    async def _pop_waiting(self, key: str) -> bool:
        found = False
        for index in range(self.ring_size) if self.ring_size > 1 else ():
            async with self._connect(index) as client:
                for scored in await client.zpopmin(key, 1) or ():
                    self._dispatch(index, key, scored.member, float(scored.score))
                    found = True
        return found

    async def _pop_blocking(self, index: int, key: str) -> None:
        async with self._connect(index) as client:
            popped = await client.bzpopmin([key], timeout=self.unowned_poll)
        if popped is not None:
            self._dispatch(index, key, popped[1], float(popped[2]))

    # -- receive loops (with an owner) -------------------------------------------------

    def _start_process_loops(self, owner: _Owner, key: str) -> None:
        for index in range(self.ring_size):
            self._start_loop(owner, index, key, None)

    def _want(self, owner: _Owner, channel: str) -> None:
        key = channel_key(self.prefix, channel)
        for index in range(self.ring_size):
            demand = owner.loops.get((index, key))
            if demand is None:
                self._start_loop(owner, index, key, channel)
            else:
                demand.set()

    def _start_loop(self, owner: _Owner, index: int, key: str, channel: str | None) -> None:
        if owner.stopping or (index, key) in owner.loops:
            return
        owner.loops[(index, key)] = anyio.Event()
        owner.idle = anyio.Event()
        owner.task_group.start_soon(self._run_loop, owner, index, key, channel)

    async def _run_loop(self, owner: _Owner, index: int, key: str, channel: str | None) -> None:
        """Pop ``key`` on shard ``index`` into local buffers until the owner stops.

        ``channel`` is ``None`` for a process key (pop everything); for a normal
        channel the loop pops only what parked receivers want, and ends once none
        has waited for ``brpop_timeout``.
        """
        try:
            await self._loop_body(owner, index, key, channel)
        finally:
            del owner.loops[(index, key)]
            if channel is not None:
                await self._put_back(owner, channel)
            if not owner.loops:
                owner.idle.set()

    async def _loop_body(self, owner: _Owner, index: int, key: str, channel: str | None) -> None:
        client = owner.clients[index]
        backoff = 0.0
        while not owner.stopping:
            want = _DRAIN if channel is None else self._wanted(channel)
            if want <= 0:
                demand = owner.loops[(index, key)] = anyio.Event()
                with anyio.move_on_after(self.brpop_timeout):
                    await demand.wait()
                if self._wanted(channel or "") <= 0 and not owner.stopping:
                    return
                continue
            try:
                if backoff:  # the first call after a failure: Redis may have restarted empty
                    await self._rejoin_groups(client, index)
                    owner.stale[index] = False
                    backoff = 0.0
                    self._counts["reconnects"] += 1
                    logger.warning("receive loop for %s on shard %d reconnected", key, index)
                await self._pop_into_buffers(client, index, key, want)
            except Exception as exc:  # even a bug must not stop this process's deliveries
                if connection_failure(exc, also=(ChannelLayerUnavailable,)) is None:
                    logger.exception("receive loop for %s failed", key)
                backoff = await self._back_off(owner, backoff, key, index, exc)

    async def _back_off(
        self, owner: _Owner, backoff: float, key: str, index: int, exc: Exception
    ) -> float:
        """Wait before retrying; a caller's success on the shard ends the wait early."""
        backoff = min(_BACKOFF_MAX, max(_BACKOFF_MIN, backoff * 2))
        owner.stale[index] = True
        self._counts["errors"] += 1
        logger.warning(
            "receive loop for %s on %s failed (%s); retrying in about %.2fs",
            key, describe_host(self.hosts[index]), repr(exc), backoff,
        )  # fmt: skip
        del exc  # a kept traceback would keep the failed connection alive
        up = owner.shard_up[index] = anyio.Event()
        with anyio.move_on_after(backoff * (0.5 + secrets.randbelow(1000) / 1000)):
            await up.wait()
        return backoff

    def _wanted(self, channel: str) -> int:
        inbox = self._inboxes.get(channel)
        if inbox is None:
            return 0
        return len(inbox.waiters) + inbox.woken - len(inbox.items)

    async def _pop_into_buffers(self, client: Client, index: int, key: str, want: int) -> None:
        # Never cancelled mid-command: the owner stops loops by flag and waits for them.
        popped = await client.bzpopmin([key], timeout=self.brpop_timeout)
        if popped is None:
            return
        self._dispatch(index, key, popped[1], float(popped[2]))
        if want > 1:
            for scored in await client.zpopmin(key, want - 1) or ():
                self._dispatch(index, key, scored.member, float(scored.score))

    def _dispatch(self, index: int, key: str, raw: bytes, score: float) -> None:
        """Decode one popped message and buffer it for each local channel it names."""
        try:
            message = self.serializer.deserialize(raw)
        except ValueError as exc:
            self._counts["undecodable"] += 1
            logger.warning("dropped a message on %s that cannot be decoded: %s", key, exc)
            return
        targets: Any = message.pop(ASGI_CHANNEL, None)
        if targets is None:
            targets = [key[len(self.prefix) :]]
        elif isinstance(targets, str):
            targets = [targets]
        expires_at = score + self.expiry
        for channel in targets:
            self._buffer(str(channel), _Item(expires_at, message, raw, score, index))

    def _buffer(self, channel: str, item: _Item) -> None:
        if channel in self._released:
            self._counts["discarded"] += 1
            return
        inbox = self._inbox(channel)
        if len(inbox.items) >= inbox.capacity:
            self._counts["dropped_full"] += 1
            self._drops.report(f"(buffer of {channel})", [channel], self.group_full_policy,
                               time.monotonic())  # fmt: skip
            if self.group_full_policy != "drop_oldest":
                return
            inbox.items.popleft()
        inbox.items.append(item)
        inbox.wake_if_owed()

    async def _put_back(self, owner: _Owner, channel: str) -> None:
        """Return what a normal channel's loop popped but nobody took to Redis."""
        inbox = self._inboxes.get(channel)
        if inbox is None or inbox.waiters or inbox.woken or not inbox.items:
            return
        items = list(inbox.items)
        inbox.items.clear()
        self._inboxes.pop(channel, None)
        key = channel_key(self.prefix, channel)
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            for item in items:
                try:
                    await owner.clients[item.shard].zadd(key, {item.raw: item.score})
                except Exception as exc:
                    if connection_failure(exc) is None:
                        raise
                    self._counts["errors"] += 1
                    self._counts["discarded"] += 1
                    logger.warning("could not return a message to %r; it is lost", channel)

    async def _rejoin_groups(self, client: Client, index: int) -> None:
        """Add this process's memberships on shard ``index`` again (Redis may have restarted)."""
        await client.ping()  # the shard answers, even with no membership to restore
        for group, members in list(self._memberships.items()):
            if members and consistent_hash(group, self.ring_size) == index:
                await self._add_members(client, group, dict(members))

    async def _housekeeping(self, owner: _Owner) -> None:
        period = max(1.0, min(30.0, self.expiry / 2))
        while True:
            await anyio.sleep(period)
            self._sweep(time.time())

    def _sweep(self, now: float) -> None:
        for channel, inbox in list(self._inboxes.items()):
            if inbox.waiters or inbox.woken:
                continue
            while inbox.items and inbox.items[0].expires_at < now:
                inbox.items.popleft()
                self._counts["expired"] += 1
            if not inbox.items:
                del self._inboxes[channel]
        for channel in [c for c, until in self._released.items() if until < now]:
            del self._released[channel]
        lapsed = now - self.group_expiry
        for group, members in list(self._memberships.items()):
            for channel in [c for c, joined in members.items() if joined < lapsed]:
                self._forget_membership(group, channel)

    # -- group sends -----------------------------------------------------------------

    def _keys_by_shard(self, packed: Mapping[str, Any]) -> dict[int, list[str]]:
        shards: dict[int, list[str]] = {}
        for key in packed:
            index = consistent_hash(key[len(self.prefix) :], self.ring_size)
            shards.setdefault(index, []).append(key)
        return shards

    async def _deliver(
        self, index: int, keys: list[str], packed: Mapping[str, tuple[bytes, list[str]]], now: float
    ) -> list[str]:
        """Run the group-send script for ``keys`` on one shard; return the full members."""
        full: list[str] = []
        batches = _by_slot(keys) if is_cluster(self.hosts[index]) else [keys]
        drop_oldest = "1" if self.group_full_policy == "drop_oldest" else "0"
        async with self._connect(index) as client:
            for batch in batches:
                args: list[Any] = [now, self.expiry, drop_oldest]
                for key in batch:
                    args += [packed[key][0], self.get_capacity(packed[key][1][0])]
                result = await _eval(client, GROUP_SEND, batch, args)
                full += self._count_delivery(batch, packed, result)
        return full

    def _count_delivery(
        self, batch: list[str], packed: Mapping[str, tuple[bytes, list[str]]], result: Sequence[Any]
    ) -> list[str]:
        expired, dropped, *full_indexes = (int(x) for x in result)
        self._counts["expired"] += expired
        self._counts["dropped_full"] += dropped
        full = [name for i in full_indexes for name in packed[batch[i - 1]][1]]
        self._counts["dropped_full"] += len(full)
        self._counts["sent"] += sum(len(packed[key][1]) for key in batch) - len(full)
        if dropped:
            self._drops.report("(oldest dropped)", ["..."] * dropped, "drop_oldest",
                               time.monotonic())  # fmt: skip
        return full

    def _report_full(self, group: str, full: list[str]) -> None:
        if self.group_full_policy == "raise":
            shown = ", ".join(full[:3]) + (", ..." if len(full) > 3 else "")
            raise ChannelFull(f"{len(full)} member(s) of group {group!r} full: {shown}")
        self._drops.report(group, full, self.group_full_policy, time.monotonic())

    def _forget_membership(self, group: str, channel: str) -> None:
        members = self._memberships.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self._memberships[group]


def _sha(script: bytes) -> str:
    return hashlib.sha1(script, usedforsecurity=False).hexdigest()


_SHAS: Final = {script: _sha(script) for script in (SEND, GROUP_ADD, GROUP_MEMBERS, GROUP_SEND)}


async def _eval(client: Client, script: bytes, keys: Sequence[str], args: Iterable[Any]) -> Any:
    """Run ``script`` by its SHA, loading it on the first ``NOSCRIPT`` (a restart too)."""
    from coredis.exceptions import NoScriptError

    values = [_arg(a) for a in args]
    try:
        return await client.evalsha(_SHAS[script], keys=keys, args=values)
    except NoScriptError:
        return await client.eval(script, keys=keys, args=values)


def _arg(value: Any) -> Any:
    return repr(value) if isinstance(value, float) else value


def _by_slot(keys: list[str]) -> list[list[str]]:
    from coredis._utils import hash_slot

    slots: dict[int, list[str]] = {}
    for key in keys:
        slots.setdefault(hash_slot(key.encode()), []).append(key)
    return list(slots.values())


async def _delete_prefixed(client: Client, prefix: str, cluster: bool) -> None:
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
    batch: list[Any] = []
    async for key in client.scan_iter(match=pattern, count=1000):
        batch.append(key)
        if len(batch) >= 500:
            await _delete(client, batch, cluster)
            batch = []
    if batch:
        await _delete(client, batch, cluster)


async def _delete(client: Client, keys: list[Any], cluster: bool) -> None:
    if cluster:
        for key in keys:
            await client.delete([key])
    else:
        await client.delete(keys)
