"""Fixtures for the end-to-end tests: real servers, started once per session.

The server is the fixture parameter (hypercorn with the trio or asyncio worker,
uvicorn); the client's event loop is ``anyio_backend`` from ``tests/conftest.py``.
When a test fails, the output of every server it used is added to its report.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .servers import ECHO_APP, HYPERCORN, SERVERS, Server, ServerPool, use_server


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    """The servers shared by the whole session; stopped (bounded) at its end."""
    pool = ServerPool(tmp_path_factory.mktemp("servers"))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Server:
    """``examples.echo.app:app`` on each server: hypercorn (trio, asyncio), uvicorn."""
    return use_server(request, server_pool.get(request.param, ECHO_APP))


@pytest.fixture(params=HYPERCORN)
def hypercorn_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Server:
    """``examples.echo.app:app`` on hypercorn with the trio and the asyncio worker."""
    return use_server(request, server_pool.get(request.param, ECHO_APP))


@pytest.fixture
def uvicorn_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Server:
    """``examples.echo.app:app`` on uvicorn (asyncio)."""
    return use_server(request, server_pool.get("uvicorn", ECHO_APP))
