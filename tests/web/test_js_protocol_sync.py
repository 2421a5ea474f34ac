"""bugstream.js and the server agree: its close codes, which of them end reconnecting, and its
default backoff are the ones of `bugstream.domain.protocol` and the Python SDK (Node imports
the module as the browser does)."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.resources import files
from typing import Any

import pytest

from bugstream.client import Backoff
from bugstream.domain.catalog import CATALOG
from bugstream.domain.protocol import CloseCode, is_terminal, needs_new_token
from tests.conftest import skip_or_fail

#: Codes only a client sees (the browser reports them; the server never sends them).
CLIENT_ONLY = {"ABNORMAL": 1006}
PROBE = list(range(1000, 1016)) + list(range(3990, 4210))


@pytest.fixture(scope="module")
def js() -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        skip_or_fail("the JS protocol check needs Node.js (apt-get install nodejs)")
    module = files("bugstream.web").joinpath("bugstream.js")
    script = f"""
const m = await import({json.dumps(str(module))});
const probe = {json.dumps(PROBE)};
const b = new m.Backoff();
console.log(JSON.stringify({{
  codes: m.CloseCode,
  terminal: probe.filter((c) => m.isTerminal(c)),
  newToken: probe.filter((c) => m.needsNewToken(c)),
  backoff: {{initial: b.initial, factor: b.factor, maxAttempts: b.maxAttempts,
             maxDelay: b.maxDelay, jitter: b.jitter}},
  scopes: m.EVENT_SCOPES,
}}));
"""
    out = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_the_close_codes_are_the_servers(js: dict[str, Any]) -> None:
    assert js["codes"] == {**{c.name: c.value for c in CloseCode}, **CLIENT_ONLY}


def test_the_same_codes_end_reconnecting(js: dict[str, Any]) -> None:
    assert js["terminal"] == [c for c in PROBE if is_terminal(c)]
    assert js["newToken"] == [c for c in PROBE if needs_new_token(c)]


def test_the_default_backoff_is_the_sdks(js: dict[str, Any]) -> None:
    python = Backoff()
    assert js["backoff"] == {
        "initial": python.initial * 1000,
        "factor": python.factor,
        "maxAttempts": python.max_attempts,
        "maxDelay": python.max_delay * 1000,
        "jitter": python.jitter,
    }


def test_the_event_scopes_are_the_catalogs(js: dict[str, Any]) -> None:
    assert js["scopes"] == {
        t.value: {"scope": m.scope.value, "bugReportField": m.bug_report_field}
        for t, m in CATALOG.items()
    }
