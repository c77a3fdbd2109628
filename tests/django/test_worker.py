"""``achannels.worker.Worker`` in process: routing, limit, errors, backpressure, ORM.

(``Worker`` itself does not need Django; these tests live here beside ``runworker``
because the worker's consumers are usually Django code.)
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import anyio
import pytest

from achannels._asgi import Receive, Scope, Send
from achannels.consumer import AsyncConsumer
from achannels.db import database_sync_to_async
from achannels.layers import InMemoryChannelLayer
from achannels.routing import ChannelNameRouter
from achannels.worker import Worker
from examples.django_project.asgi import application as project_application
from examples.django_project.chat.models import Message
from tests.django.conftest import Database

pytestmark = pytest.mark.anyio


class Recorder(AsyncConsumer):
    """Notes each ``job`` message with the scope it arrived in."""

    seen: list[tuple[dict[str, Any], dict[str, Any]]]

    async def job(self, message: dict[str, Any]) -> None:
        self.seen.append((dict(self.scope), message))
        if message.get("fail"):
            raise RuntimeError(f"job {message['n']} failed")


class Collect:
    """A raw ASGI app: appends every message it receives; raises on ``"boom"``."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.instances = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.instances += 1
        while True:
            message = dict(await receive())
            if message["type"] == "boom":
                raise RuntimeError("boom")
            self.messages.append(message)


async def test_routes_each_channel_to_its_consumer_and_stops_at_the_limit() -> None:
    layer = InMemoryChannelLayer()
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    app = ChannelNameRouter(
        {"thumbnails": Recorder.as_asgi(seen=seen), "emails": Recorder.as_asgi(seen=seen)}
    )
    for n in range(3):
        await layer.send("thumbnails", {"type": "job", "n": n})
    await layer.send("emails", {"type": "job", "n": 10})
    await layer.send("emails", {"type": "job", "n": 11})
    worker = Worker(app, ["thumbnails", "emails"], layer, limit=5)
    with anyio.fail_after(5):
        await worker.run()
    by_channel = {
        (scope["type"], scope["channel"], message["n"]) for scope, message in seen if scope
    }
    assert by_channel == {
        ("channel", "thumbnails", 0),
        ("channel", "thumbnails", 1),
        ("channel", "thumbnails", 2),
        ("channel", "emails", 10),
        ("channel", "emails", 11),
    }
    assert [m["n"] for s, m in seen if s["channel"] == "thumbnails"] == [0, 1, 2]
    stats = worker.statistics()
    assert (stats.received, stats.instances_started, stats.instances_live) == (5, 2, 0)


async def test_limit_leaves_later_messages_in_the_layer() -> None:
    layer = InMemoryChannelLayer()
    app = Collect()
    for n in range(5):
        await layer.send("jobs", {"type": "job", "n": n})
    with anyio.fail_after(5):
        await Worker(app, ["jobs"], layer, limit=3).run()
    assert [m["n"] for m in app.messages] == [0, 1, 2]
    assert (await layer.receive("jobs"))["n"] == 3


async def test_a_failing_application_is_logged_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = InMemoryChannelLayer()
    app = Collect()
    await layer.send("jobs", {"type": "job", "n": 1})
    await layer.send("jobs", {"type": "boom"})
    await layer.send("jobs", {"type": "job", "n": 2})
    worker = Worker(app, ["jobs"], layer, limit=3, buffer_size=4)
    with anyio.fail_after(5):
        await worker.run()
    assert [m["n"] for m in app.messages] == [1, 2]
    assert app.instances == 2  # a new instance after the failure, as in Channels
    assert worker.statistics().errors == 1
    [record] = [r for r in caplog.records if r.name == "achannels.worker"]
    assert record.levelno == logging.ERROR
    assert "'jobs' raised" in record.getMessage()
    assert record.exc_info is not None


async def test_a_failing_consumer_is_logged_by_the_runtime_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = InMemoryChannelLayer()
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    app = ChannelNameRouter({"jobs": Recorder.as_asgi(seen=seen)})
    await layer.send("jobs", {"type": "job", "n": 1, "fail": True})
    await layer.send("jobs", {"type": "job", "n": 2})
    with anyio.fail_after(5):
        await Worker(app, ["jobs"], layer, limit=2).run()
    assert [m["n"] for _, m in seen] == [1, 2]
    assert any("job 1 failed" in str(r.exc_info and r.exc_info[1]) for r in caplog.records)


async def test_an_application_that_takes_nothing_drops_and_counts_each_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer = InMemoryChannelLayer()
    app = ChannelNameRouter({})  # no route for the channel: every instance raises at once
    await layer.send("orphan", {"type": "job"})
    await layer.send("orphan", {"type": "job"})
    worker = Worker(app, ["orphan"], layer, limit=2)
    with anyio.fail_after(5):
        await worker.run()
    stats = worker.statistics()
    assert (stats.errors, stats.dropped) == (2, 2)
    assert "No application configured for channel name 'orphan'" in caplog.text


async def test_a_message_without_a_type_is_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Untyped(InMemoryChannelLayer):
        sent_bad = False

        async def receive(self, channel: str) -> dict[str, Any]:
            if not self.sent_bad:
                self.sent_bad = True
                return {"no": "type"}
            return await super().receive(channel)

    layer = Untyped()
    app = Collect()
    await layer.send("jobs", {"type": "job", "n": 1})
    worker = Worker(app, ["jobs"], layer, limit=2)
    with anyio.fail_after(5):
        await worker.run()
    assert [m["n"] for m in app.messages] == [1]
    assert worker.statistics().invalid == 1
    assert "without a type" in caplog.text


async def test_a_busy_application_leaves_the_backlog_in_the_layer() -> None:
    layer = InMemoryChannelLayer()
    release = anyio.Event()
    handled: list[int] = []

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            await release.wait()
            handled.append(message["n"])

    for n in range(6):
        await layer.send("jobs", {"type": "job", "n": n})
    worker = Worker(slow, ["jobs"], layer, limit=6, buffer_size=1)
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(worker.run)
        with anyio.fail_after(5):
            await anyio.wait_all_tasks_blocked()
        # One message in the application, one in the stream, one in the listener's
        # hand waiting for room: the other three are still in the layer.
        stats = worker.statistics()
        assert (stats.received, stats.buffered) == (3, 1)
        assert layer.statistics().delivered == 3
        release.set()
    assert handled == [0, 1, 2, 3, 4, 5]


async def test_cancelling_run_cancels_the_instances() -> None:
    layer = InMemoryChannelLayer()
    cancelled = anyio.Event()

    async def forever(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    await layer.send("jobs", {"type": "job"})
    worker = Worker(forever, ["jobs"], layer)
    with anyio.move_on_after(5) as timeout:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(worker.run)
            await anyio.wait_all_tasks_blocked()
            assert worker.statistics().instances_live == 1
            task_group.cancel_scope.cancel()
    assert not timeout.cancelled_caught
    assert cancelled.is_set()
    assert worker.statistics().instances_live == 0


async def test_send_is_not_available_to_a_worker_application() -> None:
    layer = InMemoryChannelLayer()
    errors: list[BaseException] = []

    async def sender(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        try:
            await send({"type": "anything"})
        except NotImplementedError as exc:
            errors.append(exc)

    await layer.send("jobs", {"type": "job"})
    with anyio.fail_after(5):
        await Worker(sender, ["jobs"], layer, limit=1).run()
    assert len(errors) == 1


def test_arguments_are_checked() -> None:
    layer = InMemoryChannelLayer()
    with pytest.raises(ValueError, match="Channel layer is not valid"):
        Worker(Collect(), ["jobs"], None)
    with pytest.raises(ValueError, match="limit"):
        Worker(Collect(), ["jobs"], layer, limit=-1)
    with pytest.raises(ValueError, match="buffer_size"):
        Worker(Collect(), ["jobs"], layer, buffer_size=0)
    with pytest.raises(ValueError, match="max_applications"):
        Worker(Collect(), ["a", "b"], layer, 1)
    assert Worker(Collect(), ["a", "b", "a"], layer).channels == ["a", "b"]


@database_sync_to_async
def stored_texts(room: str) -> list[str]:
    return list(Message.objects.filter(room=room).values_list("text", flat=True))


async def test_the_project_archive_worker_stores_rows(database: Database) -> None:
    layer = InMemoryChannelLayer()
    room = f"archive-{secrets.token_hex(4)}"
    for text in ("one", "two"):
        await layer.send("archive", {"type": "archive.message", "room": room, "text": text})
    await layer.send("archive", {"type": "archive.message", "room": room})  # no text: fails
    await layer.send("archive", {"type": "archive.message", "room": room, "text": "three"})
    with anyio.fail_after(10):
        await Worker(project_application, ["archive"], layer, limit=4).run()
    assert await stored_texts(room) == ["one", "two", "three"]
