"""Loaded by Schemathesis (SCHEMATHESIS_HOOKS) in tests/api/test_openapi_contract.py.

Works around one Schemathesis 4.32 defect, and only that: a link it infers from a list
(`$response.body#/items/*/assignee_id`) picks among all the matches, `null` included, and
puts "None" in a path (`DELETE /api/v1/bugs/None`), then reports the 422 as a schema-valid
request refused. A single match that is `null` is skipped (specs/openapi/stateful, "Skip if
extraction failed or returned unusable value"); this makes a list's `null`s skipped the same
way. `null` is what the schema promises there (an unassigned bug, a notification whose bug was
deleted), so nothing of bugstream's is hidden.
"""

from __future__ import annotations

from typing import Any

from schemathesis.specs.openapi import expressions

# Not exported: the module's own global, which `evaluate_wildcard` looks up when called.
_resolve_pointer_all = expressions.resolve_pointer_all  # type: ignore[attr-defined]


def _matches_without_nulls(document: Any, pointer: str) -> Any:
    matches = _resolve_pointer_all(document, pointer)
    if isinstance(matches, list):
        return [match for match in matches if match is not None]
    return matches


# Fail loudly if a new Schemathesis moves what this patches: the workaround must be revisited.
assert callable(_resolve_pointer_all), "schemathesis moved resolve_pointer_all"
expressions.resolve_pointer_all = _matches_without_nulls  # type: ignore[attr-defined]
