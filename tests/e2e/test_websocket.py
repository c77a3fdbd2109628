"""WebSockets through real servers: echo, handshake, close codes, bad input, disconnect."""

from __future__ import annotations

import secrets

import anyio
import httpx
import pytest
from httpx_ws import WebSocketUpgradeError

from examples.echo.app import MAX_MESSAGE_SIZE

from .clients import WAIT, open_client, open_ws, poll_json, receive_close, stats, upgrade_headers
from .servers import Server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def found(response: httpx.Response) -> bool:
    return response.status_code == 200


# -- echo ---------------------------------------------------------------------------


async def test_echo_text_and_bytes(server: Server) -> None:
    async with open_client(server) as client, open_ws(client, "/ws/echo/") as ws:
        with anyio.fail_after(WAIT):
            await ws.send_text("hello, wörld")
            assert await ws.receive_text() == "hello, wörld"
            await ws.send_bytes(b"\x00\xffbinary")
            assert await ws.receive_bytes() == b"\x00\xffbinary"
            await ws.send_text("")
            assert await ws.receive_text() == ""


async def test_json_echo(server: Server) -> None:
    message = {"text": "héllo", "numbers": [1, 2.5, None], "nested": {"ok": True}}
    async with open_client(server) as client, open_ws(client, "/ws/json/") as ws:
        with anyio.fail_after(WAIT):
            await ws.send_json(message)
            assert await ws.receive_json() == {"echo": message}


async def test_frame_at_the_size_limit_is_echoed(server: Server) -> None:
    payload = "x" * MAX_MESSAGE_SIZE
    async with (
        open_client(server) as client,
        open_ws(client, "/ws/echo/", max_message_size_bytes=2 * MAX_MESSAGE_SIZE) as ws,
    ):
        with anyio.fail_after(WAIT):
            await ws.send_text(payload)
            assert await ws.receive_text() == payload


# -- the handshake ------------------------------------------------------------------


async def test_unknown_route_is_denied_with_404(server: Server) -> None:
    # hypercorn and uvicorn both offer the websocket.http.response extension, so the
    # router's 404 reaches the client as an HTTP response instead of the plain 403.
    async with open_client(server) as client:
        with pytest.raises(WebSocketUpgradeError) as denied:
            async with open_ws(client, "/ws/nowhere/"):
                pass
        assert denied.value.response.status_code == 404
        response = await client.get("/ws/nowhere/", headers=upgrade_headers())
    assert response.status_code == 404
    assert response.content == b"Not Found"


async def test_subprotocol_negotiation_and_accept_headers(server: Server) -> None:
    async with (
        open_client(server) as client,
        open_ws(client, "/ws/subprotocols/", subprotocols=["echo.v1", "echo.v2"]) as ws,
    ):
        assert ws.subprotocol == "echo.v2"  # the server's preference, not the client's
        assert ws.response is not None
        assert ws.response.headers["x-echo-server"] == "achannels"
        with anyio.fail_after(WAIT):
            assert await ws.receive_text() == "echo.v2"


async def test_no_subprotocol_when_none_is_offered(server: Server) -> None:
    async with open_client(server) as client, open_ws(client, "/ws/subprotocols/") as ws:
        assert ws.subprotocol is None
        assert ws.response is not None
        assert "sec-websocket-protocol" not in ws.response.headers
        with anyio.fail_after(WAIT):
            assert await ws.receive_text() == ""


# -- close codes --------------------------------------------------------------------


@pytest.mark.parametrize("code", [1000, 4321])
async def test_server_close_code_and_reason_reach_the_client(server: Server, code: int) -> None:
    async with open_client(server) as client, open_ws(client, f"/ws/close/{code}/") as ws:
        assert await receive_close(ws) == (code, f"closed with {code}")


async def record_client_close(server: Server) -> dict[str, object]:
    """Close from the client with 4000 and a reason; return what the consumer saw."""
    key = secrets.token_hex(8)
    async with open_client(server) as client:
        async with open_ws(client, f"/ws/record/{key}/") as ws:
            with anyio.fail_after(WAIT):
                assert await ws.receive_text() == "ready"
            await ws.close(4000, "bye now")
        recorded: dict[str, object] = await poll_json(client, f"/records/{key}", found)
    return recorded


async def test_client_close_code_reaches_the_consumer_on_uvicorn(uvicorn_server: Server) -> None:
    assert await record_client_close(uvicorn_server) == {"code": 4000, "reason": "bye now"}


async def test_hypercorn_reports_a_client_close_as_1006(hypercorn_server: Server) -> None:
    # Not achannels: hypercorn 0.18 answers the client's close frame but turns it into
    # a StreamClosed event, and ws_stream.py sends websocket.disconnect with 1006
    # (ABNORMAL_CLOSURE) for any stream that ends while CONNECTED, dropping the
    # client's code and reason. If this starts failing with 4000, hypercorn was fixed.
    assert await record_client_close(hypercorn_server) == {"code": 1006, "reason": ""}


# -- bad input ----------------------------------------------------------------------


async def test_malformed_json_closes_with_1007(server: Server) -> None:
    async with open_client(server) as client, open_ws(client, "/ws/json/") as ws:
        await ws.send_text("{not json")
        code, reason = await receive_close(ws)
    assert code == 1007
    assert reason.startswith("malformed JSON")


async def test_binary_frame_to_a_text_consumer_closes_with_1003(server: Server) -> None:
    async with open_client(server) as client, open_ws(client, "/ws/text/") as ws:
        with anyio.fail_after(WAIT):
            await ws.send_text("text is fine")
            assert await ws.receive_text() == "text is fine"
        await ws.send_bytes(b"binary is not")
        assert await receive_close(ws) == (1003, "expected a text frame, got a binary one")


@pytest.mark.parametrize("kind", ["text", "bytes"])
async def test_oversized_frame_closes_with_1009(server: Server, kind: str) -> None:
    async with open_client(server) as client, open_ws(client, "/ws/echo/") as ws:
        if kind == "text":
            await ws.send_text("x" * (MAX_MESSAGE_SIZE + 1))
        else:
            await ws.send_bytes(b"x" * (MAX_MESSAGE_SIZE + 1))
        assert await receive_close(ws) == (1009, "message too large")


async def test_invalid_message_closes_with_its_code_and_reason(server: Server) -> None:
    async with open_client(server) as client, open_ws(client, "/ws/command/") as ws:
        with anyio.fail_after(WAIT):
            await ws.send_text("ping")
            assert await ws.receive_text() == "pong"
        await ws.send_text("reboot")
        assert await receive_close(ws) == (4400, "unknown command 'reboot'")


#: 160 characters, 180 bytes in UTF-8: the close reason must be cut to fit a frame.
LONG_COMMAND = "ünknown-" * 20


async def check_long_close_reason(server: Server) -> None:
    """An InvalidMessage naming a long non-ASCII command still closes with 4400."""
    async with open_client(server) as client, open_ws(client, "/ws/command/") as ws:
        await ws.send_text(LONG_COMMAND)
        code, reason = await receive_close(ws)
    assert code == 4400
    assert len(reason.encode("utf-8")) <= 123  # a close frame's payload is 125 bytes
    assert f"unknown command {LONG_COMMAND!r}".startswith(reason)


async def test_long_non_ascii_close_reason_on_hypercorn(hypercorn_server: Server) -> None:
    await check_long_close_reason(hypercorn_server)


async def test_long_non_ascii_close_reason_on_uvicorn(uvicorn_server: Server) -> None:
    await check_long_close_reason(uvicorn_server)


async def test_consumer_exception_before_accept_is_http_500(server: Server) -> None:
    async with open_client(server) as client:
        with pytest.raises(WebSocketUpgradeError) as denied:
            async with open_ws(client, "/ws/fail-early/"):
                pass
        assert denied.value.response.status_code == 500
        async with open_ws(client, "/ws/echo/") as ws:
            with anyio.fail_after(WAIT):
                await ws.send_text("still here")
                assert await ws.receive_text() == "still here"


async def test_consumer_exception_closes_with_1011_and_the_server_serves_on(
    server: Server,
) -> None:
    async with open_client(server) as client:
        errors_before = (await stats(client))["errors"]
        async with open_ws(client, "/ws/fail/") as ws:
            await ws.send_text("boom")
            assert await receive_close(ws) == (1011, "internal error")
        assert (await stats(client))["errors"] == errors_before + 1
        async with open_ws(client, "/ws/echo/") as ws:
            with anyio.fail_after(WAIT):
                await ws.send_text("still here")
                assert await ws.receive_text() == "still here"


# -- disconnect ---------------------------------------------------------------------


async def test_disconnect_cancels_a_busy_consumer_promptly(server: Server) -> None:
    key = secrets.token_hex(8)
    async with open_client(server) as client:
        async with open_ws(client, f"/ws/sleep/{key}/") as ws:
            with anyio.fail_after(WAIT):
                assert await ws.receive_text() == "sleeping"
            assert (await stats(client))["connections_live"] >= 2
        # The consumer sleeps for an hour away from receive(): only the disconnect
        # watcher can notice the client left (within Router(disconnect_check=0.1)).
        recorded = await poll_json(
            client, f"/records/{key}", lambda r: found(r) and r.json()["finished"], within=1.5
        )
        assert recorded == {"cancelled": True, "finished": True}
        await poll_json(client, "/stats", lambda r: r.json()["connections_live"] == 1, within=1.5)
