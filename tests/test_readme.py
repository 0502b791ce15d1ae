"""The README's Python examples run, in order, in one namespace (a fresh working folder)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _blocks() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def test_readme_has_python_examples():
    assert len(_blocks()) >= 3


def test_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    for i, code in enumerate(_blocks(), 1):
        try:
            exec(compile(code, f"README.md python block {i}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"README python block {i} failed: {exc!r}\n{code}")


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("doc", ["README.md", "BENCHMARKS.md", "docs/design.md"])
def test_links_point_to_files_inside_the_repository(doc):
    root = README.parent
    text = (root / doc).read_text(encoding="utf-8")
    for target in LINK.findall(text):
        if "://" in target or target.startswith("mailto:"):
            continue
        path = ((root / doc).parent / target).resolve()
        assert path.is_relative_to(root), f"{doc} links {target!r}, outside the repository"
        assert path.exists(), f"{doc} links {target!r}, which does not exist"
