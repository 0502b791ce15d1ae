"""Imports point downwards only (docs/design.md): a module never imports a layer above its own."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lrkit"
GROUND = {"checks", "runtime", "errors", "paths", "dist", "progress", "results", "_version"}
# a higher number is a higher layer; find and watch share a level and never import each other
LEVEL = {"tasks": 1, "schedules": 2, "train": 3, "find": 4, "watch": 4, "cli": 6}


def _layer(parts: tuple[str, ...]) -> str:
    head = parts[0] if parts else ""
    head = head.removesuffix(".py")
    return "ground" if head in GROUND else head


def _level(layer: str) -> int:
    return 0 if layer == "ground" else LEVEL.get(layer, 5)


def _imports(path: Path) -> list[tuple[str, int]]:
    """The lrkit layers ``path`` imports, with the line of each import."""
    rel = path.relative_to(SRC).with_suffix("").parts
    package = rel[:-1] if path.name != "__init__.py" else rel[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = (*base, *(node.module or "").split(".")) if node.module else base
                if not node.module:  # "from . import x" / "from .. import x"
                    for alias in node.names:
                        found.append((_layer((*base, alias.name)), node.lineno))
                    continue
            elif node.module and node.module.split(".")[0] == "lrkit":
                target = tuple(node.module.split(".")[1:])
            else:
                continue
            found.append((_layer(tuple(p for p in target if p)), node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "lrkit":
                    found.append((_layer(tuple(alias.name.split(".")[1:])), node.lineno))
    return found


MODULES = sorted(p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] != "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_a_module_imports_only_its_own_layer_and_those_below(path):
    own = _layer(path.relative_to(SRC).parts)
    for layer, line in _imports(path):
        if layer in ("", own):
            continue
        assert _level(layer) < _level(own) or (own == "ground" and layer == "ground"), (
            f"{path.relative_to(SRC)}:{line} imports lrkit.{layer}, a layer not below {own}"
        )


def test_the_layer_test_sees_an_upward_import(tmp_path):
    assert _layer(("find", "rules.py")) == "find" and _level("watch") == _level("find")
    assert any(layer == "tasks" for layer, _ in _imports(SRC / "train" / "loop.py"))
