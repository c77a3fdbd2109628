"""HTTP views: responses, errors, streaming and server-sent events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from achannels import (
    EventSourceResponse,
    HTTPException,
    JSONResponse,
    PlainTextResponse,
    Request,
    Response,
    Router,
    ServerSentEvent,
    StreamingResponse,
)

from .helpers import RawConnection, http_scope

pytestmark = pytest.mark.anyio


async def call(
    router: Router, scope: dict[str, Any], body: bytes = b""
) -> tuple[int, dict[bytes, bytes], bytes]:
    """Send one request and collect the whole response."""
    conn = RawConnection(scope)
    conn.send_input({"type": "http.request", "body": body, "more_body": False})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, router)
        start = await conn.output()
        chunks = []
        while True:
            message = await conn.output()
            chunks.append(message["body"])
            if not message.get("more_body"):
                break
    conn.close()
    return start["status"], dict(start["headers"]), b"".join(chunks)


def make_router() -> Router:
    router = Router(max_body_size=100)

    @router.http("/hello/{name}")
    async def hello(request: Request, name: str) -> Response:
        return PlainTextResponse(f"hello {name} {request.query('greeting', '-')}")

    @router.http("/echo", methods=["POST"])
    async def echo(request: Request) -> Response:
        return JSONResponse({"got": await request.json()}, status=201)

    @router.http("/fail")
    async def fail(request: Request) -> Response:
        raise LookupError("view failed")

    @router.http("/teapot")
    async def teapot(request: Request) -> Response:
        raise HTTPException(418, "short and stout")

    @router.http("/not-a-response")
    async def wrong(request: Request) -> Response:
        return "text"  # type: ignore[return-value]

    @router.http("/stream")
    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            for n in range(3):
                yield f"chunk{n};".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    return router


async def test_view_with_path_and_query_parameters() -> None:
    scope = http_scope("/hello/ann", query_string=b"greeting=hi")
    status, headers, body = await call(make_router(), scope)
    assert (status, body) == (200, b"hello ann hi")
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert headers[b"content-length"] == b"12"


async def test_json_post() -> None:
    scope = http_scope("/echo", method="POST")
    status, headers, body = await call(make_router(), scope, b'{"a": [1, 2]}')
    assert (status, body) == (201, b'{"got":{"a":[1,2]}}')
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == str(len(body)).encode()


@pytest.mark.parametrize(
    ("path", "method", "body", "status", "detail"),
    [
        ("/missing", "GET", b"", 404, b"Not Found"),
        ("/echo", "GET", b"", 405, b"Method Not Allowed"),
        ("/echo", "POST", b"{oops", 400, b"malformed JSON"),
        ("/echo", "POST", b"[" + b"1," * 100 + b"1]", 413, b"request body over 100 bytes"),
        ("/fail", "GET", b"", 500, b"Internal Server Error"),
        ("/teapot", "GET", b"", 418, b"short and stout"),
        ("/not-a-response", "GET", b"", 500, b"Internal Server Error"),
    ],
)
async def test_errors_get_a_status_and_a_clear_body(
    path: str, method: str, body: bytes, status: int, detail: bytes
) -> None:
    got_status, headers, got_body = await call(make_router(), http_scope(path, method), body)
    assert got_status == status
    assert got_body.startswith(detail)
    if status == 405:
        assert headers[b"allow"] == b"POST"


async def test_a_failing_view_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    router = make_router()
    await call(router, http_scope("/fail"))
    assert router.statistics().errors == 1
    assert any(r.exc_info and isinstance(r.exc_info[1], LookupError) for r in caplog.records)


async def test_head_sends_headers_without_the_body() -> None:
    status, headers, body = await call(make_router(), http_scope("/hello/x", "HEAD"))
    assert (status, body) == (200, b"")
    assert headers[b"content-length"] == b"9"  # len("hello x -")


async def test_streaming_response_sends_chunks() -> None:
    status, headers, body = await call(make_router(), http_scope("/stream"))
    assert (status, body) == (200, b"chunk0;chunk1;chunk2;")
    assert b"content-length" not in headers


def test_server_sent_event_wire_format() -> None:
    event = ServerSentEvent("line one\nline two", event="note", id="7", retry=1500)
    assert event.encode() == (
        b"id: 7\nevent: note\nretry: 1500\ndata: line one\ndata: line two\n\n"
    )
    assert ServerSentEvent({"n": 1, "é": "ü"}).encode() == 'data: {"n":1,"é":"ü"}\n\n'.encode()
    with pytest.raises(ValueError, match="single line"):
        ServerSentEvent("x", event="two\nlines").encode()


async def test_endless_sse_stream_stops_when_the_client_leaves() -> None:
    router = Router(disconnect_check=0.01)
    closed = anyio.Event()

    @router.http("/events")
    async def events(request: Request) -> Response:
        async def forever() -> AsyncIterator[ServerSentEvent]:
            try:
                n = 0
                while True:
                    n += 1
                    yield ServerSentEvent(str(n))
                    await anyio.sleep(0.001)
            finally:
                closed.set()

        return EventSourceResponse(forever(), ping=0.01)

    conn = RawConnection(http_scope("/events"))
    conn.send_input({"type": "http.request", "body": b"", "more_body": False})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, router)
        start = await conn.output()
        assert dict(start["headers"])[b"content-type"] == b"text/event-stream; charset=utf-8"
        first = await conn.output()
        assert first["body"] == b"data: 1\n\n"
        conn.send_input({"type": "http.disconnect"})
        with anyio.fail_after(5):
            await closed.wait()
            await conn.finished.wait()
    assert router.statistics().connections_live == 0
    conn.close()


async def test_sse_pings_while_the_source_is_quiet() -> None:
    router = Router()
    release = anyio.Event()

    @router.http("/quiet")
    async def quiet(request: Request) -> Response:
        async def later() -> AsyncIterator[str]:
            await release.wait()
            yield "done"

        return EventSourceResponse(later(), ping=0.01)

    conn = RawConnection(http_scope("/quiet"))
    conn.send_input({"type": "http.request", "body": b"", "more_body": False})
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run, router)
        await conn.output()
        assert (await conn.output())["body"] == b": ping\n\n"
        release.set()
        bodies = []
        while (message := await conn.output()).get("more_body"):
            bodies.append(message["body"])
    assert b"data: done\n\n" in bodies
    conn.close()
