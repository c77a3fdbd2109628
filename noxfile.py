"""Development tasks: ``nox`` runs the test suite, lint and type checks."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "tests_without_django", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
# Channels' own Redis layer, only to prove both share one Redis (tests/layers/).
INTEROP = ["channels_redis==4.3.0"]
NO_DJANGO_TESTS = [
    "tests/test_import.py",
    "tests/e2e/test_plain_asgi.py",
]


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the whole test suite on asyncio and trio (Django installed)."""
    session.install("-e", ".[dev,django,server,trio,redis]", *INTEROP)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def tests_without_django(session: nox.Session) -> None:
    """Prove the core and the plain-ASGI example work with Django absent."""
    session.install("-e", ".[dev,server,trio]")
    session.run("pip", "uninstall", "--yes", "django", silent=True)
    session.run("pytest", *NO_DJANGO_TESTS, *session.posargs, env={"ACHANNELS_NO_DJANGO": "1"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Run ruff over the package, tests, examples and benchmarks."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """Run mypy --strict over achannels/ and tests/."""
    session.install("-e", ".[dev,django,server,trio,redis]", *INTEROP)
    session.run("mypy", "--strict", "achannels", "tests")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Serve the chat demo on http://127.0.0.1:8000/ (hypercorn, trio, memory layer)."""
    session.install("-e", ".[server,trio]")
    session.run("python", "-m", "achannels", "serve", "examples.chat.app:app", "-k", "trio")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Run the benchmark suite (pass --quick for a short run); the Redis one needs Redis.

    ``bench_redis.py`` compares the Redis layer with Channels' own, channels_redis,
    on the Redis at 127.0.0.1:6379; it gets only ``--quick`` of the arguments.
    """
    session.install(
        "-e", ".[dev,server,trio,redis]", "websockets", "channels_redis==4.3.0", "channels==4.3.2"
    )
    session.run("python", "benchmarks/echo.py", *session.posargs)
    quick = ["--quick"] if "--quick" in session.posargs else []
    session.run("python", "benchmarks/bench_redis.py", *quick)
