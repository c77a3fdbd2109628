"""The pub/sub channel layer: channels_redis's ``RedisPubSubChannelLayer`` on AnyIO.

:class:`RedisPubSubChannelLayer` moves messages through Redis PUBLISH/SUBSCRIBE
instead of sorted sets. It speaks channels_redis 4.3's pub/sub wire format, so a
Channels process and an achannels process on one Redis talk to each other:

* a channel is the Redis pub/sub channel of exactly its name, and ``new_channel()``
  returns ``f"{prefix}{channel_prefix}{32 random hex digits}"``;
* a group is the pub/sub channel ``f"{prefix}__group__{group}"``;
* a message is msgpack (or JSON), optionally Fernet-encrypted, with no random prefix;
* a name is PUBLISHed and SUBSCRIBEd on the shard ``consistent_hash(name, shards)``.

**At most once.** Redis pub/sub stores nothing: a message reaches the processes
subscribed to its channel at the moment it is published, and nobody else, ever. A
message sent to a channel or group that no process is subscribed to (its receiver
has not subscribed yet, is reconnecting, or is gone) is lost, and the sender cannot
know: ``send()`` never raises ``ChannelFull``, and ``PUBLISH`` succeeds whoever
listens. Use :class:`~achannels.layers.redis.RedisChannelLayer` when messages must
wait for their receiver.

**Who owns the background work.** Inside ``async with layer:`` (which the app's
lifespan, ``open_channel_layer()`` and the worker commands do for you) the layer
keeps, per shard, a client and one subscriber loop that reads the shard's pub/sub
connection and dispatches each message into bounded per-channel buffers in this
process. After a lost connection the loop waits (exponential backoff with jitter),
connects again and subscribes to every channel and group this process still holds
(counted in ``statistics().reconnects``); what was published in between is lost.
Without an owner, ``send()`` and ``group_send()`` open a connection per call, and
``receive()`` subscribes to the channel and its groups for the duration of that call
only, so only messages published while it waits can reach it.

**Receiving.** Messages wait in this process's bounded buffer of their channel, and
``receive()`` takes them from there, so cancelling it loses nothing that arrived.
With an owner the channel stays subscribed until ``discard_channel()`` or
``flush()`` (channels_redis unsubscribes when a receive is cancelled); without one,
concurrent ``receive()`` calls on a channel share one per-call subscription. A
subscriber connection is shielded from its owner's cancellation and stopped by the
layer itself, so it always unsubscribes cleanly (bounded by coredis's timeouts).
A full buffer follows ``group_full_policy`` (``"skip"`` the new message or
``"drop_oldest"``), counted in ``dropped_full`` and logged; ``"raise"`` is refused,
because a full buffer is found by the receiving process, after the sender's
``PUBLISH`` has returned. A message that waits in a buffer longer than ``expiry`` is
discarded and counted in ``expired``. Messages are decoded once per process, so the
members of a group in one process share one ``dict``: treat it as immutable.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any, Final, Literal, NoReturn, Self, TypeAlias

import anyio
import anyio.abc
from anyio.lowlevel import checkpoint

from achannels.exceptions import ChannelLayerUnavailable
from achannels.layers._base import (
    BaseChannelLayer,
    CapacityPattern,
    LayerMessage,
    RedisLayerStatistics,
)
from achannels.layers._drops import DropReporter
from achannels.layers._names import (
    require_valid_channel_name,
    require_valid_group_name,
    require_valid_message,
)
from achannels.layers._redis_client import (
    Client,
    ConnectionFailure,
    connection_failure,
    describe_host,
    open_client,
)
from achannels.layers._redis_wire import (
    HostConfig,
    Serializer,
    SerializerFormat,
    consistent_hash,
    decode_hosts,
)

__all__ = ["PubSubFullPolicy", "RedisPubSubChannelLayer"]

logger = logging.getLogger("achannels.layers.redis_pubsub")

#: What a full local buffer does with a new message (see the module docs).
PubSubFullPolicy: TypeAlias = Literal["skip", "drop_oldest"]

_POLICIES: Final = ("skip", "drop_oldest")
_GROUP_INFIX: Final = "__group__"
_BACKOFF_MIN: Final = 0.05
_BACKOFF_MAX: Final = 2.0
_WITHDRAW_WAIT: Final = 1.0  # bounds the shielded unsubscribe of a cleanup
_UNAVAILABLE: Final = (ChannelLayerUnavailable,)
_GONE: Final[tuple[type[Exception], ...]] = (
    *ConnectionFailure, anyio.ClosedResourceError, anyio.BrokenResourceError,
)  # fmt: skip
_NOT_IN_PROCESS: Final = (
    "You can only call group_add() on channels that exist in-process.\n"
    "Consumers are encouraged to use the common pattern:\n"
    "   self.channel_layer.group_add({group!r}, self.channel_name)"
)

#: A coredis ``PubSub`` (entered), as ``Client`` is typed.
_PubSub: TypeAlias = Any
_Item: TypeAlias = tuple[float, LayerMessage]  # (monotonic deadline, message)
_Deliver: TypeAlias = Callable[[str, bytes], None]


class _Inbox:
    """One local channel's bounded buffer; receivers wait for the next arrival."""

    __slots__ = ("arrived", "capacity", "items")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: deque[_Item] = deque()
        self.arrived: anyio.Event | None = None

    async def wait(self) -> None:
        """Wait for the next arrival or wake-up; takes nothing, so cancelling loses nothing."""
        if self.arrived is None:
            self.arrived = anyio.Event()
        await self.arrived.wait()

    def wake(self) -> None:
        # Every waiter wakes and looks again: a channel rarely has more than one.
        if self.arrived is not None:
            self.arrived.set()
            self.arrived = None


class _Stopper:
    """Stops a loop by cancelling its innermost step, so a pub/sub around it ends cleanly.

    Cancelling a pub/sub's own tasks with the loop would make coredis wait out its
    unsubscribe timeout; stopping only the read inside it lets it unsubscribe at once.
    """

    def __init__(self) -> None:
        self.stopped = False
        self._steps: list[anyio.CancelScope] = []

    @contextmanager
    def step(self) -> Iterator[None]:
        """Run the block in a scope that :meth:`stop` cancels (at once, if it did already)."""
        with anyio.CancelScope() as scope:
            if self.stopped:
                scope.cancel()
            self._steps.append(scope)
            try:
                yield
            finally:
                self._steps.pop()

    def stop(self) -> None:
        self.stopped = True
        if self._steps:
            self._steps[-1].cancel()


class _Shard:
    """The owner's client of one shard and the state of its subscriber connection."""

    __slots__ = (
        "client", "connects", "index", "last_error", "live", "pubsub", "stopper", "subscribed",
    )  # fmt: skip

    def __init__(self, index: int, client: Client) -> None:
        self.index = index
        self.client = client  # for commands; the subscriber loop keeps its own
        self.stopper = _Stopper()  # ends the subscriber loop
        self.pubsub: _PubSub | None = None  # set while the subscriber connection is up
        self.live = anyio.Event()  # set exactly while ``pubsub`` is not None
        self.subscribed: set[str] = set()  # names confirmed on the current connection
        self.connects = 0
        self.last_error = "none yet"  # text only: an exception would keep its frames alive

    def connected(self, pubsub: _PubSub, subscribed: set[str]) -> None:
        self.pubsub = pubsub
        self.subscribed = subscribed
        self.connects += 1
        self.live.set()

    def disconnected(self) -> None:
        if self.pubsub is not None:
            self.pubsub = None
            self.subscribed = set()
            self.live = anyio.Event()


class _Listener:
    """An unowned ``receive()``'s subscription on one shard."""

    __slots__ = ("stop", "subscribed")

    def __init__(self) -> None:
        self.stop = anyio.CancelScope()
        self.subscribed = anyio.Event()


class _Owner:
    """What exists while someone owns the layer: clients, subscriber loops, their group."""

    def __init__(
        self, stack: AsyncExitStack, task_group: anyio.abc.TaskGroup, shards: list[_Shard]
    ) -> None:
        self.stack = stack
        self.task_group = task_group
        self.shards = shards
        self.thread = threading.get_ident()
        self.stopping = False
        self.depth = 1
        self.loops = 0


class RedisPubSubChannelLayer(BaseChannelLayer):
    """A channel layer on Redis pub/sub, wire-compatible with channels_redis's.

    Args:
        hosts: a list of shards, as channels_redis takes them: URLs, ``(host, port)``
            pairs, ``{"address": url, ...}`` dicts or Sentinel dicts. Default
            ``redis://localhost:6379``.
        prefix: the prefix of every channel and group name (default ``"asgi"``).
        expiry: seconds a message may wait in this process's buffer unread.
            channels_redis accepts and ignores it; here it bounds the buffers' age.
        capacity: messages a channel's local buffer holds.
        channel_capacity: per-channel buffer sizes by glob or compiled regex.
        symmetric_encryption_keys: Fernet-encrypt messages (channels_redis's keys).
        serializer_format: ``"msgpack"`` or ``"json"``.
        group_full_policy: ``"skip"`` or ``"drop_oldest"``: what a full local buffer
            does with a new message, whether it came from ``send`` or ``group_send``.

    Raises:
        ValueError: an invalid capacity, expiry, policy (``"raise"`` included), format
            or key list.

    Any thread may send; receive on a given channel from one thread (event loop) at a
    time, as with :class:`~achannels.layers.redis.RedisChannelLayer`.
    """

    extensions = ("groups", "flush")
    #: Seconds a call waits for the owner's subscriber connection to a shard (after a
    #: failure, its loop is reconnecting) before raising ``ChannelLayerUnavailable``.
    connect_wait: float = 5.0

    def __init__(
        self,
        hosts: Sequence[Any] | None = None,
        prefix: str = "asgi",
        expiry: float = 60,
        capacity: int = 100,
        channel_capacity: Mapping[CapacityPattern, int] | None = None,
        symmetric_encryption_keys: Sequence[str | bytes] | None = None,
        serializer_format: SerializerFormat = "msgpack",
        group_full_policy: PubSubFullPolicy = "skip",
    ) -> None:
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        if not isinstance(prefix, str):
            raise TypeError("prefix must be a str")
        if group_full_policy not in _POLICIES:
            raise ValueError(
                f"group_full_policy must be one of {_POLICIES}, not {group_full_policy!r}: "
                "a pub/sub sender cannot learn that a receiver's buffer is full"
            )
        self.hosts: list[HostConfig] = decode_hosts(hosts)
        self.ring_size = len(self.hosts)
        self.prefix = prefix
        self.group_full_policy: PubSubFullPolicy = group_full_policy
        self.serializer = Serializer(
            serializer_format,
            symmetric_encryption_keys=symmetric_encryption_keys,
            random_prefix_length=0,
        )
        self._owner: _Owner | None = None
        self._inboxes: dict[str, _Inbox] = {}  # this process's channels
        self._groups: dict[str, dict[str, None]] = {}  # group's pub/sub name -> members
        self._listening: set[str] = set()  # channels an unowned receive() subscribes now
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
        """Own one client and one subscriber loop per shard until the block ends.

        Connecting happens in the loops, so entering does not fail when Redis is down.
        Entering again from the owner's thread nests (the outermost block owns); other
        threads and event loops keep using per-call connections.

        Raises:
            RuntimeError: another thread owns the layer.
        """
        owner = self._owner
        if owner is not None:
            if owner.thread != threading.get_ident():
                raise RuntimeError("this RedisPubSubChannelLayer is owned by another thread")
            owner.depth += 1
            return self
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            clients = [await stack.enter_async_context(open_client(h)) for h in self.hosts]
            task_group = await stack.enter_async_context(anyio.create_task_group())
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        shards = [_Shard(index, client) for index, client in enumerate(clients)]
        owner = self._owner = _Owner(stack, task_group, shards)
        for shard in shards:
            task_group.start_soon(self._run_shard, owner, shard)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Cancel the subscriber loops, close the clients, and join all of it.

        Receivers still waiting in this thread go on without an owner.
        """
        owner = self._owner
        if owner is None:
            raise RuntimeError("RedisPubSubChannelLayer exited without being entered")
        owner.depth -= 1
        if owner.depth:
            return
        owner.stopping = True
        for shard in owner.shards:
            shard.stopper.stop()
        self._owner = None
        try:
            # The body's exception is the caller's: the group must not wrap it.
            await owner.stack.__aexit__(None, None, None)
        finally:
            for inbox in self._inboxes.values():
                inbox.wake()

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
                yield owner.shards[index].client
            else:
                async with open_client(self.hosts[index]) as client:
                    yield client
        except Exception as exc:
            failure = connection_failure(exc, also=_UNAVAILABLE)
            if failure is None:
                raise
            self._raise_unavailable(failure, index)

    def _raise_unavailable(self, failure: Exception, index: int) -> NoReturn:
        """Raise ``failure`` as ``ChannelLayerUnavailable``, counted once."""
        if isinstance(failure, ChannelLayerUnavailable):
            raise failure
        self._counts["errors"] += 1
        self._counts["unavailable"] += 1
        where = describe_host(self.hosts[index])
        raise ChannelLayerUnavailable(f"Redis at {where} is unavailable: {failure!r}") from failure

    # -- sending ----------------------------------------------------------------------

    async def send(self, channel: str, message: LayerMessage) -> None:
        """Publish ``message`` on ``channel`` (one ``PUBLISH`` on the channel's shard).

        At most once: only processes subscribed to ``channel`` right now get it, and
        this never raises ``ChannelFull`` (a full buffer is the receiver's to handle).
        A checkpoint; if cancelled, the message may or may not have been published.

        Raises:
            ChannelLayerUnavailable: Redis cannot be reached.
            TypeError: an invalid channel name or message.
        """
        require_valid_channel_name(channel)
        require_valid_message(message)
        await self._publish(channel, self.serializer.serialize(message))

    async def group_send(self, group: str, message: LayerMessage) -> None:
        """Publish ``message`` to ``group`` (one ``PUBLISH``, whatever the group's size).

        Every process with members subscribed gets it once and buffers it for each of
        its members. A checkpoint, like :meth:`send`.

        Raises:
            ChannelLayerUnavailable: Redis cannot be reached.
            TypeError: an invalid group name or message.
        """
        require_valid_group_name(group)
        require_valid_message(message)
        await self._publish(self._group_name(group), self.serializer.serialize(message))

    async def _publish(self, name: str, data: bytes) -> None:
        async with self._connect(self._shard_of(name)) as client:
            await client.publish(name, data)
        self._counts["sent"] += 1

    # -- channels and groups -----------------------------------------------------------

    async def new_channel(self, prefix: str = "specific.") -> str:
        """Return a new channel of this process, ``f"{self.prefix}{prefix}{random hex}"``.

        With an owner the channel is subscribed before this returns, so a message
        published afterwards reaches it. A checkpoint; if cancelled, no channel is made.

        Raises:
            ChannelLayerUnavailable: (with an owner) the shard cannot be reached.
            TypeError: ``prefix`` makes the name invalid.
        """
        name = f"{self.prefix}{prefix}{secrets.token_hex(16)}"
        require_valid_channel_name(name)
        owner = self._owned_here()
        if owner is None:
            await checkpoint()
            self._inboxes[name] = _Inbox(self.get_capacity(name))
            return name
        self._inboxes[name] = _Inbox(self.get_capacity(name))
        await self._ensure_subscribed(owner, name, lambda: self._forget_channel(name))
        return name

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel``, a channel of this process, to ``group``.

        With an owner the group is subscribed before this returns. A checkpoint; if
        cancelled or failed, a new membership is not kept.

        Raises:
            RuntimeError: ``channel`` was not made (or received on) in this process,
                as channels_redis raises.
            ChannelLayerUnavailable: (with an owner) the shard cannot be reached.
            TypeError: an invalid group or channel name.
        """
        require_valid_group_name(group)
        require_valid_channel_name(channel)
        await checkpoint()
        if channel not in self._inboxes:
            raise RuntimeError(_NOT_IN_PROCESS.format(group=group))
        name = self._group_name(group)
        members = self._groups.setdefault(name, {})
        is_new = channel not in members
        members[channel] = None
        owner = self._owned_here()
        if owner is not None:
            undo = (lambda: self._leave(name, channel)) if is_new else (lambda: None)
            await self._ensure_subscribed(owner, name, undo)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; unsubscribe the group when none is left.

        A checkpoint, before it acts. The unsubscribe is shielded and bounded.
        """
        require_valid_group_name(group)
        require_valid_channel_name(channel)
        await checkpoint()
        name = self._group_name(group)
        self._leave(name, channel)
        if (owner := self._owned_here()) is not None:
            await self._withdraw(owner, [name])

    async def discard_channel(self, channel: str) -> int:
        """Release ``channel``: leave its groups, unsubscribe, drop its buffer.

        achannels calls this when the connection that owned the channel ends. The
        messages still buffered are counted in ``discarded``, and so are any that
        arrive later. A checkpoint, before it acts; the unsubscribe is shielded and
        bounded. Returns how many messages were buffered.
        """
        require_valid_channel_name(channel)
        await checkpoint()
        left = [name for name, members in self._groups.items() if channel in members]
        for name in left:
            self._leave(name, channel)
        dropped = self._forget_channel(channel)
        self._counts["discarded"] += dropped
        if (owner := self._owned_here()) is not None:
            await self._withdraw(owner, [channel, *left])
        return dropped

    async def flush(self) -> None:
        """Forget every channel, group and buffered message of this process, and unsubscribe.

        Redis itself holds nothing to delete. Receivers already waiting keep waiting
        (subscribing again). A checkpoint, before it acts.
        """
        await checkpoint()
        names = [*self._inboxes, *self._groups]
        inboxes = list(self._inboxes.values())
        self._inboxes.clear()
        self._groups.clear()
        for inbox in inboxes:
            inbox.wake()
        if (owner := self._owned_here()) is not None:
            await self._withdraw(owner, names)

    async def close(self) -> None:
        """Release nothing: clients and loops belong to the ``async with`` block. A checkpoint."""
        await checkpoint()

    def statistics(self) -> RedisLayerStatistics:
        """Return the counters; ``sent`` counts ``PUBLISH`` commands, one per call."""
        owner = self._owner
        return RedisLayerStatistics(
            **self._counts,
            channels=len(self._inboxes),
            groups=len(self._groups),
            group_members=sum(len(members) for members in self._groups.values()),
            owned=owner is not None,
            receive_loops=0 if owner is None else owner.loops,
        )

    def _group_name(self, group: str) -> str:
        return f"{self.prefix}{_GROUP_INFIX}{group}"

    def _shard_of(self, name: str) -> int:
        return consistent_hash(name, self.ring_size)

    def _wanted(self, name: str) -> bool:
        return name in self._inboxes or name in self._groups

    def _leave(self, name: str, channel: str) -> None:
        members = self._groups.get(name)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self._groups[name]

    def _forget_channel(self, channel: str) -> int:
        """Drop ``channel``'s buffer, waking its receivers; return how many it held."""
        inbox = self._inboxes.pop(channel, None)
        if inbox is None:
            return 0
        inbox.wake()
        return len(inbox.items)

    # -- subscriptions (with an owner) -------------------------------------------------

    async def _ensure_subscribed(
        self, owner: _Owner, name: str, undo: Callable[[], object]
    ) -> None:
        """Subscribe the owner's connection to ``name``, which the caller now wants.

        On failure or cancellation ``undo()`` forgets what the caller added, and the
        subscription is withdrawn if nothing else wants it.

        Raises:
            ChannelLayerUnavailable: the shard's connection is down for
                ``connect_wait`` seconds, or the subscription was not acknowledged.
        """
        index = self._shard_of(name)
        shard = owner.shards[index]
        if shard.pubsub is not None and name in shard.subscribed:
            return
        try:
            pubsub = await self._live_pubsub(shard)
            await pubsub.subscribe(name)
        except BaseException as exc:
            undo()
            await self._withdraw(owner, [name])
            failure = connection_failure(exc, also=_UNAVAILABLE)
            if failure is None:
                raise
            self._raise_unavailable(failure, index)
        if shard.pubsub is pubsub:
            shard.subscribed.add(name)

    async def _live_pubsub(self, shard: _Shard) -> _PubSub:
        """Return the shard's subscriber connection, waiting ``connect_wait`` for it."""
        with anyio.move_on_after(self.connect_wait):
            while shard.pubsub is None:
                await shard.live.wait()
        if shard.pubsub is None:
            why = f"no connection within {self.connect_wait}s; last error: {shard.last_error}"
            self._raise_unavailable(TimeoutError(why), shard.index)
        return shard.pubsub

    async def _withdraw(self, owner: _Owner, names: Iterable[str]) -> None:
        """Unsubscribe from those of ``names`` nothing here wants (shielded, bounded).

        A connection that fails meanwhile loses its subscriptions anyway, and the
        next one subscribes only what is wanted, so failures are counted, not raised.
        """
        by_shard: dict[int, list[str]] = {}
        for name in names:
            if not self._wanted(name):
                by_shard.setdefault(self._shard_of(name), []).append(name)
        with anyio.move_on_after(_WITHDRAW_WAIT, shield=True):
            for index, unwanted in by_shard.items():
                await self._unsubscribe(owner.shards[index], unwanted)

    async def _unsubscribe(self, shard: _Shard, names: list[str]) -> None:
        pubsub = shard.pubsub
        if pubsub is None:
            return
        shard.subscribed.difference_update(names)
        try:
            await pubsub.unsubscribe(*names)
        except Exception as exc:
            if connection_failure(exc, also=_UNAVAILABLE) is None:
                raise
            self._counts["errors"] += 1

    # -- subscriber loops (with an owner) --------------------------------------------

    async def _run_shard(self, owner: _Owner, shard: _Shard) -> None:
        """Read ``shard``'s pub/sub into local buffers until ``shard.stopper`` stops it.

        The loop's client is its own and shielded from the owner's cancellation, so
        the connection outlives coredis's unsubscribe when the loop stops.
        """
        owner.loops += 1
        try:
            with anyio.CancelScope(shield=True):
                async with open_client(self.hosts[shard.index]) as client:
                    await self._read_until_stopped(shard, client)
        finally:
            owner.loops -= 1
            shard.disconnected()

    async def _read_until_stopped(self, shard: _Shard, client: Client) -> None:
        """Subscribe and read; after a failure wait (50 ms doubling to 2 s) and again."""
        stopper = shard.stopper
        failures = 0
        while not stopper.stopped:
            connects = shard.connects
            try:
                with stopper.step():
                    await self._connect_and_read(shard, client, reconnect=failures > 0)
            except Exception as exc:
                self._loop_failed(shard, exc)
            failures = 1 if shard.connects != connects else failures + 1
            with stopper.step():
                await anyio.sleep(_backoff(failures))

    async def _connect_and_read(self, shard: _Shard, client: Client, *, reconnect: bool) -> None:
        async with _open_pubsub(client, self._dispatch) as pubsub:
            await self._resubscribe(shard, pubsub)
            if reconnect:
                self._counts["reconnects"] += 1
                logger.warning("pub/sub of %s reconnected", describe_host(self.hosts[shard.index]))
            try:
                with shard.stopper.step():  # stops the pump only: the pub/sub ends cleanly
                    await _pump(pubsub, self._dispatch)
            finally:
                shard.disconnected()

    async def _resubscribe(self, shard: _Shard, pubsub: _PubSub) -> None:
        """Subscribe a new connection to what is wanted on ``shard``, then publish it."""
        names = (*self._inboxes, *self._groups)
        wanted = [name for name in names if self._shard_of(name) == shard.index]
        if wanted:
            await pubsub.subscribe(*wanted)
        stale = [name for name in wanted if not self._wanted(name)]  # released meanwhile
        if stale:
            await pubsub.unsubscribe(*stale)
        shard.connected(pubsub, {name for name in wanted if self._wanted(name)})

    def _loop_failed(self, shard: _Shard, exc: Exception) -> None:
        self._counts["errors"] += 1
        # Text only: a log record keeping ``exc`` would keep the failed connection alive.
        shard.last_error = repr(exc)
        where = describe_host(self.hosts[shard.index])
        if connection_failure(exc, also=_UNAVAILABLE) is None:  # a bug: log it, go on
            logger.error("pub/sub loop of %s failed; restarting it", where, exc_info=exc)
        else:
            logger.warning("pub/sub of %s lost its connection (%s)", where, shard.last_error)

    def _dispatch(self, name: str, data: bytes) -> None:
        """Buffer a message published on ``name`` for each local channel it reaches."""
        if name in self._inboxes:
            targets = [(name, self._inboxes[name])]
        else:
            members = self._groups.get(name, {})
            targets = [(ch, self._inboxes[ch]) for ch in members if ch in self._inboxes]
        if not targets:  # released after it was published
            self._counts["discarded"] += 1
            return
        self._fan_out(name, data, targets)

    # -- buffers -----------------------------------------------------------------------

    def _fan_out(self, name: str, data: bytes, targets: Sequence[tuple[str, _Inbox]]) -> None:
        message = self._decode(name, data)
        if message is None:
            return
        now = time.monotonic()
        item = (now + self.expiry, message)
        full = [channel for channel, inbox in targets if self._buffer(inbox, item, now)]
        if full:
            self._drops.report(self._label(name), full, self.group_full_policy, now)

    def _decode(self, name: str, data: bytes) -> LayerMessage | None:
        try:
            return self.serializer.deserialize(data)
        except ValueError as exc:
            self._counts["undecodable"] += 1
            logger.warning("dropped a message on %r that cannot be decoded: %s", name, str(exc))
            return None

    def _buffer(self, inbox: _Inbox, item: _Item, now: float) -> bool:
        """Append ``item`` under the full policy; return whether a message was dropped."""
        items = inbox.items
        while len(items) >= inbox.capacity and items[0][0] < now:
            items.popleft()
            self._counts["expired"] += 1
        dropped = len(items) >= inbox.capacity
        if dropped:
            self._counts["dropped_full"] += 1
            if self.group_full_policy == "skip":
                return True
            items.popleft()
        items.append(item)
        inbox.wake()
        return dropped

    def _label(self, name: str) -> str:
        group_prefix = self.prefix + _GROUP_INFIX
        if name.startswith(group_prefix):
            return name[len(group_prefix) :]
        return f"(buffer of {name})"

    def _take(self, channel: str, inbox: _Inbox) -> LayerMessage | None:
        now = time.monotonic()
        items = inbox.items
        expired = 0
        message: LayerMessage | None = None
        while items:
            expires_at, message = items.popleft()
            if expires_at >= now:
                break
            expired += 1
            message = None
        if expired:
            self._counts["expired"] += expired
            logger.warning(
                "%d message(s) for %r expired in this process's buffer", expired, channel
            )
        if message is not None:
            self._counts["delivered"] += 1
        return message

    # -- receiving ---------------------------------------------------------------------

    async def receive(self, channel: str) -> LayerMessage:
        """Wait for the next message on ``channel`` and return it.

        Always a checkpoint, before it takes a message. Messages wait in this
        process's buffer of ``channel``, so cancelling ``receive()`` loses nothing:
        what arrives for a cancelled call is there for the next. With an owner the
        channel stays subscribed (it is subscribed here if it is new); without one,
        the first call subscribes to ``channel`` and its groups until a message
        arrives, and concurrent calls share that subscription.
        Concurrent receivers get different messages, first come first served.

        Raises:
            ChannelLayerUnavailable: Redis cannot be reached.
            TypeError: an invalid channel name.
        """
        require_valid_channel_name(channel)
        await checkpoint()
        while True:
            owner = self._owned_here()
            inbox = self._inboxes.get(channel)
            if inbox is None:
                inbox = self._inboxes[channel] = _Inbox(self.get_capacity(channel))
                if owner is not None:
                    await self._ensure_subscribed(owner, channel, lambda: self._unopen(channel))
                    continue
            message = self._take(channel, inbox)
            if message is not None:
                return message
            if owner is not None or channel in self._listening:
                await inbox.wait()
            else:
                await self._listen_until_arrival(channel, inbox)

    def receive_nowait(self, channel: str) -> LayerMessage:
        """Return the next message already buffered in this process for ``channel``.

        Raises:
            anyio.WouldBlock: nothing is buffered (``receive()`` would wait).
            TypeError: an invalid channel name.
        """
        inbox = self._inboxes.get(channel)
        if inbox is None:
            require_valid_channel_name(channel)
        message = None if inbox is None else self._take(channel, inbox)
        if message is None:
            raise anyio.WouldBlock
        return message

    def _unopen(self, channel: str) -> None:
        inbox = self._inboxes.get(channel)
        if inbox is not None and not inbox.items:
            self._forget_channel(channel)

    # -- receiving without an owner ------------------------------------------------

    async def _listen_until_arrival(self, channel: str, inbox: _Inbox) -> None:
        """Subscribe to ``channel`` and its groups on per-call connections until a
        message is buffered in ``inbox`` (or the channel is released), then unsubscribe.

        Raises:
            ChannelLayerUnavailable: a shard cannot be reached.
        """
        names = [channel, *(name for name, members in self._groups.items() if channel in members)]
        shards = self._by_shard(names)
        listeners = {index: _Listener() for index in shards}
        self._listening.add(channel)
        try:
            async with anyio.create_task_group() as tg:
                try:
                    for index, on_shard in shards.items():
                        tg.start_soon(
                            self._listen, index, on_shard, channel, inbox, listeners[index]
                        )
                    for listener in listeners.values():
                        await listener.subscribed.wait()
                    while not inbox.items and self._inboxes.get(channel) is inbox:
                        await inbox.wait()
                finally:
                    for listener in listeners.values():
                        listener.stop.cancel()
        except Exception as exc:
            failure = connection_failure(exc, also=_UNAVAILABLE)
            if failure is None:
                raise
            self._raise_unavailable(failure, self._shard_of(channel))
        finally:
            self._listening.discard(channel)
            inbox.wake()  # a call sharing this subscription takes it over

    def _by_shard(self, names: Iterable[str]) -> dict[int, list[str]]:
        shards: dict[int, list[str]] = {}
        for name in names:
            shards.setdefault(self._shard_of(name), []).append(name)
        return shards

    async def _listen(
        self, index: int, names: list[str], channel: str, inbox: _Inbox, listener: _Listener
    ) -> None:
        """Subscribe to ``names`` on shard ``index`` and buffer what arrives in ``inbox``.

        Shielded, as the owner's loops are, and ended by ``listener.stop``; connecting
        and subscribing are bounded by coredis's timeouts.
        """
        deliver: _Deliver = functools.partial(self._fan_out, targets=[(channel, inbox)])
        with anyio.CancelScope(shield=True):
            async with self._connect(index) as client, _open_pubsub(client, deliver) as pubsub:
                with listener.stop:
                    await pubsub.subscribe(*names)
                    listener.subscribed.set()
                    await _pump(pubsub, deliver)


@asynccontextmanager
async def _open_pubsub(client: Client, deliver: _Deliver) -> AsyncIterator[_PubSub]:
    """Enter a coredis pub/sub that fails instead of retrying: our loops own retries.

    On the way out (shielded, bounded) it unsubscribes and hands what was published
    before the unsubscribe took effect to ``deliver``, so stopping a reader loses
    nothing that reached this process.
    """
    from coredis.retry import NoRetryPolicy

    async with client.pubsub(retry_policy=NoRetryPolicy()) as pubsub:
        try:
            yield pubsub
        finally:
            with anyio.move_on_after(_WITHDRAW_WAIT, shield=True):
                await _unsubscribe_and_drain(pubsub, deliver)


async def _unsubscribe_and_drain(pubsub: _PubSub, deliver: _Deliver) -> None:
    try:
        if not pubsub.subscribed:
            return
        await pubsub.unsubscribe()
        # Redis answers UNSUBSCRIBE after every message it pushed before: read up to
        # the acknowledgement that leaves no subscription.
        while True:
            message = await pubsub.get_message()
            if message is None:
                continue
            if message["type"] == "message":
                _deliver(message, deliver)
            elif message["type"] == "unsubscribe" and message["data"] == 0:
                return
    except Exception as exc:
        # A connection that is gone has no subscriptions left to end.
        if not all(isinstance(leaf, _GONE) for leaf in _leaves(exc)):
            raise


async def _pump(pubsub: _PubSub, deliver: _Deliver) -> None:
    """Hand every published message to ``deliver(channel, data)`` until cancelled."""
    while True:
        message = await pubsub.get_message()
        if message is not None and message["type"] == "message":
            _deliver(message, deliver)


def _deliver(message: Mapping[str, Any], deliver: _Deliver) -> None:
    name = message["channel"]
    deliver(name.decode() if isinstance(name, bytes) else str(name), message["data"])


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _backoff(failures: int) -> float:
    delay = min(_BACKOFF_MAX, _BACKOFF_MIN * 2.0 ** min(failures - 1, 16))
    return delay * (0.5 + secrets.randbelow(1000) / 1000)
