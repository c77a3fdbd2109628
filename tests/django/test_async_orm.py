"""Django's async paths on trio as on asyncio: the async ORM, ``sync_to_async``, signals.

asgiref's ``sync_to_async`` (and so Django's async ORM, ``Signal.asend`` and async
views) runs on asyncio only; ``achannels.django`` makes it run on trio too
(``install_trio_support``, installed by the apps and ``get_asgi_application``). Each
test runs on asyncio and trio; those that use the ORM also run on SQLite and
PostgreSQL, in process through the communicators and end to end on hypercorn.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import Any

import anyio
import anyio.to_thread
import pytest
from asgiref.sync import SyncToAsync, sync_to_async
from django.db.models.signals import pre_save
from django.dispatch import Signal
from django.test.utils import override_settings

from achannels.db import database_sync_to_async
from achannels.django import get_asgi_application, install_trio_support
from achannels.testing import HttpCommunicator, WebsocketCommunicator
from examples.django_project.chat.models import Message
from tests.django.async_orm_app import application, current_thread_name
from tests.django.conftest import Database
from tests.e2e.clients import WAIT, open_client, open_ws
from tests.e2e.servers import HYPERCORN, REPO, Server, ServerPool, use_server

pytestmark = [pytest.mark.anyio, pytest.mark.django]

ORM_APP = "tests.django.async_orm_app:application"
#: Set by the functions run through ``sync_to_async``, read back by the tests.
VALUE: ContextVar[str] = ContextVar("VALUE", default="unset")


def new_room() -> str:
    """A room name no other test uses (the test databases live for the session)."""
    return f"room-{secrets.token_hex(4)}"


@database_sync_to_async
def store(room: str, *texts: str) -> None:
    Message.objects.bulk_create([Message(room=room, text=text) for text in texts])


@database_sync_to_async
def stored_texts(room: str) -> list[str]:
    return list(Message.objects.filter(room=room).values_list("text", flat=True))


# -- installed automatically, once ----------------------------------------------------


def test_installed_by_the_apps_and_idempotent() -> None:
    patched_call, patched_asend = SyncToAsync.__call__, Signal.asend
    assert patched_call.__module__ == "achannels.django._asgiref"
    assert patched_asend.__wrapped__.__module__ == "django.dispatch.dispatcher"
    install_trio_support()
    get_asgi_application()
    assert (SyncToAsync.__call__, Signal.asend) == (patched_call, patched_asend)


_SETUP_AND_QUERY = """
import anyio, django
from django.conf import settings
settings.configure(INSTALLED_APPS={apps!r}, DATABASES={{"default": {{
    "ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}}})
{setup}
from asgiref.sync import sync_to_async
from django.db import connection

def query():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 6 * 7")
        return cursor.fetchone()[0]

print(anyio.run(sync_to_async(query), backend="trio"))
"""


@pytest.mark.parametrize(
    ("apps", "setup"),
    [
        pytest.param(["achannels"], "django.setup()", id="achannels-app"),
        pytest.param(["achannels.django"], "django.setup()", id="achannels.django-app"),
        pytest.param(
            [],
            "from achannels.django import get_asgi_application; get_asgi_application()",
            id="get_asgi_application",
        ),
    ],
)
def test_installed_by_each_entry_point(apps: list[str], setup: str) -> None:
    code = _SETUP_AND_QUERY.format(apps=apps, setup=setup)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


# -- the async ORM in a consumer, in process ------------------------------------------


async def test_async_orm_in_a_consumer(database: Database) -> None:
    room = new_room()
    await store(room, "already there")
    async with WebsocketCommunicator(application, f"/ws/orm/{room}/") as comm:
        assert (await comm.connect())[0]
        assert await comm.receive_json_from(timeout=WAIT) == {"history": ["already there"]}
        for count, text in enumerate(["hello", "world"], start=2):
            await comm.send_json_to({"text": text})
            reply = await comm.receive_json_from(timeout=WAIT)
            assert isinstance(reply.pop("id"), int)
            assert reply == {
                "updated": 1,
                "first": "already there",
                "count": count,
                "texts": ["already there", "HELLO", "WORLD"][:count],
            }
        await comm.disconnect()
    assert await stored_texts(room) == ["already there", "HELLO", "WORLD"]


async def test_more_of_the_async_orm(database: Database) -> None:
    room = new_room()
    rows = Message.objects.filter(room=room)
    await Message.objects.abulk_create([Message(room=room, text=str(n)) for n in range(5)])
    # A server-side cursor on PostgreSQL: every chunk must come from the same thread.
    assert [message.text async for message in rows.aiterator(chunk_size=2)] == list("01234")
    message, created = await Message.objects.aget_or_create(room=room, text="5")
    assert created
    assert await rows.filter(text="5").aexists()
    message.text = "five"
    await message.asave()
    await message.arefresh_from_db()
    assert message.text == "five"
    assert (await rows.filter(text__in=["0", "1"]).adelete())[0] == 2
    assert [text async for text in rows.values_list("text", flat=True)] == [
        *"234",
        "five",
    ]


async def test_consumers_query_concurrently(database: Database) -> None:
    rooms = [new_room() for _ in range(4)]

    async def chat(room: str) -> None:
        async with WebsocketCommunicator(application, f"/ws/orm/{room}/") as comm:
            assert (await comm.connect())[0]
            assert await comm.receive_json_from(timeout=WAIT) == {"history": []}
            for text in ("a", "b", "c"):
                await comm.send_json_to({"text": text})
                await comm.receive_json_from(timeout=WAIT)
            await comm.disconnect()

    async with anyio.create_task_group() as tg:
        for room in rooms:
            tg.start_soon(chat, room)
    for room in rooms:
        assert await stored_texts(room) == ["A", "B", "C"]


async def test_django_calls_sync_to_async_on_the_same_thread(database: Database) -> None:
    seen: list[int] = []

    def record(**kwargs: Any) -> None:
        seen.append(threading.get_ident())

    pre_save.connect(record, sender=Message, weak=False)
    try:
        await Message.objects.acreate(room=new_room(), text="saved")
    finally:
        pre_save.disconnect(record, sender=Message)
    assert seen == [await sync_to_async(threading.get_ident)()]
    assert seen[0] != threading.get_ident()


# -- sync_to_async from user code ---------------------------------------------------


def set_value(value: str) -> tuple[str, int]:
    """Set :data:`VALUE`; return the value seen before and the thread's id."""
    seen = VALUE.get()
    VALUE.set(value)
    return seen, threading.get_ident()


async def test_thread_sensitive_calls_share_one_thread_and_copy_context_back(
    anyio_backend: str,
) -> None:
    VALUE.set("outer")
    seen, first_thread = await sync_to_async(set_value)("first")
    assert (seen, VALUE.get()) == ("outer", "first")
    seen, second_thread = await sync_to_async(set_value, thread_sensitive=True)("second")
    assert (seen, VALUE.get()) == ("first", "second")
    assert first_thread == second_thread != threading.get_ident()


async def test_other_calls_run_in_worker_threads_and_copy_context_back(
    anyio_backend: str,
) -> None:
    VALUE.set("outer")
    loop_thread = threading.get_ident()
    results: dict[str, tuple[str, int]] = {}

    async def call(value: str) -> None:
        results[value] = await sync_to_async(set_value, thread_sensitive=False)(value)
        assert VALUE.get() == value  # this task's own copy of the context

    async with anyio.create_task_group() as tg:
        for value in ("a", "b", "c"):
            tg.start_soon(call, value)
    assert {seen for seen, _ in results.values()} == {"outer"}
    assert loop_thread not in {thread for _, thread in results.values()}
    seen, _ = await sync_to_async(set_value, thread_sensitive=False)("last")
    assert (seen, VALUE.get()) == ("outer", "last")


async def test_a_given_executor_runs_the_call(anyio_backend: str) -> None:
    with ThreadPoolExecutor(1, thread_name_prefix="given") as executor:
        convert = sync_to_async(current_thread_name, thread_sensitive=False, executor=executor)
        assert (await convert()).startswith("given")


def raise_value_error() -> None:
    raise ValueError("from the thread")


def exception_being_handled() -> str:
    return repr(sys.exc_info()[1])


async def test_exceptions_propagate_and_the_handled_one_is_visible(anyio_backend: str) -> None:
    with pytest.raises(ValueError, match="from the thread"):
        await sync_to_async(raise_value_error)()
    try:
        raise KeyError("being handled")
    except KeyError:
        seen = await sync_to_async(exception_being_handled)()
    assert seen == "KeyError('being handled')"


# -- Signal.asend / asend_robust ------------------------------------------------------


async def test_asend_calls_sync_and_async_receivers(anyio_backend: str) -> None:
    signal = Signal()
    threads: list[int] = []

    def sync_receiver(sender: Any, **kwargs: Any) -> str:
        threads.append(threading.get_ident())
        return f"sync {kwargs['word']}"

    async def async_receiver(sender: Any, **kwargs: Any) -> str:
        return f"async {kwargs['word']}"

    signal.connect(sync_receiver, weak=False)
    signal.connect(async_receiver, weak=False)
    assert await signal.asend(sender=None, word="hi") == [
        (sync_receiver, "sync hi"),
        (async_receiver, "async hi"),
    ]
    assert threads == [await sync_to_async(threading.get_ident)()]


async def test_asend_runs_async_receivers_concurrently(anyio_backend: str) -> None:
    signal = Signal()
    first, second = anyio.Event(), anyio.Event()

    async def one(sender: Any, **kwargs: Any) -> int:
        first.set()
        await second.wait()
        return 1

    async def two(sender: Any, **kwargs: Any) -> int:
        second.set()
        await first.wait()
        return 2

    signal.connect(one, weak=False)
    signal.connect(two, weak=False)
    with anyio.fail_after(WAIT):
        assert await signal.asend(sender=None) == [(one, 1), (two, 2)]


async def test_asend_raises_and_asend_robust_returns_the_error(
    anyio_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    signal = Signal()

    def sync_fails(sender: Any, **kwargs: Any) -> None:
        raise KeyError("sync")

    async def async_fails(sender: Any, **kwargs: Any) -> None:
        raise LookupError("async")

    signal.connect(async_fails, weak=False)
    with pytest.raises(LookupError, match="async"):
        await signal.asend(sender=None)
    signal.disconnect(async_fails)
    signal.connect(sync_fails, weak=False)
    with pytest.raises(KeyError, match="sync"):
        await signal.asend(sender=None)
    signal.connect(async_fails, weak=False)
    with caplog.at_level(logging.ERROR, logger="django.dispatch"):
        responses = await signal.asend_robust(sender=None)
    assert [(receiver, repr(error)) for receiver, error in responses] == [
        (sync_fails, "KeyError('sync')"),
        (async_fails, "LookupError('async')"),
    ]
    assert "sync_fails" in caplog.text
    assert "async_fails" in caplog.text


# -- an async view through achannels.django.get_asgi_application ---------------------


@pytest.fixture
def orm_view_handler() -> Iterator[Any]:
    with override_settings(ROOT_URLCONF="tests.django.async_orm_app"):
        yield get_asgi_application()


async def test_an_async_view_uses_the_async_orm(database: Database, orm_view_handler: Any) -> None:
    room = new_room()
    await store(room, "stored")
    headers = [(b"host", b"testserver")]
    async with HttpCommunicator(
        orm_view_handler, "GET", f"/orm/{room}/", headers=headers
    ) as communicator:
        response = await communicator.get_response(timeout=WAIT)
    assert response["status"] == 200, response["body"]
    body = json.loads(response["body"])
    assert (body["count"], body["texts"]) == (2, ["stored", "from a view"])


# -- end to end: hypercorn serving a consumer that uses the async ORM ----------------


@pytest.fixture(params=HYPERCORN)
def orm_server(
    request: pytest.FixtureRequest, project_servers: ServerPool, database: Database
) -> Server:
    """``tests.django.async_orm_app:application`` on hypercorn (trio, asyncio)."""
    env = {**database.environ(), "DJANGO_SETTINGS_MODULE": "examples.django_project.settings"}
    return use_server(request, project_servers.get(request.param, ORM_APP, env=env))


@pytest.mark.e2e
async def test_async_orm_in_a_consumer_on_hypercorn(orm_server: Server) -> None:
    room = new_room()
    await store(room, "before")
    async with open_client(orm_server) as client, open_ws(client, f"/ws/orm/{room}/") as ws:
        with anyio.fail_after(WAIT):
            assert await ws.receive_json() == {"history": ["before"]}
            await ws.send_json({"text": "over the wire"})
            reply = await ws.receive_json()
    assert (reply["count"], reply["texts"]) == (2, ["before", "OVER THE WIRE"])
    assert await stored_texts(room) == ["before", "OVER THE WIRE"]


# -- trio: cancellation and re-entry; asyncio: asgiref's own code --------------------


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_cancellation_waits_for_a_running_call(anyio_backend: str) -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def work() -> None:
        started.set()
        release.wait(WAIT)
        finished.append(True)

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sync_to_async(work))
            await anyio.to_thread.run_sync(started.wait, WAIT)
            scope.cancel()
            release.set()
    assert scope.cancelled_caught
    assert finished == [True]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_cancellation_drops_a_call_still_waiting_for_the_thread(
    anyio_backend: str,
) -> None:
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def blocking() -> None:
        started.set()
        release.wait(WAIT)

    async with anyio.create_task_group() as tg:
        tg.start_soon(sync_to_async(blocking))
        await anyio.to_thread.run_sync(started.wait, WAIT)
        with anyio.CancelScope() as waiting:
            tg.start_soon(cancel_when_blocked, waiting)
            await sync_to_async(ran.append)("never")
        release.set()
    assert waiting.cancelled_caught
    assert ran == []


async def cancel_when_blocked(scope: anyio.CancelScope) -> None:
    await anyio.wait_all_tasks_blocked()
    scope.cancel()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_reentry_into_the_busy_thread_raises(anyio_backend: str) -> None:
    token = anyio.lowlevel.current_token()

    async def again() -> int:
        return await sync_to_async(threading.get_ident)()

    def reenter() -> int:
        return anyio.from_thread.run(again, token=token)

    with pytest.raises(RuntimeError, match="would deadlock"):
        await sync_to_async(reenter)()


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_calls_run_on_achannels_threads(anyio_backend: str) -> None:
    assert (await sync_to_async(current_thread_name)()).startswith("achannels-thread-sensitive")
    other = await sync_to_async(current_thread_name, thread_sensitive=False)()
    assert not other.startswith("achannels-thread-sensitive")
    assert other != current_thread_name()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_runs_asgirefs_own_code(anyio_backend: str) -> None:
    asgiref_thread = SyncToAsync.single_thread_executor.submit(threading.get_ident).result()
    assert await sync_to_async(threading.get_ident)() == asgiref_thread
    other = await sync_to_async(current_thread_name, thread_sensitive=False)()
    assert other.startswith("asyncio_")  # the event loop's default executor
    signal, threads = Signal(), []

    def receiver(sender: Any, **kwargs: Any) -> None:
        threads.append(threading.get_ident())

    signal.connect(receiver, weak=False)
    await signal.asend(sender=None)
    assert threads == [asgiref_thread]
