"""Imports point downwards only (docs/design.md): a module never imports a layer above its own."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lrkit"
GROUND = {"checks", "runtime", "errors", "paths", "dist", "dist_launch", "progress", "results",
          "_version"}  # fmt: skip
# the only modules that talk to torch.distributed (DESIGN.md: the ground-floor distributed helpers)
DIST_MODULES = {"dist.py", "dist_launch.py"}
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


def _talks_to_torch_distributed(source: str) -> list[int]:
    """The lines of ``source`` that import torch.distributed (or a module in it), reach it as
    an attribute (``torch.distributed.x``) or name it as a module path in a string
    (``getLogger("torch.distributed.elastic")``); docstrings and comments do not count."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }

    def dotted(node: ast.AST) -> str:
        if isinstance(node, ast.Attribute):
            return f"{dotted(node.value)}.{node.attr}"
        return node.id if isinstance(node, ast.Name) else ""

    def inside(name: str) -> bool:
        return name == "torch.distributed" or name.startswith("torch.distributed.")

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            hit = any(inside(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            hit = not node.level and (
                inside(node.module or "")
                or (node.module == "torch" and any(a.name == "distributed" for a in node.names))
            )
        elif isinstance(node, ast.Attribute):
            hit = inside(dotted(node))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            hit = id(node) not in docstrings and inside(node.value.strip())
        else:
            hit = False
        if hit:
            lines.append(node.lineno)
    return sorted(set(lines))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_only_the_ground_floor_distributed_helpers_talk_to_torch_distributed(path):
    if str(path.relative_to(SRC)) in DIST_MODULES:
        return
    lines = _talks_to_torch_distributed(path.read_text(encoding="utf-8"))
    assert not lines, (
        f"{path.relative_to(SRC)}:{lines[0]} talks to torch.distributed; only lrkit.dist and"
        " lrkit.dist_launch may: use them"
    )


@pytest.mark.parametrize(
    "source",
    [
        "import torch.distributed",
        "import torch.distributed.elastic as e",
        "from torch.distributed.launcher.api import elastic_launch",
        "from torch import distributed",
        "import torch\ntorch.distributed.barrier()",
        "import logging\nlogging.getLogger('torch.distributed.elastic')",
    ],
)
def test_the_torch_distributed_check_sees_each_way_in(source):
    assert _talks_to_torch_distributed(source)


def test_the_torch_distributed_check_passes_docstrings_comments_and_prose():
    source = (
        '"""Under torchrun (a torch.distributed group)."""\n'
        "# torch.distributed is for lrkit.dist\n"
        "def f():\n"
        '    """torch.distributed.barrier() is not called here."""\n'
        '    return "inside a torch.distributed group", torch.utils.data.distributed\n'
    )
    assert _talks_to_torch_distributed(source) == []


def test_the_dist_modules_are_the_ones_that_do():
    for name in DIST_MODULES:
        assert _talks_to_torch_distributed((SRC / name).read_text(encoding="utf-8")), name


def test_the_layer_test_sees_an_upward_import(tmp_path):
    assert _layer(("find", "rules.py")) == "find" and _level("watch") == _level("find")
    assert any(layer == "tasks" for layer, _ in _imports(SRC / "train" / "loop.py"))
