"""The memory layer's registry and reaper, sans-IO: no event loop, no layer.

Also the shape of the three modules: imports go one way (``memory`` ->
``_registry`` -> ``_reaper``), and ``memory`` uses the registry only through calls.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import achannels.layers
from achannels.layers._reaper import SWEEP_EVERY, SWEEP_RATIO, Reaper

LAYERS = Path(achannels.layers.__file__).parent


def msg(n: int = 0) -> dict[str, Any]:
    return {"type": "test.message", "n": n}


def imported_modules(module: str) -> set[str]:
    """Return the ``achannels`` modules ``module`` imports, even under TYPE_CHECKING."""
    tree = ast.parse((LAYERS / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("achannels")}


def test_the_reaper_imports_nothing_of_the_package() -> None:
    assert imported_modules("_reaper") == set()


def test_the_registry_imports_only_the_layer_contract_and_the_reaper() -> None:
    assert imported_modules("_registry") == {"achannels.layers._base", "achannels.layers._reaper"}


def test_the_layer_uses_its_registry_only_through_calls() -> None:
    tree = ast.parse((LAYERS / "memory.py").read_text())
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    reached = [
        f"line {node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and ast.unparse(node.value) in ("reg", "self._reg")
        and id(node) not in called
    ]
    assert reached == []


def test_an_entry_armed_out_of_order_comes_due_in_order() -> None:
    reaper: Reaper[str, object] = Reaper()
    reaper.arm_channel("late", 60)
    reaper.arm_channel("early", 1)  # ``expiry`` was lowered in between
    reaper.arm_channel("later", 61)
    assert reaper.pop_channel(2) == "early"
    assert reaper.pop_channel(2) is None
    assert [reaper.pop_channel(100) for _ in range(3)] == ["late", "later", None]
    assert len(reaper) == 0


def test_group_entries_come_due_by_the_group_expiry_given() -> None:
    reaper: Reaper[str, str] = Reaper()
    reaper.arm_group("old", 0)
    reaper.arm_group("new", 50)
    assert reaper.pop_group(100, group_expiry=100) is None
    assert not reaper.groups_due(100, group_expiry=100)
    assert reaper.groups_due(100, group_expiry=60)
    assert reaper.pop_group(100, group_expiry=60) == "old"
    assert reaper.pop_group(100, group_expiry=10) == "new"


def test_tick_grants_a_budget_in_proportion_every_so_many_operations() -> None:
    reaper: Reaper[str, str] = Reaper()
    assert [reaper.tick(1) for _ in range(SWEEP_EVERY - 1)] == [0] * (SWEEP_EVERY - 1)
    assert reaper.tick(10) == (SWEEP_EVERY + 9) * SWEEP_RATIO
    assert reaper.tick(1) == 0


# The cyclic collector is checked in a fresh interpreter: in the test process, other
# tests' threads and leftovers make garbage of their own at any time.
BUSY_REGISTRY = """
import gc
from achannels.layers import InMemoryChannelLayer
from achannels.layers._registry import Registry

def msg(n):
    return {"type": "test.message", "n": n}

def busy_registry():
    reg = Registry()
    for i in range(100):
        channel = reg.find(f"member.{i}") or reg.create(f"member.{i}", 2)
        reg.add_member("room", channel, 0)
        reg.add_member(f"own.{i}", channel, 0)
    for n in range(3):  # members full from the third on: skipped, then drop_oldest
        reg.fan_out("room", (10.0, msg(n)), 0, drop_oldest=n == 2, copy=n == 1)
    for i in range(0, 100, 2):  # half of them drained: idle
        channel = reg.find_active(f"member.{i}")
        while reg.take(channel, lambda: 0.0) is not None:
            pass
    reg.sweep(5, 1000, group_expiry=100)
    return reg

gc.collect()
gc.disable()
"""


def cyclic_garbage(code: str) -> list[int]:
    """Run ``code`` after :data:`BUSY_REGISTRY`; return what each ``collect()`` found."""
    script = BUSY_REGISTRY + "found = []\ncollect = lambda: found.append(gc.collect())\n"
    script += textwrap.dedent(code) + "\nprint(found)\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [int(n) for n in done.stdout.strip("[]\n").split(", ")]


def test_fan_out_take_and_reclaiming_make_no_cyclic_garbage() -> None:
    code = """
        reg = busy_registry()
        collect()
        reg.sweep(50, 1000, group_expiry=10)  # expire messages and memberships
        assert reg.statistics().group_members == 0
        collect()
        reg.clear()
        collect()
    """
    assert cyclic_garbage(code) == [0, 0, 0]


def test_a_dropped_registry_or_layer_is_freed_without_the_cyclic_collector() -> None:
    code = """
        reg = busy_registry()
        del reg
        collect()
        layer = InMemoryChannelLayer(channel_capacity={"small.*": 1})
        layer.send_nowait("small.one", msg(1))
        layer.send_nowait("other", msg(2))
        assert layer.receive_nowait("other") == msg(2)
        del layer
        collect()
    """
    assert cyclic_garbage(code) == [0, 0]


def test_a_channel_holds_a_buffer_only_while_it_holds_messages() -> None:
    from achannels.layers._registry import NO_ITEMS, Registry

    reg = Registry()
    member = reg.create("member", 2)
    reg.add_member("room", member, 0)
    assert member.buffer is NO_ITEMS  # an idle member: no deque of its own
    reg.fan_out("room", (10.0, msg(1)), 0, drop_oldest=False, copy=False)
    reg.fan_out("room", (10.0, msg(2)), 0, drop_oldest=False, copy=False)
    assert [item[1]["n"] for item in member.buffer] == [1, 2]
    assert reg.take(member, lambda: 0.0) == msg(1)
    assert reg.take(member, lambda: 0.0) == msg(2)
    assert member.buffer is NO_ITEMS
    lone = reg.create("lone", 2)
    reg.put(lone, (10.0, msg(3)))
    assert reg.take(lone, lambda: 0.0) == msg(3)
    assert lone.buffer is NO_ITEMS
    try:
        NO_ITEMS.append((0.0, msg(4)))
    except RuntimeError:
        pass
    else:
        raise AssertionError("the shared empty buffer took an item")
    assert not NO_ITEMS
