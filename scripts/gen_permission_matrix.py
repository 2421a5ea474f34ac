"""Print the permission matrix of docs/api.md, generated from `bugstream.domain.permissions`.

    uv run python scripts/gen_permission_matrix.py            # print the block
    uv run python scripts/gen_permission_matrix.py --write    # rewrite it in docs/api.md

The block is everything between the marker comments `<!-- permission-matrix:start -->` and
`<!-- permission-matrix:end -->` in docs/api.md. tests/test_docs.py fails when the block there
differs from what this script prints, so the documented matrix cannot drift from `MATRIX`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bugstream.domain.enums import Role
from bugstream.domain.permissions import MATRIX, Action, Scope

START = "<!-- permission-matrix:start -->"
END = "<!-- permission-matrix:end -->"
DEFAULT_DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"

#: What each cell says: a grant's scope, or DENIED when the role's row lacks the action.
LABELS: dict[Scope, str] = {
    Scope.ANYWHERE: "yes",
    Scope.IN_MEMBER_PROJECT: "member",
    Scope.OWN: "own",
}
DENIED = "—"

#: A short description of each action for the table; an action missing here shows none.
DESCRIPTIONS: dict[Action, str] = {
    Action.USER_LIST: "list and read other users' accounts",
    Action.USER_CREATE: "create a user",
    Action.USER_UPDATE: "update another user's account",
    Action.USER_CHANGE_ROLE: "change a user's role",
    Action.USER_CHANGE_STATUS: "activate, deactivate or suspend a user",
    Action.USER_DELETE: "delete a user",
    Action.PROJECT_CREATE: "create a project",
    Action.PROJECT_READ: "read a project and its members",
    Action.PROJECT_UPDATE: "update a project's name or description",
    Action.PROJECT_DELETE: "delete a project (with everything in it)",
    Action.MEMBER_MANAGE: "add and remove project members",
    Action.BUG_READ: "read bug reports and their comments",
    Action.BUG_CREATE: "report a bug",
    Action.BUG_UPDATE: "edit a bug's title, description, priority",
    Action.BUG_DELETE: "delete a bug report (with its comments)",
    Action.BUG_CHANGE_STATUS: "change a bug's status",
    Action.BUG_ASSIGN: "assign or unassign a bug",
    Action.COMMENT_CREATE: "comment on a bug",
    Action.COMMENT_UPDATE: "edit a comment",
    Action.COMMENT_DELETE: "delete a comment",
    Action.REMINDER_SEND: "send a bug's assignee a reminder now",
}


def cell(role: Role, action: Action) -> str:
    """The label of one cell: `yes`, `member`, `own`, or `—` (denied)."""
    scope = MATRIX[role].get(action)
    return DENIED if scope is None else LABELS[scope]


def render_table() -> str:
    """The matrix as a Markdown table: one row per action, one column per role."""
    roles = list(Role)
    lines = [
        "| action | what it allows | " + " | ".join(r.value for r in roles) + " |",
        "|---|---|" + "---|" * len(roles),
    ]
    for action in Action:
        cells = " | ".join(cell(role, action) for role in roles)
        lines.append(f"| `{action.value}` | {DESCRIPTIONS.get(action, '')} | {cells} |")
    return "\n".join(lines)


def render_block() -> str:
    """What goes between the markers (without them)."""
    return (
        "<!-- generated from bugstream.domain.permissions.MATRIX by "
        "scripts/gen_permission_matrix.py: do not edit by hand -->\n\n" + render_table()
    )


def replace_block(document: str, block: str) -> str:
    """`document` with the text between the markers replaced by `block`."""
    start = document.find(START)
    end = document.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"the document lacks the markers {START} ... {END}")
    head = document[: start + len(START)]
    return f"{head}\n{block}\n{document[end:]}"


def extract_block(document: str) -> str:
    """The text between the markers, without surrounding blank lines."""
    start = document.find(START)
    end = document.find(END)
    if start < 0 or end < 0 or end < start:
        raise ValueError(f"the document lacks the markers {START} ... {END}")
    return document[start + len(START) : end].strip("\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", action="store_true", help="rewrite the block in the document")
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC, help="default: docs/api.md")
    args = parser.parse_args(argv)
    block = render_block()
    if not args.write:
        print(block)
        return 0
    doc: Path = args.doc
    try:
        text = doc.read_text(encoding="utf-8")
        updated = replace_block(text, block)
    except (OSError, ValueError) as exc:
        print(f"error: {doc}: {exc}", file=sys.stderr)
        return 1
    if updated != text:
        doc.write_text(updated, encoding="utf-8")
        print(f"rewrote the permission matrix in {doc}")
    else:
        print(f"{doc} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
