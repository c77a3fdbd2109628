"""The chat demo end to end: ``python -m achannels serve`` and a real Chromium.

Each page is a separate browser context, as if three people used the demo. The page
shows "connected" when the server accepts the WebSocket, which the consumer does
only after joining the room's group; every member still says hello and waits for its
own echo first, which proves the whole path works before the test relies on who
hears what.

When its socket closes, the page says why in its log and reconnects with backoff;
what is typed meanwhile waits and is sent once the page is connected again.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from examples.chat.app import BAD_MESSAGE
from examples.chat.app import app as chat_app

from .conftest import HOST, READY_WITHIN, REPO, Served, on_failure, stop, wait_listening

pytestmark = pytest.mark.browser

#: How long the server may take to notice that the pages left.
LEAVE_WITHIN = 10.0
#: How long a page may take to reconnect once the server is back (its backoff grows).
RECONNECT_WITHIN_MS = 20_000
CHAT_APP = "examples.chat.app:app"
#: How the page describes the close after a frame over ``max_message_size``.
TOO_BIG = "1009: a message you sent was too big"


def new_room() -> str:
    """Return a room name no other test uses (a valid ``slug``)."""
    return f"room-{secrets.token_hex(4)}"


def log(page: Page) -> Locator:
    """Return the page's chat log (a textarea: its text is its ``value``)."""
    return page.locator("#chat-log")


def enter_room(page: Page, server: Served, room: str) -> None:
    """Open ``room`` from the page and wait until its WebSocket is open."""
    page.goto(f"{server.url}/chat/{room}/")
    expect(page.locator("#status")).to_have_text("connected")


def say(page: Page, text: str) -> None:
    """Type ``text`` in the message box and press Enter, as a user does."""
    box = page.locator("#chat-message-input")
    box.press_sequentially(text)
    box.press("Enter")
    expect(box).to_have_value("")


def say_hello(page: Page, name: str, heard: str) -> str:
    """Say hello and wait for the echo (proving membership); return the new log."""
    say(page, f"{name} is here")
    expected = f"{heard}{name} is here\n"
    expect(log(page)).to_have_value(expected)
    return expected


def wait_for_stats(server: Served, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll the demo's ``/stats`` until ``done(stats)``, bounded; return the last stats."""
    deadline = time.monotonic() + LEAVE_WITHIN
    while True:
        stats: dict[str, Any] = httpx.get(f"{server.url}/stats", timeout=5).json()
        if done(stats):
            return stats
        if time.monotonic() > deadline:
            raise AssertionError(f"/stats after {LEAVE_WITHIN} s: {stats}")
        time.sleep(0.05)


def test_a_message_reaches_the_room_and_only_the_room(
    open_page: Callable[[], Page], chat_server: Served
) -> None:
    room, elsewhere = new_room(), new_room()

    # Alice comes in through the lobby form.
    alice = open_page()
    alice.goto(f"{chat_server.url}/")
    alice.locator("#room-name").press_sequentially(room)
    alice.locator("#room-name-submit").click()
    alice.wait_for_url(f"{chat_server.url}/chat/{room}/")
    expect(alice.locator("#room-title")).to_have_text(f"Room: {room}")
    expect(alice.locator("#status")).to_have_text("connected")
    alice_log = say_hello(alice, "alice", "")

    bob = open_page()
    enter_room(bob, chat_server, room)
    bob_log = say_hello(bob, "bob", "")
    alice_log += "bob is here\n"
    expect(log(alice)).to_have_value(alice_log)

    carol = open_page()
    enter_room(carol, chat_server, elsewhere)
    carol_log = say_hello(carol, "carol", "")

    say(alice, "hello from alice")
    expect(log(alice)).to_have_value(alice_log + "hello from alice\n")
    expect(log(bob)).to_have_value(bob_log + "hello from alice\n")

    # Had carol got alice's message, it would be in her log before this one.
    say(carol, "anyone?")
    expect(log(carol)).to_have_value(carol_log + "anyone?\n")

    # A message over the limit is answered to its sender only; the socket stays open.
    carol.locator("#chat-message-input").fill("x" * 2001)
    carol.locator("#chat-message-input").press("Enter")
    expect(log(carol)).to_have_value(carol_log + "anyone?\n[error] " + BAD_MESSAGE + "\n")
    expect(carol.locator("#status")).to_have_text("connected")
    expect(log(alice)).to_have_value(alice_log + "hello from alice\n")

    # Everyone leaves: the server forgets every membership and connection.
    for page in (alice, bob, carol):
        page.close()
    stats = wait_for_stats(chat_server, lambda s: s["layer"]["group_members"] == 0)
    assert stats["layer"]["groups"] == 0
    assert stats["runtime"]["connections_live"] == 1  # this /stats request
    assert stats["runtime"]["errors"] == 0


def test_server_shutdown_closes_the_page_cleanly(
    open_page: Callable[[], Page], chat_server: Served
) -> None:
    page = open_page()
    enter_room(page, chat_server, new_room())
    say_hello(page, "dave", "")

    chat_server.process.terminate()
    expect(page.locator("#status")).to_have_text(
        re.compile(r"^reconnecting… \(closed with (1001: the server is going away|1012: .*)\)$")
    )
    assert chat_server.process.wait(10) == 0, chat_server.describe()


def test_the_page_reconnects_after_a_message_too_big(
    open_page: Callable[[], Page], chat_server: Served
) -> None:
    room = new_room()
    alice = open_page()
    enter_room(alice, chat_server, room)
    alice_log = say_hello(alice, "alice", "")
    bob = open_page()
    enter_room(bob, chat_server, room)
    bob_log = say_hello(bob, "bob", "")
    alice_log += "bob is here\n"
    expect(log(alice)).to_have_value(alice_log)

    # One frame over the app's max_message_size: the server closes the socket with 1009.
    box = alice.locator("#chat-message-input")
    box.fill("y" * (chat_app.max_message_size + 1))
    box.press("Enter")
    alice_log += f"[disconnected: {TOO_BIG}; reconnecting]\n[reconnected]\n"
    expect(log(alice)).to_have_value(alice_log)
    expect(alice.locator("#status")).to_have_text("connected")

    # The new socket is in the room again: a later message reaches everyone.
    say(alice, "back again")
    expect(log(alice)).to_have_value(alice_log + "back again\n")
    expect(log(bob)).to_have_value(bob_log + "back again\n")
    stats = wait_for_stats(chat_server, lambda s: s["runtime"]["connections_live"] == 3)
    assert stats["layer"]["group_members"] == 2  # the closed socket left the group


def test_messages_typed_while_the_server_is_down_are_sent_when_it_is_back(
    request: pytest.FixtureRequest,
    open_page: Callable[[], Page],
    chat_server: Served,
    tmp_path: Path,
) -> None:
    page = open_page()
    enter_room(page, chat_server, new_room())
    page_log = say_hello(page, "erin", "")

    chat_server.process.terminate()
    assert chat_server.process.wait(10) == 0, chat_server.describe()
    status = page.locator("#status")
    expect(status).to_have_text(re.compile(r"^reconnecting… \(closed with 1001: .*\)$"))

    # Typed while nobody listens: kept, and said so, not dropped.
    say(page, "typed while away")
    expect(status).to_have_text(re.compile(r"reconnecting… .*, 1 message waiting to be sent$"))

    port = urlsplit(chat_server.url).port
    assert port is not None
    with serve_on(port, tmp_path / "restarted.log") as restarted:
        on_failure(request, "restarted chat server output", restarted.describe)
        page_log += "[disconnected: 1001: the server is going away; reconnecting]\n"
        page_log += "[reconnected]\ntyped while away\n"
        # The page's backoff may be a few seconds in by now.
        expect(log(page)).to_have_value(page_log, timeout=RECONNECT_WITHIN_MS)
        expect(status).to_have_text("connected")


@contextmanager
def serve_on(port: int, output: Path) -> Iterator[Served]:
    """Serve the chat demo again on ``port`` (as the ``chat_server`` fixture does)."""
    argv = [sys.executable, "-m", "achannels", "serve", CHAT_APP, "-k", "trio"]
    argv += ["-b", f"{HOST}:{port}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with output.open("wb") as sink:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO, env=env
        )
    served = Served(f"http://{HOST}:{port}", process, output, argv)
    try:
        wait_listening(served, port, READY_WITHIN)
        yield served
    finally:
        stop(process)
