"""Modules stay small (issue 12): no Python module of the package over 500 lines."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).parents[1] / "src" / "bugstream"
LIMIT = 500


def test_no_python_module_is_over_500_lines() -> None:
    sizes = {
        str(path.relative_to(SRC)): len(path.read_text(encoding="utf-8").splitlines())
        for path in SRC.rglob("*.py")
        if "migrations" not in path.parts
    }
    assert sizes, "no modules found"
    assert {name: n for name, n in sizes.items() if n > LIMIT} == {}
