"""The Channels-compatible base consumers: dispatch by type, as_asgi, layers, threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import anyio
import anyio.to_thread
import pytest
from django.conf import settings
from django.test.utils import override_settings

from achannels._asgi import Message
from achannels.consumer import AsyncConsumer, SyncConsumer, get_handler_name
from achannels.exceptions import StopConsumer
from achannels.layers import InMemoryChannelLayer, channel_layers
from achannels.testing import ApplicationCommunicator, WebsocketCommunicator

if not settings.configured:
    settings.configure(USE_I18N=False)


@pytest.fixture
def fresh_layers() -> Iterator[None]:
    """Let a test configure ``CHANNEL_LAYERS`` without leaking layers to others."""
    saved = dict(channel_layers.backends)
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()
    channel_layers.backends.update(saved)


# -- get_handler_name ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("websocket.connect", "websocket_connect"),
        ("chat.message", "chat_message"),
        ("a.b.c", "a_b_c"),
        ("plain", "plain"),
        ("already_underscored", "already_underscored"),
    ],
)
def test_handler_name_replaces_dots_with_underscores(kind: str, name: str) -> None:
    assert get_handler_name({"type": kind}) == name


def test_a_message_without_type_is_refused() -> None:
    with pytest.raises(ValueError, match="no 'type' attribute"):
        get_handler_name({"text": "hello"})


@pytest.mark.parametrize("kind", ["_private", ".private", "__init__", "._x"])
def test_a_type_naming_a_private_method_is_refused(kind: str) -> None:
    with pytest.raises(ValueError, match=r"Malformed type in message \(leading underscore\)"):
        get_handler_name({"type": kind})


# -- as_asgi ------------------------------------------------------------------------------


class Greeter(AsyncConsumer):
    """Accept, then greet with the ``greeting`` init argument."""

    greeting = "hello"
    instances: ClassVar[list[Greeter]] = []

    async def websocket_connect(self, message: Message) -> None:
        Greeter.instances.append(self)
        await self.send({"type": "websocket.accept"})
        await self.send({"type": "websocket.send", "text": self.greeting})

    async def websocket_disconnect(self, message: Message) -> None:
        raise StopConsumer()


def test_as_asgi_records_the_class_and_its_init_arguments() -> None:
    app: Any = Greeter.as_asgi(greeting="hi", extra=1)
    assert app.consumer_class is Greeter
    assert app.consumer_initkwargs == {"greeting": "hi", "extra": 1}
    assert app.__name__ == "Greeter"
    assert app.__doc__ == Greeter.__doc__


@pytest.mark.anyio
async def test_as_asgi_makes_one_instance_per_connection_with_the_init_arguments() -> None:
    Greeter.instances.clear()
    app = Greeter.as_asgi(greeting="hi", extra=1)
    for _ in range(2):
        async with WebsocketCommunicator(app, "/") as comm:
            assert (await comm.connect())[0]
            assert await comm.receive_from() == "hi"
            await comm.disconnect()
    first, second = Greeter.instances
    assert first is not second
    assert (first.greeting, second.greeting) == ("hi", "hi")
    assert vars(first)["extra"] == 1
    assert Greeter.greeting == "hello"  # set on the instance, not the class


@pytest.mark.anyio
async def test_a_consumer_instance_is_itself_an_asgi_app() -> None:
    async with WebsocketCommunicator(Greeter(greeting="direct"), "/") as comm:
        await comm.connect()
        assert await comm.receive_from() == "direct"
        await comm.disconnect()


# -- dispatch -----------------------------------------------------------------------------


class Echo(AsyncConsumer):
    async def websocket_connect(self, message: Message) -> None:
        await self.send({"type": "websocket.accept"})

    async def websocket_receive(self, message: Message) -> None:
        if message.get("text") == "stop":
            raise StopConsumer()
        await self.send({"type": "websocket.send", "text": message["text"]})

    async def websocket_disconnect(self, message: Message) -> None:
        raise StopConsumer()


@pytest.mark.anyio
async def test_messages_reach_the_method_named_after_their_type() -> None:
    async with WebsocketCommunicator(Echo.as_asgi(), "/") as comm:
        await comm.connect()
        await comm.send_to(text_data="ping")
        assert await comm.receive_from() == "ping"
        await comm.disconnect()


@pytest.mark.anyio
async def test_a_message_type_without_a_handler_is_a_value_error() -> None:
    scope = {"type": "websocket", "path": "/"}
    async with ApplicationCommunicator(Echo.as_asgi(), scope) as comm:
        await comm.send_input({"type": "websocket.connect"})
        assert (await comm.receive_output())["type"] == "websocket.accept"
        await comm.send_input({"type": "websocket.unknown"})
        with pytest.raises(ValueError, match=r"No handler for message type websocket\.unknown"):
            await comm.wait()


@pytest.mark.anyio
async def test_stop_consumer_ends_the_application_cleanly() -> None:
    async with WebsocketCommunicator(Echo.as_asgi(), "/") as comm:
        await comm.connect()
        await comm.send_to(text_data="stop")
        await comm.wait()  # returns, no error


# -- channel layers -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_preset_layer_gives_the_consumer_a_channel() -> None:
    layer = InMemoryChannelLayer()
    seen: list[AsyncConsumer] = []

    class Relay(Echo):
        channel_layer = layer

        async def websocket_connect(self, message: Message) -> None:
            seen.append(self)
            await super().websocket_connect(message)

        async def note(self, event: dict[str, Any]) -> None:
            await self.send({"type": "websocket.send", "text": event["text"]})

    async with WebsocketCommunicator(Relay.as_asgi(), "/") as comm:
        await comm.connect()
        [consumer] = seen
        assert consumer.channel_layer is layer
        assert isinstance(consumer.channel_name, str)
        assert layer.require_valid_channel_name(consumer.channel_name)
        await layer.send(consumer.channel_name, {"type": "note", "text": "via the layer"})
        assert await comm.receive_from() == "via the layer"
        await comm.disconnect()


@pytest.mark.anyio
@pytest.mark.usefixtures("fresh_layers")
async def test_without_a_layer_configured_there_is_no_channel() -> None:
    seen: list[AsyncConsumer] = []

    class Plain(Echo):
        async def websocket_connect(self, message: Message) -> None:
            seen.append(self)
            await super().websocket_connect(message)

    with override_settings(CHANNEL_LAYERS={}):
        async with WebsocketCommunicator(Plain.as_asgi(), "/") as comm:
            await comm.connect()
            await comm.disconnect()
    assert (seen[0].channel_layer, seen[0].channel_name) == (None, None)


@pytest.mark.anyio
@pytest.mark.usefixtures("fresh_layers")
async def test_channel_layer_alias_picks_the_configured_layer() -> None:
    seen: list[AsyncConsumer] = []

    class Aliased(Echo):
        channel_layer_alias = "other"

        async def websocket_connect(self, message: Message) -> None:
            seen.append(self)
            await super().websocket_connect(message)

    memory = {"BACKEND": "achannels.layers.InMemoryChannelLayer"}
    with override_settings(CHANNEL_LAYERS={"default": memory, "other": memory}):
        async with WebsocketCommunicator(Aliased.as_asgi(), "/") as comm:
            await comm.connect()
            await comm.disconnect()
        assert seen[0].channel_layer is channel_layers["other"]
        assert seen[0].channel_layer is not channel_layers["default"]


# -- SyncConsumer ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_sync_consumer_handlers_run_in_a_worker_thread() -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    class SyncEcho(SyncConsumer):
        def websocket_connect(self, message: Message) -> None:
            threads.append(threading.get_ident())
            self.send({"type": "websocket.accept"})

        def websocket_receive(self, message: Message) -> None:
            threads.append(threading.get_ident())
            self.send({"type": "websocket.send", "text": message["text"].upper()})

        def websocket_disconnect(self, message: Message) -> None:
            raise StopConsumer()

    async with WebsocketCommunicator(SyncEcho.as_asgi(), "/") as comm:
        assert (await comm.connect())[0]
        await comm.send_to(text_data="quiet")
        assert await comm.receive_from() == "QUIET"
        await comm.disconnect()
    assert len(threads) == 2
    assert loop_thread not in threads


@pytest.mark.anyio
async def test_sync_consumer_unknown_type_is_a_value_error() -> None:
    class Nothing(SyncConsumer):
        pass

    async with WebsocketCommunicator(Nothing.as_asgi(), "/") as comm:
        with pytest.raises(ValueError, match=r"No handler for message type websocket\.connect"):
            await comm.connect()


@pytest.mark.anyio
async def test_sync_consumer_disconnect_handler_runs_when_the_connection_is_cancelled() -> None:
    ran: list[int] = []

    class Tracked(SyncConsumer):
        def websocket_connect(self, message: Message) -> None:
            self.send({"type": "websocket.accept"})

        def websocket_disconnect(self, message: Message) -> None:
            ran.append(message["code"])
            raise StopConsumer()

    async with WebsocketCommunicator(Tracked.as_asgi(), "/") as comm:
        await comm.connect()
    # Leaving the block cancelled the application: the disconnect handler still ran.
    assert ran == [1006]


@pytest.mark.anyio
async def test_the_layer_channel_is_released_when_the_connection_ends() -> None:
    layer = InMemoryChannelLayer()
    names: list[str] = []

    class Holder(AsyncConsumer):
        channel_layer = layer

        async def websocket_connect(self, message: dict[str, Any]) -> None:
            assert self.channel_name is not None
            names.append(self.channel_name)
            await self.send({"type": "websocket.accept"})

        async def websocket_disconnect(self, message: dict[str, Any]) -> None:
            raise StopConsumer

        async def hold(self, message: dict[str, Any]) -> None:
            await self.send({"type": "websocket.send", "text": "holding"})
            await anyio.sleep_forever()  # later messages stay queued in the layer

    async with WebsocketCommunicator(Holder.as_asgi(), "/") as comm:
        await comm.connect()
        await layer.send(names[0], {"type": "hold"})
        assert await comm.receive_from() == "holding"
        await layer.send(names[0], {"type": "hold"})
        await comm.disconnect()
    stats = layer.statistics()
    assert (stats.channels, stats.discarded) == (0, 1)


@pytest.mark.anyio
async def test_a_sync_consumer_starts_owned_tasks_from_its_thread() -> None:
    started = threading.Event()

    async def background() -> None:
        started.set()
        await anyio.sleep_forever()

    class Starter(SyncConsumer):
        def websocket_connect(self, message: dict[str, Any]) -> None:
            self.start_soon(background)
            self.send({"type": "websocket.accept"})

        def websocket_disconnect(self, message: dict[str, Any]) -> None:
            raise StopConsumer

    app = Starter.as_asgi()
    async with WebsocketCommunicator(app, "/") as comm:
        assert (await comm.connect())[0] is True
        assert await anyio.to_thread.run_sync(started.wait, 5)
        await comm.disconnect()
    assert app.statistics().tasks_live == 0  # type: ignore[attr-defined]
