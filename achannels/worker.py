"""Channels' ``Worker``: serve named layer channels with an ASGI application.

``from channels.worker import Worker`` becomes ``from achannels.worker import Worker``.
The worker listens on each named channel of a channel layer and feeds every message
to an instance of the application (typically a
:class:`~achannels.routing.ChannelNameRouter` of consumers) started with the scope
``{"type": "channel", "channel": name}``: one instance per channel, reading the
channel's messages in order through its ASGI ``receive()``. This is what
``manage.py runworker`` runs.

Structured, unlike Channels' (asgiref's ``StatelessServer``): :meth:`Worker.run`
owns one task group holding a listener task per channel and a task per application
instance, and returns only when all of them have finished.

**Buffering and backpressure.** A listener hands each message to its instance
through a bounded memory stream of ``buffer_size`` messages (default 1: one message
waits while one is handled). When the stream is full the listener waits, taking
nothing more off the layer, so a slow application leaves its backlog in the layer,
where the layer's ``capacity`` (``ChannelFull`` for senders) and ``expiry`` apply
and its ``statistics()`` show it. Channels' worker instead copies every message into
an unbounded ``asyncio.Queue``.

**Errors.** An application that raises is logged with its traceback and counted in
``statistics().errors``; the worker goes on, and the channel's next message starts a
new instance, as in Channels. Messages already handed to the stream are kept for
the next instance (Channels loses them with the queue of the dead instance). An
instance that ends without taking a single message cannot serve its channel (for
example a ``ChannelNameRouter`` without a route for it): the message it was started
for is dropped, logged and counted in ``statistics().dropped``, so that the worker
still makes progress. A message without a ``"type"`` is logged, counted in
``statistics().invalid`` and skipped (Channels' worker raises and stops).
A listener whose layer fails (the layer itself raising) stops the worker with that
error.

**Stopping.** Cancel :meth:`Worker.run` (``runworker`` does on SIGINT/SIGTERM): the
instances are cancelled where they are. Messages taken off the layer but not yet
given to an instance (at most ``buffer_size`` + 1 per channel) are then lost, as
they are in Channels; the worker logs how many.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._asgi import ASGIApp, Message
from .layers import ChannelLayer
from .layers._open import own_layer

__all__ = ["Worker", "WorkerStatistics"]

logger = logging.getLogger("achannels.worker")


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    """A snapshot of a worker's counters.

    Attributes:
        received: messages taken off the layer.
        instances_started: application instances started (one per channel, and one
            more each time an instance ended while messages remained).
        instances_live: application instances running now.
        errors: application instances that raised (each was logged).
        dropped: messages dropped because an instance ended without taking any.
        invalid: messages without a ``"type"``, logged and skipped.
        buffered: messages handed to the streams and not yet taken by an instance.
    """

    received: int
    instances_started: int
    instances_live: int
    errors: int
    dropped: int
    invalid: int
    buffered: int


class _Channel:
    """One channel: its stream to the application instance, and that instance's state."""

    __slots__ = ("drained", "listening", "name", "receiver", "running", "sender", "taken")

    def __init__(self, name: str, buffer_size: int) -> None:
        self.name = name
        self.sender: MemoryObjectSendStream[Message]
        self.receiver: MemoryObjectReceiveStream[Message]
        self.sender, self.receiver = anyio.create_memory_object_stream[Message](buffer_size)
        self.running = False
        self.listening = True
        #: Messages the instances took from the stream, over all instances.
        self.taken = 0
        #: Set once the listener has stopped and the instance wants no more.
        self.drained = anyio.Event()

    def buffered(self) -> int:
        return self.receiver.statistics().current_buffer_used


class Worker:
    """Serve ``channels`` of ``channel_layer`` with ``application`` (Channels 4.3's API).

    Args:
        application: the ASGI application; each instance gets the scope
            ``{"type": "channel", "channel": name}``, the channel's messages from
            ``receive()``, and a ``send()`` that raises ``NotImplementedError``
            (a worker has no client to send to; use the channel layer).
        channels: the channel names to listen on (duplicates are ignored).
        channel_layer: the layer to receive from.
        max_applications: Channels' bound on live application instances. Here there is
            one instance per channel, so it only limits how many channels one worker
            may serve (Channels would instead keep cancelling the least recently used
            instance).
        limit: if nonzero, stop after this many messages (an achannels addition;
            Channels' worker has no such option): the listeners stop receiving after
            the ``limit``-th message, each instance takes what it was given, and once
            every instance is waiting for a message that will never come, the
            instances are cancelled and :meth:`run` returns. An instance that calls
            ``receive()`` again is taken to be done with the previous message, the
            only signal ASGI offers; achannels' own consumers may call it early when a
            handler runs longer than their ``disconnect_check``.
        buffer_size: messages a channel's stream holds for its instance (module docs).

    Raises:
        ValueError: no layer, a negative ``limit``, a ``buffer_size`` below 1, or
            more channels than ``max_applications``.
    """

    def __init__(
        self,
        application: ASGIApp,
        channels: Iterable[str],
        channel_layer: ChannelLayer | None,
        max_applications: int = 1000,
        *,
        limit: int = 0,
        buffer_size: int = 1,
    ) -> None:
        if channel_layer is None:
            raise ValueError("Channel layer is not valid")
        if limit < 0:
            raise ValueError(f"limit must be 0 (no limit) or positive, not {limit}")
        if buffer_size < 1:
            # An instance is started after its first message is in the stream.
            raise ValueError(f"buffer_size must be at least 1, not {buffer_size}")
        self.application = application
        self.channels = list(dict.fromkeys(channels))
        if len(self.channels) > max_applications:
            raise ValueError(
                f"{len(self.channels)} channels need as many application instances, "
                f"more than max_applications={max_applications}"
            )
        self.channel_layer = channel_layer
        self.max_applications = max_applications
        self.limit = limit
        self.buffer_size = buffer_size
        self._states: list[_Channel] = []
        self._received = 0
        self._started = 0
        self._live = 0
        self._errors = 0
        self._dropped = 0
        self._invalid = 0
        self._receiving: set[anyio.CancelScope] = set()

    def statistics(self) -> WorkerStatistics:
        """Return a snapshot of the worker's counters."""
        return WorkerStatistics(
            received=self._received,
            instances_started=self._started,
            instances_live=self._live,
            errors=self._errors,
            dropped=self._dropped,
            invalid=self._invalid,
            buffered=sum(state.buffered() for state in self._states),
        )

    async def run(self) -> None:
        """Serve the channels until cancelled, or until ``limit`` messages were handled.

        Cancelling it cancels every listener and application instance and waits for
        them. A listener's layer error is raised (in an ``ExceptionGroup`` if several
        fail at once); application errors are logged, not raised.
        """
        self._states = [_Channel(name, self.buffer_size) for name in self.channels]
        try:
            # The worker owns its layer's background work (Redis pools, receive loops).
            async with own_layer(self.channel_layer), anyio.create_task_group() as instances:
                async with anyio.create_task_group() as listeners:
                    for state in self._states:
                        listeners.start_soon(self._listen, state, instances)
                # Only a limit ends the listeners without an error.
                for state in self._states:
                    await state.drained.wait()
                instances.cancel_scope.cancel()
        finally:
            abandoned = sum(state.buffered() for state in self._states)
            for state in self._states:
                state.sender.close()
                state.receiver.close()
            if abandoned:
                logger.warning(
                    "worker stopped with %d message(s) taken off the layer and not handled",
                    abandoned,
                )

    async def _listen(self, state: _Channel, instances: TaskGroup) -> None:
        with state.sender:
            while not self._limit_reached():
                with anyio.CancelScope() as receiving:
                    self._receiving.add(receiving)
                    try:
                        message = await self.channel_layer.receive(state.name)
                    finally:
                        self._receiving.discard(receiving)
                if receiving.cancelled_caught:
                    break  # another listener took the last message of the limit
                self._received += 1
                if self._limit_reached():
                    for scope in self._receiving:
                        scope.cancel()
                if not message.get("type"):
                    self._invalid += 1
                    logger.error("worker dropped a message without a type on %r", state.name)
                    continue
                await state.sender.send(message)
                # Checked after the message is in the stream: no await between this
                # check and an instance's decision to end, so none is stranded.
                if not state.running:
                    self._start_instance(state, instances)
        state.listening = False
        if not state.running:
            state.drained.set()

    def _limit_reached(self) -> bool:
        return self.limit != 0 and self._received >= self.limit

    def _start_instance(self, state: _Channel, instances: TaskGroup) -> None:
        state.running = True
        self._live += 1
        instances.start_soon(self._run_instance, state, name=f"achannels worker {state.name}")

    async def _run_instance(self, state: _Channel) -> None:
        try:
            while True:
                taken = state.taken
                await self._run_application(state)
                if state.taken == taken and state.buffered():
                    self._drop_one(state)
                if not state.buffered():
                    return
        finally:
            state.running = False
            self._live -= 1
            if not state.listening:
                state.drained.set()

    async def _run_application(self, state: _Channel) -> None:
        scope: dict[str, Any] = {"type": "channel", "channel": state.name}
        self._started += 1

        async def receive() -> Message:
            try:
                message = await state.receiver.receive()
            except anyio.EndOfStream:
                # The limit was reached and everything given was taken: wait to be
                # cancelled, as an idle instance would.
                state.drained.set()
                await anyio.sleep_forever()
                raise
            state.taken += 1
            return message

        try:
            await self.application(scope, receive, _no_send)
        except Exception:
            self._errors += 1
            logger.exception("application for channel %r raised; worker continues", state.name)

    def _drop_one(self, state: _Channel) -> None:
        message = state.receiver.receive_nowait()
        self._dropped += 1
        logger.error(
            "the application for channel %r ended without taking a message; dropped a %r message",
            state.name,
            message.get("type"),
        )


async def _no_send(message: Message) -> None:
    raise NotImplementedError("a channel worker has no client to send to; use the channel layer")
