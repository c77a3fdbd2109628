"""An achannels Router mounted in a plain Starlette app, served by hypercorn; no Django.

``nox -s tests_without_django`` runs this module with Django uninstalled and
``ACHANNELS_NO_DJANGO=1`` set; then ``import django`` must fail here.
"""

from __future__ import annotations

import os

import anyio
import pytest
from httpx_ws import WebSocketUpgradeError

from .clients import WAIT, open_client, open_ws
from .servers import HYPERCORN, PLAIN_ASGI_APP, Server, ServerPool, use_server

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

NO_DJANGO = os.environ.get("ACHANNELS_NO_DJANGO") == "1"


@pytest.fixture(params=HYPERCORN)
def plain_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Server:
    """``examples.plain_asgi.app:app`` on hypercorn with the trio and asyncio workers."""
    return use_server(request, server_pool.get(request.param, PLAIN_ASGI_APP))


async def test_websocket_echo_through_the_mount(plain_server: Server) -> None:
    async with open_client(plain_server) as client, open_ws(client, "/rt/ws/echo/") as ws:
        with anyio.fail_after(WAIT):
            await ws.send_text("through starlette")
            assert await ws.receive_text() == "through starlette"
            await ws.send_bytes(b"\x01\x02")
            assert await ws.receive_bytes() == b"\x01\x02"


async def test_http_view_through_the_mount(plain_server: Server) -> None:
    async with open_client(plain_server) as client:
        response = await client.get("/rt/hello/ada")
    assert response.status_code == 200
    assert response.json() == {"hello": "ada", "path": "/rt/hello/ada"}


async def test_router_404_and_starlette_routes_beside_the_mount(plain_server: Server) -> None:
    async with open_client(plain_server) as client:
        assert (await client.get("/")).text == "served by Starlette"
        assert (await client.get("/rt/nowhere")).status_code == 404
        # Matched by the path without the mount prefix: /hello/... exists only under /rt.
        assert (await client.get("/hello/ada")).status_code == 404
        with pytest.raises(WebSocketUpgradeError) as denied:
            async with open_ws(client, "/rt/ws/nowhere/"):
                pass
    assert denied.value.response.status_code == 404


async def test_server_process_never_imported_django(plain_server: Server) -> None:
    async with open_client(plain_server) as client:
        report = (await client.get("/modules")).json()
    assert report["django_imported"] is False
    if NO_DJANGO:
        assert report["django_installed"] is False


def test_django_is_not_importable_without_django() -> None:
    if not NO_DJANGO:
        pytest.skip("ACHANNELS_NO_DJANGO=1 is not set (nox -s tests_without_django sets it)")
    with pytest.raises(ImportError):
        import django  # noqa: F401
