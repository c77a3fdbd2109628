"""The package map at the top of ``achannels/__init__.py`` holds: imports go one way.

Read from the source with ``ast`` (no import side effects): each rule names modules
that must not import certain others, anywhere in the file (type-checking imports
included, since they still tie the concepts together).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "achannels"


def _imports(module: str) -> set[str]:
    """The ``achannels`` modules ``module`` (dotted, relative to the package) imports."""
    path = PACKAGE / (module.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text())
    package = module.rsplit(".", 1)[0] if "." in module else ""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found |= _resolve(node, package)
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix("achannels.")
                for a in node.names
                if a.name.startswith("achannels.")
            }
    return found


def _resolve(node: ast.ImportFrom, package: str) -> set[str]:
    if node.level == 0:
        if not (node.module or "").startswith("achannels"):
            return set()
        base = (node.module or "").removeprefix("achannels").lstrip(".")
    else:
        parts = package.split(".") if package else []
        parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
        base = ".".join([*parts, *([node.module] if node.module else [])])
    names = {f"{base}.{alias.name}".lstrip(".") for alias in node.names}
    return {base} | names if base else names


SANS_IO = ["_paths", "_wsstate", "_outcome", "layers._names", "layers._redis_wire"]
RUNTIME = [
    "_receiver",
    "_layer_client",
    "_connection",
    "_websocket",
    "_http",
    "_consumer_runtime",
    "_router",
    "_channel_workers",
]
FACES = ["consumer", "generic.websocket", "generic.http", "routing", "worker", "testing"]


def _hits(module: str, forbidden: list[str]) -> list[str]:
    imported = _imports(module)
    return sorted(
        name for name in imported for bad in forbidden if name == bad or name.startswith(bad + ".")
    )


@pytest.mark.parametrize("module", SANS_IO)
def test_sans_io_modules_import_no_runtime(module: str) -> None:
    assert _hits(module, RUNTIME + FACES + ["django"]) == []


@pytest.mark.parametrize(
    "module",
    ["layers._base", "layers.memory", "layers._registry", "layers._reaper", "layers.redis"],
)
def test_layers_import_no_runtime(module: str) -> None:
    assert _hits(module, RUNTIME + FACES + ["django"]) == []


@pytest.mark.parametrize("index", range(len(RUNTIME[:6])))
def test_the_runtime_imports_only_downwards(index: int) -> None:
    module, above = RUNTIME[index], RUNTIME[index + 1 : 6]
    assert _hits(module, [*above, "_router", *FACES, "django"]) == []


@pytest.mark.parametrize("module", RUNTIME)
def test_the_runtime_imports_no_channels_face(module: str) -> None:
    assert _hits(module, [*FACES, "django"]) == []


def test_the_rules_see_imports() -> None:
    """The checks above could not pass vacuously: real imports are found."""
    assert "_connection" in _imports("_websocket")
    assert "_receiver" in _imports("_connection")
    assert "_websocket" in _imports("consumer")
    assert "layers._names" in _imports("layers.redis")
