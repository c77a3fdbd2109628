"""Fixtures for the Django tests: the example project, on SQLite and on PostgreSQL.

Django is set up here, at import, with ``tests.django.settings``: the example
project's settings with two databases, ``default`` (SQLite, a file) and ``postgres``.
Test databases are made with Django's own test machinery
(``connection.creation.create_test_db``: create, then migrate) the first time a test
asks for one, and destroyed at the end of the session. The ``database`` fixture runs
each test that uses it once per database; the router in ``tests.django.dbrouting``
sends the project's queries to it. Server and worker subprocesses get the same test
database through ``ACHANNELS_EXAMPLE_DB`` / ``ACHANNELS_EXAMPLE_DB_NAME``.

PostgreSQL tests skip when the server on 127.0.0.1:5432 is unreachable, and fail
instead when the ``CI`` environment variable is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import django
import pytest
from django.conf import settings

from tests.e2e.servers import HYPERCORN, Server, ServerPool, use_server

os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django.settings"
if settings.configured and getattr(settings, "SETTINGS_MODULE", None) != "tests.django.settings":
    # Another test module configured Django first (``settings.configure()``).
    pytest.skip(
        "Django was configured by another test module; run tests/django on its own",
        allow_module_level=True,
    )
django.setup()

from achannels.layers import InMemoryChannelLayer, channel_layers  # noqa: E402
from tests.django.dbrouting import SelectedDatabase  # noqa: E402

APP = "examples.django_project.asgi:application"
# Before Django 6 a new test database is serialized unless told not to; Django 6 deprecates the
# argument (and serializes nothing unless asked).
_NO_SERIALIZE = {} if django.VERSION >= (6,) else {"serialize": False}
_ALIASES = {"sqlite": "default", "postgres": "postgres"}


@dataclass(frozen=True)
class Database:
    """A migrated test database: its kind, Django alias and name."""

    kind: str
    alias: str
    name: str

    def environ(self) -> dict[str, str]:
        """The variables that point the example project's settings at this database."""
        return {"ACHANNELS_EXAMPLE_DB": self.kind, "ACHANNELS_EXAMPLE_DB_NAME": self.name}


class TestDatabases:
    """Create each test database on first use; destroy them all at :meth:`close`."""

    def __init__(self) -> None:
        self._made: dict[str, tuple[Database, str]] = {}

    def get(self, kind: str) -> Database:
        """Return the test database of ``kind``, creating and migrating it if needed."""
        if kind not in self._made:
            from django.db import connections

            alias = _ALIASES[kind]
            if kind == "postgres":
                _require_postgres(connections[alias].settings_dict)
            old_name = connections[alias].settings_dict["NAME"]
            name = connections[alias].creation.create_test_db(
                verbosity=0, autoclobber=True, **_NO_SERIALIZE
            )
            self._made[kind] = (Database(kind, alias, name), old_name)
        return self._made[kind][0]

    def close(self) -> None:
        """Destroy every test database made (closing this process's connections first)."""
        from django.db import connections

        _close_thread_sensitive_connections()
        for database, old_name in self._made.values():
            connections[database.alias].creation.destroy_test_db(old_name, verbosity=0)
        self._made.clear()


def _close_thread_sensitive_connections() -> None:
    """Close the connections of the threads that run Django's async ORM.

    asgiref (on asyncio) and achannels (on trio) run it on one thread that lives as
    long as the process, and Django keeps a connection per thread: PostgreSQL cannot
    drop a database while they are open.
    """
    import anyio
    from asgiref.sync import sync_to_async
    from django.db import connections

    for backend in ("asyncio", "trio"):
        anyio.run(sync_to_async(connections.close_all), backend=backend)


def _require_postgres(settings_dict: dict[str, object]) -> None:
    import psycopg

    try:
        psycopg.connect(
            host=str(settings_dict["HOST"]),
            port=str(settings_dict["PORT"]),
            user=str(settings_dict["USER"]),
            dbname="postgres",
            connect_timeout=3,
        ).close()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL is unreachable at {settings_dict['HOST']}:{settings_dict['PORT']}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI is set, so this fails): {exc}")
        pytest.skip(f"{message}: {exc}")


@pytest.fixture(scope="session")
def test_databases() -> Iterator[TestDatabases]:
    """The session's test databases (Django's test environment is set up around them)."""
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    databases = TestDatabases()
    try:
        yield databases
    finally:
        databases.close()
        teardown_test_environment()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database(request: pytest.FixtureRequest, test_databases: TestDatabases) -> Iterator[Database]:
    """Each test database in turn, selected for this process's ORM queries."""
    db = test_databases.get(request.param)
    SelectedDatabase.alias = db.alias
    try:
        yield db
    finally:
        SelectedDatabase.alias = "default"


@pytest.fixture(autouse=True)
def fresh_channel_layer() -> Iterator[InMemoryChannelLayer]:
    """A new default layer for every test, so that no group or message crosses tests."""
    layer = InMemoryChannelLayer()
    old = channel_layers.set("default", layer)
    try:
        yield layer
    finally:
        if old is None:
            channel_layers.backends.pop("default", None)
        else:
            channel_layers.set("default", old)


# -- the example project served by hypercorn ----------------------------------------


@pytest.fixture(scope="session")
def project_servers(
    tmp_path_factory: pytest.TempPathFactory, test_databases: TestDatabases
) -> Iterator[ServerPool]:
    """The session's servers; stopped before the test databases are destroyed."""
    servers = ServerPool(tmp_path_factory.mktemp("django-servers"))
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture(params=HYPERCORN)
def project_server(
    request: pytest.FixtureRequest, project_servers: ServerPool, database: Database
) -> Server:
    """``examples.django_project.asgi:application`` on hypercorn (trio, asyncio)."""
    env = {**database.environ(), "DJANGO_SETTINGS_MODULE": "examples.django_project.settings"}
    return use_server(request, project_servers.get(request.param, APP, env=env))
