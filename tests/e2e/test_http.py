"""HTTP views and server-sent events through real servers."""

from __future__ import annotations

import anyio
import pytest

from .clients import WAIT, open_client, poll_json, stats
from .servers import Server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


# -- plain views --------------------------------------------------------------------


async def test_get(server: Server) -> None:
    async with open_client(server) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"ok": True}


async def test_unknown_path_is_404(server: Server) -> None:
    async with open_client(server) as client:
        response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.text == "Not Found"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/health", "GET, HEAD"),
        ("DELETE", "/health", "GET, HEAD"),
        ("GET", "/echo", "POST"),
    ],
)
async def test_wrong_method_is_405_with_allow(
    server: Server, method: str, path: str, allow: str
) -> None:
    async with open_client(server) as client:
        response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow


async def test_view_that_raises_is_500_and_the_server_serves_on(server: Server) -> None:
    async with open_client(server) as client:
        errors_before = (await stats(client))["errors"]
        response = await client.get("/fail")
        assert response.status_code == 500
        assert response.text == "Internal Server Error"
        assert (await stats(client))["errors"] == errors_before + 1
        assert (await client.get("/health")).status_code == 200


async def test_json_post_echo(server: Server) -> None:
    body = {"text": "héllo", "items": [1, None, {"deep": [True]}]}
    async with open_client(server) as client:
        response = await client.post("/echo", json=body)
    assert response.status_code == 200
    assert response.json() == {"echo": body}


async def test_malformed_json_post_is_400(server: Server) -> None:
    async with open_client(server) as client:
        response = await client.post(
            "/echo", content=b"{nope", headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert response.text.startswith("malformed JSON")


async def test_head_has_the_get_headers_and_no_body(server: Server) -> None:
    async with open_client(server) as client:
        get = await client.get("/health")
        head = await client.head("/health")
        # The connection is still usable: the server sent no body after HEAD.
        again = await client.get("/health")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(get.content))
    assert head.headers["content-type"] == get.headers["content-type"]
    assert again.json() == {"ok": True}


async def test_head_of_a_streaming_view_has_no_content_length(server: Server) -> None:
    async with open_client(server) as client:
        head = await client.head("/events/3")
    assert head.status_code == 200
    assert head.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert head.content == b""
    assert "content-length" not in head.headers


# -- server-sent events -------------------------------------------------------------


def parse_events(body: str) -> list[dict[str, str]]:
    """Split a ``text/event-stream`` body into events (comment lines dropped)."""
    events = []
    for block in body.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        if fields:
            events.append(fields)
    return events


async def test_sse_stream_of_three_events(server: Server) -> None:
    async with open_client(server) as client:
        response = await client.get("/events/3")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.text.endswith("\n\n")
    assert parse_events(response.text) == [
        {"id": str(n), "event": "tick", "data": f'{{"n":{n}}}'} for n in (1, 2, 3)
    ]


async def test_endless_sse_stops_when_the_client_leaves(server: Server) -> None:
    # A raw socket rather than httpx: leaving an httpx stream half-read leaves its
    # internal async generators unfinalised, which warns under trio.
    request = f"GET /events/0 HTTP/1.1\r\nhost: 127.0.0.1:{server.port}\r\n\r\n"
    async with open_client(server) as client:
        with anyio.fail_after(WAIT):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(request.encode("ascii"))
                received = b""
                while received.count(b"\ndata: ") < 3:
                    received += await stream.receive()
                assert received.startswith(b"HTTP/1.1 200 ")
                assert b"\r\ncontent-type: text/event-stream; charset=utf-8\r\n" in received.lower()
                assert (await stats(client))["live_streams"] == 1
        # The socket closed mid-stream; the server's generator (which would tick
        # forever) must be closed and its connection end.
        await poll_json(
            client,
            "/stats",
            lambda r: r.json()["live_streams"] == 0 and r.json()["connections_live"] == 1,
            within=2.0,
        )
