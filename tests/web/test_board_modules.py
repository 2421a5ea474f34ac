"""The board's ES modules hold together: every relative import is a file the server serves,
and names each module imports are ones the other exports (a missing one breaks the page at
load, before any test could click)."""

from __future__ import annotations

import re
from importlib.resources import files

from bugstream.web.routes import STATIC_FILES

WEB = files("bugstream.web")
IMPORT = re.compile(r'import \{([^}]*)\} from "\./([\w.-]+\.js)"')
EXPORT = re.compile(r"^export (?:async function|function|class|const|let) (\w+)", re.M)


def _source(name: str) -> str:
    return WEB.joinpath(name).read_text(encoding="utf-8")


def test_every_module_import_is_served_and_exported() -> None:
    scripts = [name for name in STATIC_FILES if name.endswith(".js")]
    problems = []
    for name in scripts:
        for imported, module in IMPORT.findall(_source(name)):
            if module not in STATIC_FILES:
                problems.append(f"{name} imports {module}, which /static/ does not serve")
                continue
            exported = set(EXPORT.findall(_source(module)))
            for symbol in (s.strip() for s in imported.split(",") if s.strip()):
                if symbol not in exported:
                    problems.append(f"{name} imports {symbol} from {module}, which lacks it")
    assert problems == []


def test_the_board_modules_are_small() -> None:
    sizes = {n: len(_source(n).splitlines()) for n in STATIC_FILES if n.startswith("board")}
    assert {n: s for n, s in sizes.items() if s > 300} == {}
