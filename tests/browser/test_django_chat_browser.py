"""The Django example project in a real Chromium, served by ``hypercorn -k trio``.

The project is set up as its README says: ``manage.py migrate`` and ``manage.py
createdemousers`` on a fresh database (a SQLite file, or a new PostgreSQL database),
then ``hypercorn -k trio examples.django_project.asgi:application``. Each page is a
separate browser context, as if different people used the chat: they log in through
Django's login view, enter a room from the lobby, and chat. The history a page gets
on entering comes from the database through Django's async ORM: the server is
restarted before the last user enters, so that nothing but the database can hold it.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from .conftest import HOST, READY_WITHIN, REPO, Served, free_port, on_failure, stop, wait_listening

pytestmark = pytest.mark.browser

APP = "examples.django_project.asgi:application"
MANAGE = REPO / "examples" / "django_project" / "manage.py"
#: The demo users' password (``createdemousers``' default).
PASSWORD = "achannels-demo"
#: How long a page may take to reconnect once the server is back (its backoff grows).
RECONNECT_WITHIN_MS = 20_000
#: How long ``manage.py migrate`` and ``createdemousers`` may take.
COMMAND_WITHIN = 60.0
#: hypercorn's ``--graceful-timeout``: plain hypercorn does not close open WebSockets
#: on SIGTERM, it waits this long for them to end (3 s by default), then cancels them.
GRACEFUL_TIMEOUT = "1"


@contextmanager
def fresh_database(kind: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Make an empty database of ``kind``; yield the variables that select it."""
    if kind == "sqlite":
        yield {"ACHANNELS_EXAMPLE_DB": "sqlite", "ACHANNELS_EXAMPLE_DB_NAME": str(tmp_path / "db")}
        return
    import psycopg

    name = f"test_achannels_browser_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = psycopg.connect(
            host=os.environ.get("ACHANNELS_EXAMPLE_PG_HOST", "127.0.0.1"),
            port=os.environ.get("ACHANNELS_EXAMPLE_PG_PORT", "5432"),
            user=os.environ.get("ACHANNELS_EXAMPLE_PG_USER", "postgres"),
            dbname="postgres",
            autocommit=True,
            connect_timeout=3,
        )
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is unreachable (CI is set, so this fails): {exc}")
        pytest.skip(f"PostgreSQL is unreachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield {"ACHANNELS_EXAMPLE_DB": "postgres", "ACHANNELS_EXAMPLE_DB_NAME": name}
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Project:
    """The example project on one database: its commands, and its server on one port."""

    def __init__(self, environ: dict[str, str], log: Path) -> None:
        self.environ = environ
        self.log = log
        self.port = free_port()
        self.served: Served | None = None

    def manage(self, *args: str) -> None:
        """Run ``manage.py *args``, as the README says; fail with its output if it fails."""
        argv = [sys.executable, str(MANAGE), *args]
        done = subprocess.run(
            argv, env=self.environ, cwd=REPO, capture_output=True, text=True, timeout=COMMAND_WITHIN
        )
        assert done.returncode == 0, f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}"

    def start(self) -> Served:
        """Serve the project with ``hypercorn -k trio`` (always on the same port)."""
        bind = f"{HOST}:{self.port}"
        argv = [sys.executable, "-m", "hypercorn", "-k", "trio", "-b", bind]
        argv += ["--graceful-timeout", GRACEFUL_TIMEOUT, APP]
        with self.log.open("ab") as sink:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=self.environ,
            )
        self.served = Served(f"http://{bind}", process, self.log, argv)
        try:
            wait_listening(self.served, self.port, READY_WITHIN)
        except BaseException:
            stop(process)
            raise
        return self.served

    def stop(self) -> int:
        """Stop the server (SIGTERM, bounded); return its exit status."""
        assert self.served is not None
        return stop(self.served.process)

    def describe(self) -> str:
        return self.served.describe() if self.served else "(not started)"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    """The project, migrated, with the demo users, served; stopped afterwards."""
    with fresh_database(request.param, tmp_path) as database:
        environ = {
            **os.environ,
            **database,
            "DJANGO_SETTINGS_MODULE": "examples.django_project.settings",
            "DJANGO_DEBUG": "1",  # the demo's default: users with a known password, static files
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "PYTHONUNBUFFERED": "1",
        }
        project = Project(environ, tmp_path / "server.log")
        project.manage("migrate", "--noinput", "-v", "0")
        project.manage("createdemousers")
        on_failure(request, "Django project server output", project.describe)
        project.start()
        try:
            yield project
        finally:
            project.stop()


def log_in(page: Page, base: str, username: str) -> None:
    """Open the lobby, which asks for a login first; log in as ``username``."""
    page.goto(f"{base}/chat/")
    expect(page).to_have_url(f"{base}/accounts/login/?next=/chat/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("#login-submit").click()
    expect(page).to_have_url(f"{base}/chat/")
    expect(page.locator("#username")).to_have_text(username)


def enter_room(page: Page, base: str, room: str) -> None:
    """Enter ``room`` through the lobby's form; wait until the history has arrived."""
    page.locator("#room-name").fill(room)
    page.locator("#room-name-submit").click()
    expect(page).to_have_url(f"{base}/chat/{room}/")
    expect(page.locator("#room-title")).to_have_text(f"Room: {room}")
    expect(page.locator("#status")).to_have_text("connected")


def say(page: Page, text: str) -> None:
    """Type ``text`` in the message box and press Enter, as a user does."""
    box = page.locator("#chat-message-input")
    box.press_sequentially(text)
    box.press("Enter")
    expect(box).to_have_value("")


def authors(page: Page) -> Locator:
    return page.locator("#chat-log .message .user")


def texts(page: Page) -> Locator:
    return page.locator("#chat-log .message .text")


def notices(page: Page) -> Locator:
    return page.locator("#chat-log .notice")


def test_two_users_chat_and_a_third_finds_the_history(
    project: Project, open_page: Callable[[], Page]
) -> None:
    room = f"room-{secrets.token_hex(4)}"
    assert project.served is not None
    base = project.served.url

    alice = open_page()
    log_in(alice, base, "alice")
    enter_room(alice, base, room)
    expect(texts(alice)).to_have_count(0)  # a new room: an empty history

    bob = open_page()
    log_in(bob, base, "bob")
    enter_room(bob, base, room)
    expect(notices(alice)).to_have_text(["alice joined", "bob joined"])

    say(alice, "hello from alice")
    for page in (alice, bob):
        expect(texts(page)).to_have_text(["hello from alice"])
    say(bob, "hi alice, bob here")
    for page in (alice, bob):
        expect(authors(page)).to_have_text(["alice", "bob"])
        expect(texts(page)).to_have_text(["hello from alice", "hi alice, bob here"])

    # A restart: the messages are now only in the database.
    assert project.stop() == 0, project.describe()
    expect(alice.locator("#status")).to_have_text(re.compile(r"^disconnected \(\d+\), retrying"))
    project.start()

    carol = open_page()
    log_in(carol, base, "carol")
    # The lobby lists the room, with its two stored messages.
    expect(carol.locator("#rooms")).to_contain_text(f"{room} (2 messages)")
    enter_room(carol, base, room)
    expect(authors(carol)).to_have_text(["alice", "bob"])
    expect(texts(carol)).to_have_text(["hello from alice", "hi alice, bob here"])

    # Alice's page reconnected by itself: the history replaced its log, nothing twice.
    expect(alice.locator("#status")).to_have_text("connected", timeout=RECONNECT_WITHIN_MS)
    expect(texts(alice)).to_have_text(["hello from alice", "hi alice, bob here"])
    say(carol, "carol, late")
    expect(texts(alice)).to_have_text(["hello from alice", "hi alice, bob here", "carol, late"])
    expect(authors(carol)).to_have_text(["alice", "bob", "carol"])
