"""ARCHITECTURE.md's import rules, read from the source: every ``import``, lazy ones included.

The layers stack: ``config`` (what the user asked for) at the bottom, ``stats`` and
``engine`` above it, ``output`` above ``stats``, ``commands`` and ``cli`` on top.  A module
may import its own layer and those below; a lazy import inside a function counts, since it
runs all the same.  gevent belongs to the worker and target processes only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers import REPO

PACKAGE = REPO / "loadgen"

#: what each part of the package may import from loadgen (its own part always)
ALLOWED = {
    "errors": set(),
    "schema": set(),
    "config": {"errors"},
    "stats": {"config", "schema", "errors"},
    "engine": {"config", "stats", "schema", "errors"},
    "output": {"config", "stats", "schema", "errors"},
    "commands": {"config", "engine", "stats", "output", "schema", "errors"},
    "cli": {"commands", "config", "target", "errors", "schema"},
    "__main__": {"cli"},
    "target": {"engine.limits", "engine.patch"},
}
#: the modules that run in a worker or target process, the only ones that may import gevent
GEVENT = {"engine.process", "engine.patch", "engine.worker", "engine.journey", "engine.client",
          "engine.channel"}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file (relative ones too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: a relative import"
            names.add(node.module or "")
            if node.module == "loadgen":   # ``from loadgen import errors``, not ``__version__``
                names.update(f"loadgen.{alias.name}" for alias in node.names
                             if (PACKAGE / f"{alias.name}.py").exists()
                             or (PACKAGE / alias.name).is_dir())
    return names


def _part(module: str) -> str:
    return module.split(".")[0]


def _allowed(module: str, target: str) -> bool:
    """May ``module`` (a name under loadgen) import ``target`` (also under loadgen)?"""
    own, other = _part(module), _part(target)
    if own == other:
        return True
    rules = ALLOWED[own]
    return other in rules or target in rules


MODULES = _modules()


def test_every_part_has_a_rule() -> None:
    assert {_part(m) for m, _ in MODULES if m} <= set(ALLOWED)


@pytest.mark.parametrize("module,path", [m for m in MODULES if m[0]], ids=[m for m, _ in MODULES
                                                                            if m])
def test_imports_follow_the_layers(module: str, path: Path) -> None:
    inside = [name.removeprefix("loadgen.") for name in _imports(path)
              if name.startswith("loadgen.")]
    assert [t for t in inside if not _allowed(module, t)] == []


def test_gevent_only_in_worker_and_target_processes() -> None:
    users = {m for m, path in MODULES if any(_part(n) == "gevent" for n in _imports(path))}
    assert {m for m in users if not m.startswith("target")} <= GEVENT
    assert "engine.coordinator" not in users and "cli" not in users


def test_a_broken_rule_is_seen(tmp_path: Path) -> None:
    """The checker itself: a lazy import of engine inside config is found."""
    sample = tmp_path / "sample.py"
    sample.write_text("from loadgen import output\n\n\ndef f():\n"
                      "    from loadgen.engine.schedule import build_schedule\n")
    assert {"loadgen.engine.schedule", "loadgen.output"} <= _imports(sample)
    assert not _allowed("config.model", "engine.schedule")
    assert _allowed("commands.inputs", "engine.schedule")
    assert not _allowed("stats.capacity", "engine.schedule")
    assert not _allowed("stats.compare", "output.results")
