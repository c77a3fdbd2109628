"""Route the example project's queries to the database the running test selected."""

from __future__ import annotations

from typing import Any

__all__ = ["SelectedDatabase"]


class SelectedDatabase:
    """A Django database router: every read and write goes to :attr:`alias`.

    Tests run one at a time, so a class attribute (not a context variable) is enough,
    and it reaches the worker threads that sync consumers and the ORM run in.
    """

    alias = "default"

    def db_for_read(self, model: type[Any], **hints: Any) -> str:
        return SelectedDatabase.alias

    def db_for_write(self, model: type[Any], **hints: Any) -> str:
        return SelectedDatabase.alias
