"""deploy/prometheus and deploy/grafana fit the metrics the server really exposes.

A live server gets a little traffic (a WebSocket client, a refused token, a REST call) so its
labelled series exist; its GET /metrics must pass `promtool check metrics`, and every metric
(and label) that an alert or a dashboard panel queries must be in it. `promtool check rules`,
`promtool test rules` (deploy/prometheus/alerts.test.yml) and `promtool check config` must
pass. Needs `promtool` on PATH (`apt-get install prometheus`); without it those tests skip,
and fail in CI (BUGSTREAM_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bugstream.domain.enums import Role
from bugstream.domain.errors import ErrorCode
from bugstream.domain.protocol import CloseCode
from tests.conftest import skip_or_fail
from tests.support.factory import Factory
from tests.support.live import LiveServer, live_server

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yml"
PROMETHEUS_CONFIG = PROMETHEUS / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "bugstream-dashboard.json"
TIMEOUT = 5.0

METRIC = re.compile(r"\bbugstream_[a-z_]+")
#: `metric{label="value", ...}`: the matchers of one selector.
SELECTOR = re.compile(r"\b(bugstream_[a-z_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
#: Labels that Prometheus adds to every scraped series, and the histogram's bucket bound.
TARGET_LABELS = frozenset({"instance", "job"})
BUCKET_LABEL = "le"

#: The values a label can take, where an alert or a panel names one: a typo such as
#: reason="slow_consumers" would make an alert that can never fire.
_ERROR_CODES = frozenset(code.value for code in ErrorCode)
KNOWN_VALUES: dict[tuple[str, str], frozenset[str]] = {
    ("bugstream_ws_connects_total", "result"): _ERROR_CODES | {"accepted"},
    # gateway.revoke() closes with CloseCode.<name>.lower(); the socket going away is
    # client_closed or connection_lost (uvicorn_protocol.py).
    ("bugstream_ws_disconnects_total", "reason"): frozenset(
        {code.name.lower() for code in CloseCode} | {"client_closed", "connection_lost"}
    ),
    ("bugstream_errors_total", "code"): _ERROR_CODES,
    ("bugstream_auth_failures_total", "code"): _ERROR_CODES,
    ("bugstream_ws_dropped_total", "reason"): frozenset({"conflated", "slow_consumer"}),
}


@pytest.fixture
def backend() -> str:
    """SQLite only (overrides the conftest's both-databases parameter): the metrics do not
    depend on the database."""
    return "sqlite"


# ---- promtool ---------------------------------------------------------------------------------


def promtool_binary() -> str:
    found = shutil.which("promtool")
    if found is None:
        skip_or_fail("promtool is not installed (apt-get install prometheus)")
    return found


@pytest.fixture
def needs_promtool() -> None:
    """Skip (or fail, in CI) before starting a server when promtool is missing."""
    promtool_binary()


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool_binary(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def test_promtool_accepts_the_alerting_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_as_their_unit_tests_expect() -> None:
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_example_scrape_config() -> None:
    # Also loads alerts.yml: rule_files are relative to the configuration file.
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout, result.stdout


# ---- the files themselves -----------------------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    document: dict[str, Any] = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    groups = document["groups"]
    assert [group["name"] for group in groups] == ["bugstream"]
    rules: list[dict[str, Any]] = groups[0]["rules"]
    return rules


def dashboard() -> dict[str, Any]:
    board: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return board


def dashboard_panels() -> list[dict[str, Any]]:
    """The panels that query something (rows only group them)."""
    return [panel for panel in dashboard()["panels"] if panel.get("type") != "row"]


def queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every alert and every dashboard target."""
    for rule in alert_rules():
        yield f"alert {rule['alert']} ({rule['labels']['severity']})", rule["expr"]
    for panel in dashboard_panels():
        for target in panel["targets"]:
            yield f"panel {panel['title']!r} target {target['refId']}", target["expr"]


def test_every_alert_has_severity_annotations_and_a_firing_unit_test() -> None:
    tests: dict[str, Any] = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))
    fired = {
        case["alertname"]
        for group in tests["tests"]
        for case in group.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    rules = alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"Bugstream(?:[A-Z][a-z0-9]+)+", name), name
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        annotations = rule["annotations"]
        assert set(annotations) >= {"summary", "description", "runbook_url"}, name
        # Where to look: the instance, or the job for an alert about the whole cluster.
        where = ("{{ $labels.instance }}", "{{ $labels.job }}")
        assert any(w in annotations["description"] for w in where), name
        assert annotations["runbook_url"].startswith("https://"), name
        assert name in fired, f"{name} has no unit test in which it fires"


def test_the_dashboard_has_a_title_uid_variables_and_panels_with_queries() -> None:
    board = dashboard()
    assert board["title"] and board["uid"]
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["instance"]["type"] == "query"
    panels = dashboard_panels()
    assert len(panels) >= 10
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        title = panel.get("title")
        assert title, panel
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", title
        assert panel["targets"], f"panel {title!r} has no query"
        for target in panel["targets"]:
            assert target["expr"].strip(), title
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", title
            # Every query follows the instance picker (up included).
            assert '$instance"' in target["expr"], (title, target["expr"])


# ---- against a live server -----------------------------------------------------------------------


async def _scrape_until(live: LiveServer, needle: str) -> str:
    async with live.http() as http:
        for _ in range(int(TIMEOUT / 0.02)):
            response = await http.get("/metrics")
            assert response.status_code == 200, response.text
            if needle in response.text:
                return str(response.text)
            await asyncio.sleep(0.02)
    raise AssertionError(f"/metrics never showed {needle!r}")


@pytest.fixture
async def live_metrics(factory: Factory) -> str:
    """GET /metrics of a live server after traffic that creates the labelled series."""
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as live:
        client = await live.connect(dev)
        await client.send({"type": "ping"})
        assert (await client.next())["type"] == "pong"
        refused = await live.connect("not-a-token", welcome=False)
        assert (await refused.closed())[0] == CloseCode.INVALID_TOKEN
        async with live.http(dev) as http:
            created = await http.post(
                "/api/v1/bugs", json={"project_id": project.id, "title": "metrics"}
            )
            assert created.status_code == 201, created.text
        await client.expect_event("bug_report", "created")
        await client.close()
        # Events are dropped only for a client that stops reading; adding 0 (as the hub
        # would, with its own reasons) makes the labelled series appear honestly.
        telemetry = live.app.state.runtime.telemetry
        for reason in ("conflated", "slow_consumer"):
            telemetry.events_dropped(reason, 0)
        # The server sees the close a moment after the client.
        return await _scrape_until(live, "bugstream_ws_disconnects_total{")


def exposed_labels(text: str) -> dict[str, set[str]]:
    """Each sample name in the exposition (`x_total`, `x_bucket`, a gauge...) and the label
    names it carries. Sample names, not family names, so that `_bucket` is known only for the
    histogram and `_total` only for counters."""
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


async def test_metrics_pass_promtool_check_metrics(needs_promtool: None, live_metrics: str) -> None:
    # promtool lints the exposition (names, units, HELP, counter suffixes). prometheus_client's
    # output, `_created` samples included, gets no remark from it, so any output is a finding.
    result = await asyncio.to_thread(promtool, "check", "metrics", stdin=live_metrics)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", (
        result.stdout + result.stderr
    )


async def test_alerts_and_dashboard_query_only_exposed_metrics_and_labels(
    live_metrics: str,
) -> None:
    exposed = exposed_labels(live_metrics)
    # Sanity: the traffic above created the labelled series this test relies on.
    for name in ("bugstream_ws_connects_total", "bugstream_ws_dropped_total"):
        assert exposed.get(name), f"{name} has no series: the traffic did not create it"
    used: set[str] = set()
    problems: list[str] = []
    for where, expr in queries():
        names = set(METRIC.findall(expr))
        assert names or "up{" in expr, f"{where} queries no bugstream metric: {expr}"
        used |= names
        problems += [f"{where}: {name} is not exposed" for name in names - set(exposed)]
        known_labels = set(TARGET_LABELS).union(*(exposed.get(name, set()) for name in names))
        for name, matchers in SELECTOR.findall(expr):
            allowed = exposed.get(name, set()) | TARGET_LABELS
            for label, operator, value in MATCHER.findall(matchers):
                if label not in allowed:
                    problems.append(f"{where}: {name} has no label {label!r}")
                vocabulary = KNOWN_VALUES.get((name, label))
                if vocabulary is not None and operator in {"=", "!="} and value not in vocabulary:
                    problems.append(f"{where}: {name}{{{label}={value!r}}} never occurs")
        for grouping in GROUPING.findall(expr):
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                if label not in known_labels:
                    problems.append(f"{where}: grouping by {label!r}, a label none has")
    assert not problems, "\n".join(problems)
    # The dashboard shows every metric the server exposes (a new one needs a panel).
    families = {
        family.name
        for family in text_string_to_metric_families(live_metrics)
        if family.type != "gauge" or not family.name.endswith("_created")
    }
    shown = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}
    assert families - shown == set(), f"not on the dashboard or in an alert: {families - shown}"
