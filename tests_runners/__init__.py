"""The communicators under the test runners Channels and trio users already have.

The main suite (``tests/``) runs on AnyIO's pytest plugin. These directories run the
same scenarios (:mod:`tests_runners.scenarios`) under pytest-asyncio (strict and auto
mode) and pytest-trio (marks and ``trio_mode``), each directory in a pytest invocation
of its own with its own ``pytest.ini``, because the plugins take over async tests
differently (auto mode and ``trio_mode`` claim every one): ``nox -s
tests_pytest_asyncio`` and ``nox -s tests_pytest_trio``.
"""
