"""``achannels.django.get_asgi_application``: Django's HTTP cycle on asyncio and trio."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.test.utils import override_settings

from achannels.django import DjangoHandler, get_asgi_application
from achannels.testing import HttpCommunicator

pytestmark = [pytest.mark.anyio, pytest.mark.django]


@pytest.fixture
def handler() -> Iterator[DjangoHandler]:
    with override_settings(ROOT_URLCONF="tests.django.handler_urls"):
        yield get_asgi_application()


async def request(
    handler: DjangoHandler, method: str, path: str, body: bytes = b""
) -> dict[str, Any]:
    headers = [(b"host", b"testserver")]
    communicator = HttpCommunicator(handler, method, path, body=body, headers=headers)
    return await communicator.get_response(timeout=5)


async def test_body_in_and_out_with_cookies(handler: DjangoHandler) -> None:
    response = await request(handler, "POST", "/echo/", b"payload")
    assert response["status"] == 200
    assert response["body"] == b"payload"
    assert (b"Set-Cookie", b"seen=yes; Path=/") in response["headers"]


async def test_a_body_larger_than_memory_goes_to_disk(handler: DjangoHandler) -> None:
    body = bytes(range(256)) * 100
    with override_settings(FILE_UPLOAD_MAX_MEMORY_SIZE=1000):
        response = await request(handler, "POST", "/echo/", body)
    assert response["body"] == body


@pytest.mark.parametrize(
    ("path", "body"), [("/stream/", b"one,two"), ("/async-stream/", b"three,four")]
)
async def test_streaming_responses(handler: DjangoHandler, path: str, body: bytes) -> None:
    response = await request(handler, "GET", path)
    assert response["status"] == 200
    assert response["body"] == body


async def test_an_async_view_runs(handler: DjangoHandler) -> None:
    assert (await request(handler, "GET", "/async-view/"))["body"] == b"async view"


async def test_a_failing_view_is_a_500(
    handler: DjangoHandler, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = await request(handler, "GET", "/fail/")
    assert response["status"] == 500
    assert "view failed" in caplog.text


async def test_only_http_is_served(handler: DjangoHandler) -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError("not called")

    async def send(message: Any) -> None:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="only handle ASGI/HTTP"):
        await handler({"type": "websocket"}, receive, send)
