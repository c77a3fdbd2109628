"""``manage.py runworker``: a real subprocess of the example project, and the command in process.

The subprocess runs ``examples/django_project/manage.py runworker archive`` with
``"achannels"`` (not ``"achannels.django"``) in ``INSTALLED_APPS``, as a renamed
Channels project has it. Its layer is process-local, so the messages are sent
inside the worker process (``tests.django.preloaded_layer``); the worker's
``ArchiveConsumer`` stores them, and this process reads the rows from the shared
test database, then stops the worker with a signal.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test.utils import override_settings

from achannels._asgi import Receive, Scope, Send
from achannels.django import get_default_application
from achannels.django.management.commands.runworker import run_until_signalled
from achannels.layers import InMemoryChannelLayer
from achannels.layers.redis import RedisChannelLayer
from achannels.worker import Worker
from examples.django_project.asgi import application
from examples.django_project.chat.models import Message
from tests.django.conftest import Database
from tests.e2e.servers import REPO

MANAGE = REPO / "examples" / "django_project" / "manage.py"
#: Bounds on the subprocess: Django starts in about a second on this machine.
WITHIN = 20.0


def stored_texts(room: str) -> list[str]:
    return list(Message.objects.filter(room=room).values_list("text", flat=True))


@pytest.mark.parametrize(
    ("backend", "stop_signal"),
    [("trio", signal.SIGINT), ("asyncio", signal.SIGTERM)],
    ids=["trio-SIGINT", "asyncio-SIGTERM"],
)
def test_runworker_serves_its_channel_and_stops_on_a_signal(
    database: Database, backend: str, stop_signal: signal.Signals, tmp_path: Path
) -> None:
    room = f"worker-{secrets.token_hex(4)}"
    jobs = [
        {"type": "archive.message", "room": room, "text": "one"},
        {"type": "archive.message", "room": room},  # no text: the consumer raises
        {"type": "archive.message", "room": room, "text": "two"},
    ]
    env = {
        **os.environ,
        **database.environ(),
        "DJANGO_SETTINGS_MODULE": "tests.django.worker_settings",
        "ACHANNELS_TEST_PRELOAD": json.dumps({"archive": jobs}),
        "PYTHONUNBUFFERED": "1",
    }
    argv = [sys.executable, str(MANAGE), "runworker", "archive", "--backend", backend]
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=err)
    try:
        deadline = time.monotonic() + WITHIN
        while stored_texts(room) != ["one", "two"]:
            assert process.poll() is None, f"the worker exited early:\n{stderr.read_text()}"
            assert time.monotonic() < deadline, f"no rows in time:\n{stderr.read_text()}"
            time.sleep(0.05)
        process.send_signal(stop_signal)
        status = process.wait(WITHIN)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WITHIN)
    output, errors = stdout.read_text(), stderr.read_text()
    assert status == 0, errors
    assert f"Running worker for channels archive (layer 'default', {backend})" in output
    assert "Worker stopped" in output
    assert "KeyError: 'text'" in errors  # logged with its traceback; the worker went on
    assert stored_texts(room) == ["one", "two"]


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_runworker_fed_through_redis_from_another_process(
    database: Database, backend: str, tmp_path: Path
) -> None:
    """A Channels project's channels_redis setting, unchanged: this process feeds the worker."""
    room, prefix = f"redis-{secrets.token_hex(4)}", f"rw{secrets.token_hex(4)}"
    layer = RedisChannelLayer(hosts=["redis://127.0.0.1:6379/5"], prefix=prefix)
    env = {
        **os.environ,
        **database.environ(),
        "DJANGO_SETTINGS_MODULE": "tests.django.redis_worker_settings",
        "ACHANNELS_TEST_REDIS_PREFIX": prefix,
        "PYTHONUNBUFFERED": "1",
    }
    argv = [sys.executable, str(MANAGE), "runworker", "archive", "--backend", backend]
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=err)
    try:
        for text in ("one", "two"):
            message = {"type": "archive.message", "room": room, "text": text}
            anyio.run(layer.send, "archive", message, backend=backend)
        deadline = time.monotonic() + WITHIN
        while stored_texts(room) != ["one", "two"]:
            assert process.poll() is None, f"the worker exited early:\n{stderr.read_text()}"
            assert time.monotonic() < deadline, f"no rows in time:\n{stderr.read_text()}"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        status = process.wait(WITHIN)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WITHIN)
        anyio.run(layer.flush)
    assert status == 0, stderr.read_text()
    assert "Worker stopped" in stdout.read_text()


def test_runworker_without_a_layer_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="You do not have any CHANNEL_LAYERS configured"):
        call_command("runworker", "archive", layer="missing")


def test_default_application_comes_from_the_setting() -> None:
    assert get_default_application() is application
    with (
        override_settings(ASGI_APPLICATION="examples.nowhere.application"),
        pytest.raises(ImproperlyConfigured, match="Cannot import"),
    ):
        get_default_application()
    with (
        override_settings(ASGI_APPLICATION="examples.django_project.asgi.missing"),
        pytest.raises(ImproperlyConfigured, match="Cannot find 'missing'"),
    ):
        get_default_application()
    with (
        override_settings(ASGI_APPLICATION=None),
        pytest.raises(ImproperlyConfigured, match="Cannot find ASGI_APPLICATION"),
    ):
        get_default_application()


@pytest.mark.anyio
async def test_run_until_signalled_returns_when_the_worker_does() -> None:
    layer = InMemoryChannelLayer()
    await layer.send("archive", {"type": "archive.message", "room": "r", "text": "t"})
    received: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received.append((await receive())["text"])

    worker = Worker(app, ["archive"], layer, limit=1)
    with anyio.fail_after(5):
        await run_until_signalled(worker)
    assert received == ["t"]


def test_both_app_names_provide_the_command() -> None:
    from django.core.management import get_commands

    from achannels.django.management.commands import runworker
    from achannels.management.commands import runworker as reexported

    assert get_commands()["runworker"] in {"achannels", "achannels.django"}
    assert reexported.Command is runworker.Command
