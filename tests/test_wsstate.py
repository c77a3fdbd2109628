"""The WebSocket state machine, sans-IO."""

from __future__ import annotations

import anyio
import pytest

from achannels import WebSocketDisconnect, WebSocketState, WebSocketStateError
from achannels._wsstate import WebSocketStateMachine


def test_accept_then_close() -> None:
    machine = WebSocketStateMachine()
    machine.accept()
    assert machine.state is WebSocketState.OPEN
    assert machine.close(4000, "bye") is True
    assert (machine.state, machine.close_code, machine.close_reason) == (
        WebSocketState.CLOSED,
        4000,
        "bye",
    )
    assert machine.close(1000, "") is False, "a second close sends nothing"


def test_accept_twice_is_an_error() -> None:
    machine = WebSocketStateMachine()
    machine.accept()
    with pytest.raises(WebSocketStateError, match="cannot accept a WebSocket that is open"):
        machine.accept()


def test_deny_only_before_accept() -> None:
    machine = WebSocketStateMachine()
    machine.deny()
    assert machine.state is WebSocketState.DENIED
    opened = WebSocketStateMachine()
    opened.accept()
    with pytest.raises(WebSocketStateError, match="deny"):
        opened.deny()


def test_close_before_accept_rejects() -> None:
    machine = WebSocketStateMachine()
    assert machine.close(1000, "") is True
    assert machine.state is WebSocketState.CLOSED


def test_disconnect_records_code_and_reason() -> None:
    machine = WebSocketStateMachine()
    machine.accept()
    error = machine.disconnected(4001, "gone")
    assert isinstance(error, WebSocketDisconnect)
    assert (error.code, error.reason) == (4001, "gone")
    assert machine.state is WebSocketState.DISCONNECTED
    assert machine.close(1000, "") is False


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("connecting", WebSocketStateError),
        ("closed", anyio.ClosedResourceError),
        ("disconnected", WebSocketDisconnect),
        ("denied", WebSocketStateError),
    ],
)
def test_operations_outside_open_get_a_clear_error(setup: str, expected: type[Exception]) -> None:
    machine = WebSocketStateMachine()
    if setup == "closed":
        machine.accept()
        machine.close(1000, "")
    elif setup == "disconnected":
        machine.accept()
        machine.disconnected(1001, "")
    elif setup == "denied":
        machine.deny()
    error = machine.not_open("send")
    assert isinstance(error, expected)
    assert "send" in str(error) or isinstance(error, WebSocketDisconnect)


@pytest.mark.parametrize("end", ["close", "deny"])
def test_a_disconnect_after_this_side_ended_keeps_that_ending(end: str) -> None:
    machine = WebSocketStateMachine()
    if end == "close":
        machine.accept()
        machine.close(4000, "bye", by_server=True)
    else:
        machine.deny()
    machine.disconnected(1006, "")
    expected = WebSocketState.CLOSED if end == "close" else WebSocketState.DENIED
    assert machine.state is expected
    assert machine.finished
    assert machine.close_code == (4000 if end == "close" else None)
    assert machine.closed_by_server is (end == "close")
