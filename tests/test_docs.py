"""The documentation says what the code does: drift between them fails here.

- docs/api.md's permission matrix is what scripts/gen_permission_matrix.py makes of `MATRIX`;
- docs/errors.md documents every error code, and every WebSocket close code with the
  reconnect rule the SDK obeys;
- README.md names every setting;
- docs/api.md documents every REST endpoint (and no endpoint that does not exist).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from enum import StrEnum
from pathlib import Path

import pytest

from bugstream.app import create_app
from bugstream.domain.enums import Role
from bugstream.domain.errors import HTTP_STATUS, ErrorCode
from bugstream.domain.permissions import MATRIX, Action, Scope
from bugstream.domain.protocol import CloseCode, is_terminal, needs_new_token
from bugstream.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
API_DOC = ROOT / "docs" / "api.md"
ERRORS_DOC = ROOT / "docs" / "errors.md"
README = ROOT / "README.md"
GENERATOR = ROOT / "scripts" / "gen_permission_matrix.py"

START = "<!-- permission-matrix:start -->"
END = "<!-- permission-matrix:end -->"
REGENERATE = "run `uv run python scripts/gen_permission_matrix.py --write`"
CELL = {Scope.ANYWHERE: "yes", Scope.IN_MEMBER_PROJECT: "member", Scope.OWN: "own"}
DENIED = "—"


def run_generator(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def matrix_block(document: str) -> str:
    assert document.count(START) == 1 and document.count(END) == 1, (
        f"docs/api.md must hold the markers {START} and {END} once each"
    )
    return document.split(START, 1)[1].split(END, 1)[0].strip("\n")


def table_cells(block: str) -> dict[str, dict[str, str]]:
    """action -> role -> cell, from the Markdown table in `block`."""
    rows = [line for line in block.splitlines() if line.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    cells: dict[str, dict[str, str]] = {}
    for row in rows[2:]:
        values = [c.strip() for c in row.strip("|").split("|")]
        action = values[0].strip("`")
        cells[action] = {header[i]: values[i] for i in range(2, len(header))}
    return cells


# ---- the permission matrix ----------------------------------------------------------------


def test_api_doc_matrix_is_the_generated_one() -> None:
    documented = matrix_block(API_DOC.read_text(encoding="utf-8"))
    generated = run_generator().strip("\n")
    assert documented == generated, (
        f"the permission matrix in docs/api.md differs from MATRIX: {REGENERATE}"
    )


def test_documented_matrix_says_what_matrix_grants() -> None:
    cells = table_cells(matrix_block(API_DOC.read_text(encoding="utf-8")))
    assert set(cells) == {a.value for a in Action}, REGENERATE
    for action in Action:
        for role in Role:
            scope = MATRIX[role].get(action)
            expected = DENIED if scope is None else CELL[scope]
            assert cells[action.value][role.value] == expected, (
                f"{role.value} x {action.value}: documented {cells[action.value][role.value]!r}, "
                f"MATRIX says {expected!r}; {REGENERATE}"
            )


def test_generator_write_restores_a_stale_block(tmp_path: Path) -> None:
    doc = tmp_path / "api.md"
    shutil.copy(API_DOC, doc)
    original = doc.read_text(encoding="utf-8")
    stale = original.replace(matrix_block(original), "| stale | table |")
    doc.write_text(stale, encoding="utf-8")

    run_generator("--write", "--doc", str(doc))

    rewritten = doc.read_text(encoding="utf-8")
    assert matrix_block(rewritten) == run_generator().strip("\n")
    # Only the block changes: the text around the markers is kept as it was.
    assert rewritten.split(START)[0] == original.split(START)[0]
    assert rewritten.split(END)[1] == original.split(END)[1]


# ---- error codes, settings, endpoints -----------------------------------------------------


def test_errors_doc_documents_every_code_with_its_status() -> None:
    text = ERRORS_DOC.read_text(encoding="utf-8")
    rows = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^\| `([a-z_]+)` \| (\d{3}) \|", text, re.M)
    }
    missing = [code.value for code in ErrorCode if code.value not in rows]
    assert not missing, f"docs/errors.md lacks a row for: {missing}"
    wrong = {
        c.value: (rows[c.value], HTTP_STATUS[c])
        for c in ErrorCode
        if rows[c.value] != HTTP_STATUS[c]
    }
    assert not wrong, f"docs/errors.md gives the wrong HTTP status (documented, actual): {wrong}"
    unknown = set(rows) - {code.value for code in ErrorCode}
    assert not unknown, f"docs/errors.md documents codes that do not exist: {sorted(unknown)}"


def test_errors_doc_documents_every_close_code_and_whether_to_reconnect() -> None:
    text = ERRORS_DOC.read_text(encoding="utf-8")
    section = text.split("## WebSocket close codes", 1)[1]
    rows = {
        int(m.group(1)): (m.group(2), m.group(3).strip())
        for m in re.finditer(r"^\| (\d{4}) \| `(\w+)` \| ([^|]+) \|", section, re.M)
    }
    missing = [f"{c.value} {c.name}" for c in CloseCode if c.value not in rows]
    assert not missing, f"docs/errors.md lacks close codes: {missing}"
    for code in CloseCode:
        name, reconnect = rows[code.value]
        assert name == code.name, f"close code {code.value} is {code.name}, documented {name}"
        if needs_new_token(code):
            expected = "no; with a new token only"
        elif is_terminal(code):
            expected = "no"
        else:
            expected = "yes, with backoff"
        assert reconnect == expected, (
            f"close code {code.value}: documented {reconnect!r}, the SDK's rule is {expected!r}"
        )
    unknown = set(rows) - {c.value for c in CloseCode}
    assert not unknown, f"docs/errors.md documents close codes that do not exist: {unknown}"


def test_readme_names_every_setting() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [
        f"BUGSTREAM_{name.upper()}"
        for name in Settings.model_fields
        if f"BUGSTREAM_{name.upper()}" not in text
    ]
    assert not missing, f"README.md's configuration table lacks: {missing}"


def test_deployment_guide_documents_every_setting_with_its_default() -> None:
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    # `| `BUGSTREAM_X` | `default` | ...`; `unset` (no default) or `empty` (an empty string).
    rows = {
        match.group(1): ("" if match.group(3) else match.group(2))
        for match in re.finditer(
            r"^\| `(BUGSTREAM_[A-Z_]+)` \| (?:`([^`]+)`|unset|(empty)) \|", text, re.MULTILINE
        )
    }
    missing = [
        f"BUGSTREAM_{name.upper()}"
        for name in Settings.model_fields
        if f"BUGSTREAM_{name.upper()}" not in rows
    ]
    assert not missing, f"docs/deployment.md's configuration reference lacks: {missing}"
    defaults = Settings.model_fields
    for name, field in defaults.items():
        documented = rows[f"BUGSTREAM_{name.upper()}"]
        default = field.get_default(call_default_factory=True)
        if default is None:
            assert documented is None, f"BUGSTREAM_{name.upper()} has no default: say unset"
        elif isinstance(default, (int, float, str, bool)) and not isinstance(default, StrEnum):
            expected = str(default).lower() if isinstance(default, bool) else str(default)
            if isinstance(default, float) and default.is_integer():
                expected = str(int(default))
            assert documented == expected, f"BUGSTREAM_{name.upper()}: {documented} != {expected}"


@pytest.fixture
def openapi_routes(tmp_path: Path) -> set[tuple[str, str]]:
    settings = Settings(data_dir=tmp_path, jwt_secret="docs-test-secret-" + "x" * 32)
    schema = create_app(settings).openapi()
    return {
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method in operations
    }


def test_api_doc_documents_every_endpoint(openapi_routes: set[tuple[str, str]]) -> None:
    text = API_DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"\b(GET|POST|PUT|PATCH|DELETE) (/api/v1/[^\s`|,)]+)", text))
    assert openapi_routes, "the app's OpenAPI schema lists no /api/v1 routes"
    undocumented = sorted(openapi_routes - documented)
    assert not undocumented, f"docs/api.md does not document: {undocumented}"
    phantom = sorted(documented - openapi_routes)
    assert not phantom, f"docs/api.md documents endpoints the app does not have: {phantom}"
