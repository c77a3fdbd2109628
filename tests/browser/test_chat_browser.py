"""The chat demo end to end: ``python -m achannels serve`` and a real Chromium.

Each page is a separate browser context, as if three people used the demo. The page
shows "connected" when the server accepts the WebSocket, which the consumer does
only after joining the room's group; every member still says hello and waits for its
own echo first, which proves the whole path works before the test relies on who
hears what.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from .conftest import Served

pytestmark = pytest.mark.browser

#: How long the server may take to notice that the pages left.
LEAVE_WITHIN = 10.0


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
    expect(log(carol)).to_have_value(re.compile(r"anyone\?\n\[error\] send .*2000 chars\n$"))
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
    expect(page.locator("#status")).to_have_text(re.compile(r"closed \((1001|1012)\)"))
    assert chat_server.process.wait(10) == 0, chat_server.describe()
