"""The examples of docs/extending.md ("Test helpers"), run as written: `bugstream.testing` is
public API, and its documentation must stay true."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).parents[1] / "docs" / "extending.md"


def _examples() -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Test helpers") :]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "docs/extending.md's test helper examples changed: update this test"
    namespace: dict[str, Any] = {}
    exec("import pytest\n" + "\n".join(blocks), namespace)
    return namespace


async def test_the_live_server_example_works() -> None:
    await _examples()["test_a_new_project_reaches_the_admins_stream"]()


async def test_the_scripted_server_example_works() -> None:
    await _examples()["test_my_app_stops_on_a_revoked_token"]()
