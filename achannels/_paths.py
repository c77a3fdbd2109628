"""Route path patterns: ``/ws/chat/{room}/``, ``/items/{item_id:int}``.

Sans-IO and synchronous. A pattern compiles once into a regex plus one converter per
parameter; matching a request path returns the converted parameters or ``None``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CONVERTERS", "PathPattern", "compile_path"]


@dataclass(frozen=True, slots=True)
class _Converter:
    regex: str
    convert: Callable[[str], Any]


CONVERTERS: Mapping[str, _Converter] = {
    "str": _Converter(r"[^/]+", str),
    "int": _Converter(r"[0-9]+", int),
    "slug": _Converter(r"[-a-zA-Z0-9_]+", str),
    "uuid": _Converter(
        r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", uuid.UUID
    ),
    "path": _Converter(r".*", str),
}

_PARAM = re.compile(r"{([^{}:]*)(?::([^{}]*))?}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True, slots=True)
class PathPattern:
    """A compiled route pattern."""

    pattern: str
    regex: re.Pattern[str]
    converters: tuple[tuple[str, Callable[[str], Any]], ...]

    def match(self, path: str) -> dict[str, Any] | None:
        """Return the converted path parameters if ``path`` matches, else ``None``."""
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        if not self.converters:
            return {}
        return {name: convert(found[name]) for name, convert in self.converters}


def compile_path(pattern: str) -> PathPattern:
    """Compile a route pattern such as ``/ws/{room}/`` or ``/items/{id:int}``.

    Raises:
        ValueError: the pattern does not start with ``/``, names an unknown converter,
            uses a parameter name twice, or a name that is not an identifier.
    """
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern {pattern!r} must start with '/'")
    parts: list[str] = []
    converters: list[tuple[str, Callable[[str], Any]]] = []
    position = 0
    for found in _PARAM.finditer(pattern):
        name, kind = found[1], found[2] or "str"
        if not _IDENTIFIER.match(name):
            raise ValueError(f"route pattern {pattern!r}: {name!r} is not a valid parameter name")
        if kind not in CONVERTERS:
            known = ", ".join(sorted(CONVERTERS))
            raise ValueError(f"route pattern {pattern!r}: unknown converter {kind!r} ({known})")
        if any(name == seen for seen, _ in converters):
            raise ValueError(f"route pattern {pattern!r} uses the parameter {name!r} twice")
        parts.append(re.escape(pattern[position : found.start()]))
        parts.append(f"(?P<{name}>{CONVERTERS[kind].regex})")
        converters.append((name, CONVERTERS[kind].convert))
        position = found.end()
    rest = pattern[position:]
    if "{" in rest or "}" in rest:
        raise ValueError(f"route pattern {pattern!r} has an unbalanced brace")
    parts.append(re.escape(rest))
    return PathPattern(pattern, re.compile("".join(parts)), tuple(converters))
