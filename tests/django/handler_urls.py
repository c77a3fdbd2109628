"""Views that exercise ``achannels.django.DjangoHandler`` beyond the example project."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt


def echo(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(request.body, content_type="application/octet-stream")
    response.set_cookie("seen", "yes")
    return response


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def parts() -> Iterator[bytes]:
        yield b"one,"
        yield b"two"

    return StreamingHttpResponse(parts())


def async_stream(request: HttpRequest) -> StreamingHttpResponse:
    async def parts() -> AsyncIterator[bytes]:
        yield b"three,"
        yield b"four"

    return StreamingHttpResponse(parts())


async def async_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"async view")


def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("view failed")


urlpatterns = [
    # Posted to without a form: the project's CSRF protection is not tested here.
    path("echo/", csrf_exempt(echo)),
    path("stream/", stream),
    path("async-stream/", async_stream),
    path("async-view/", async_view),
    path("fail/", fail),
]
