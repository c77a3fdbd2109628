"""Development tasks: ``nox`` runs the test suite, lint and type checks."""

from __future__ import annotations

import nox

nox.options.sessions = [
    "tests",
    "tests_django6",
    "tests_without_django",
    "tests_pytest_asyncio",
    "tests_pytest_trio",
    "lint",
    "typecheck",
]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
# Channels' own Redis layer, only to prove both share one Redis (tests/layers/).
INTEROP = ["channels_redis==4.3.0"]
# Django 5.2 LTS runs with the whole suite (``tests``, Python 3.11); Django 6 (Python
# 3.12 or later) runs the tests that use Django (``tests_django6``).
DJANGO6_PYTHON = "3.12"
DJANGO6_TESTS = [
    "tests/django",
    "tests/generic",
    "tests/layers/test_config.py",
    "tests/testing",
    "tests/test_consumer.py",
    "tests/test_router_mount.py",
    "tests/test_routing.py",
    "tests/test_security.py",
    "tests/test_sync.py",
]
NO_DJANGO_TESTS = [
    "tests/test_import.py",
    "tests/e2e/test_plain_asgi.py",
]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the whole test suite on asyncio and trio (Django 5.2 LTS installed)."""
    session.install("-e", ".[dev,django,server,trio,redis]", *INTEROP, "django>=5.2,<6")
    session.run("pytest", *session.posargs)


@nox.session(python=DJANGO6_PYTHON)
def tests_django6(session: nox.Session) -> None:
    """Run the tests that use Django with Django 6 (on asyncio and trio)."""
    session.install("-e", ".[dev,django,server,trio,redis]", "django>=6,<7")
    session.run("pytest", *DJANGO6_TESTS, *session.posargs)


@nox.session(python=PYTHON)
def tests_without_django(session: nox.Session) -> None:
    """Prove the core and the plain-ASGI example work with Django absent."""
    session.install("-e", ".[dev,server,trio]")
    session.run("pip", "uninstall", "--yes", "django", silent=True)
    session.run("pytest", *NO_DJANGO_TESTS, *session.posargs, env={"ACHANNELS_NO_DJANGO": "1"})


# The communicators under the runners Channels and trio users have (tests_runners/).
# Each in a session of its own: installed beside AnyIO's plugin in the main session,
# pytest-asyncio and pytest-trio would change how its async tests run.
RUNNER_TEST_DEPS = ["pytest>=8", "pytest-timeout>=2.3", "async-timeout>=4"]


@nox.session(python=PYTHON)
def tests_pytest_asyncio(session: nox.Session) -> None:
    """Run the communicators under pytest-asyncio, as Channels projects test: marked
    tests (strict mode), then auto mode."""
    session.install("-e", ".[trio]", *RUNNER_TEST_DEPS, "pytest-asyncio>=1.0")
    session.run("pytest", "tests_runners/with_pytest_asyncio", *session.posargs)
    session.run("pytest", "tests_runners/with_asyncio_auto", *session.posargs)


@nox.session(python=PYTHON)
def tests_pytest_trio(session: nox.Session) -> None:
    """Run the communicators under pytest-trio: marked tests, then trio_mode."""
    session.install("-e", ".[trio]", *RUNNER_TEST_DEPS, "pytest-trio>=0.8")
    session.run("pytest", "tests_runners/with_pytest_trio", *session.posargs)
    session.run("pytest", "tests_runners/with_trio_mode", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Run ruff over the package, tests, examples and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Run mypy --strict over achannels/, tests/ and tests_runners/."""
    session.install("-e", ".[dev,django,server,trio,redis]", *INTEROP)
    session.run("mypy", "--strict", "achannels", "tests", "tests_runners")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Serve the chat demo on http://127.0.0.1:8000/ (hypercorn, trio, memory layer)."""
    session.install("-e", ".[server,trio]")
    session.run("python", "-m", "achannels", "serve", "examples.chat.app:app", "-k", "trio")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run the benchmark suite (pass --quick for a short run); the Redis one needs Redis.

    ``benchmarks/suite.py`` runs echo, fan-out, churn, idle memory, the 10,000-connection
    run (with its ceiling search; not in --quick) and the memory-layer micro-benchmarks
    for the raw ASGI app, achannels' native and class consumers and Channels 4.3.2, on
    hypercorn (trio, asyncio) and uvicorn, writing ``benchmarks/results/``;
    ``benchmarks/readme_table.py`` then writes ``results/README_TABLE.md``. Arguments go
    to the suite (``-- --quick``, ``-- fanout --servers uvicorn``).
    ``bench_redis.py`` compares the Redis layer with Channels' own, channels_redis,
    on the Redis at 127.0.0.1:6379; it gets only ``--quick`` of the arguments.
    """
    session.install(
        "-e",
        ".[dev,server,trio,redis]",
        "websockets",
        "uvicorn",
        "picows",
        "uvloop",
        "channels_redis==4.3.0",
        "channels==4.3.2",
    )
    quick = ["--quick"] if "--quick" in session.posargs else []
    ceiling = [] if quick or "--ceiling" in session.posargs else ["--ceiling"]
    session.run("python", "benchmarks/suite.py", *session.posargs, *ceiling)
    session.run("python", "benchmarks/readme_table.py")
    session.run("python", "benchmarks/bench_redis.py", *quick)
