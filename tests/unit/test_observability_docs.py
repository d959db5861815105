"""docs/observability.md and docs/observability/: the example runs as written, the metric table
is the library's, and the Grafana dashboard and Prometheus alert rules are valid and name only
metrics that exist."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from cqrs_ddd_persistence_sqlalchemy.observability import METRICS

DOCS = Path(__file__).parents[2] / "docs"
DOC = DOCS / "observability.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
METRIC_NAME = re.compile(r"\bcqrs_[a-z_]+\b")


def _exported_names() -> set[str]:
    """Every series name the Prometheus exporter makes of the documented metrics."""
    names = set()
    for spec in METRICS:
        names.add(spec.prometheus_name)
        if spec.instrument == "histogram":
            names.update(spec.prometheus_name + s for s in ("_bucket", "_sum", "_count"))
    return names


def test_the_example_runs_as_written(tmp_path: Path) -> None:
    script = tmp_path / "observability_example.py"
    script.write_text(BLOCKS[0])
    done = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [" ".join(line.split()) for line in done.stdout.splitlines()]
    assert "send OrderPlaced request's trace" in lines
    assert "settle outbox_messages own trace" in lines
    assert "commit request's trace" in lines
    assert lines[-1].startswith("broker header traceparent: 00-")


def test_every_other_block_compiles() -> None:
    assert len(BLOCKS) >= 3
    for block in BLOCKS[1:]:
        compile(block, str(DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_the_metric_table_is_the_librarys() -> None:
    rows = re.findall(
        r"^\| `(cqrs\.[a-z_.]+)` \| `([a-z_]+)` \| (\w+) \| `([^`]+)` \|", DOC.read_text(), re.M
    )
    documented = [(name, prom, kind, unit) for name, prom, kind, unit in rows]
    assert documented == [(m.name, m.prometheus_name, m.instrument, m.unit) for m in METRICS]


def test_the_grafana_dashboard_is_valid_and_names_existing_metrics() -> None:
    dashboard = json.loads((DOCS / "observability" / "grafana-dashboard.json").read_text())
    assert dashboard["title"] and dashboard["uid"]
    panels = dashboard["panels"]
    assert len(panels) >= 10
    assert len({p["id"] for p in panels}) == len(panels)
    named: set[str] = set()
    for panel in panels:
        assert panel["type"] == "timeseries" and panel["targets"]
        for target in panel["targets"]:
            assert target["refId"] and target["expr"].count("(") == target["expr"].count(")")
            named.update(METRIC_NAME.findall(target["expr"]))
    assert named <= _exported_names(), named - _exported_names()
    # Every documented metric is on the dashboard.
    shown = {re.sub(r"_(bucket|sum|count)$", "", n) for n in named}
    assert {m.prometheus_name for m in METRICS} <= shown


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((DOCS / "observability" / "prometheus-alerts.yml").read_text())
    assert set(document) == {"groups"}
    rules: list[dict[str, Any]] = []
    for group in document["groups"]:
        assert set(group) == {"name", "rules"} and group["rules"]
        rules.extend(group["rules"])
    return rules


def test_the_alert_rules_are_valid_and_name_existing_metrics() -> None:
    rules = _rules()
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert rule["expr"].count("(") == rule["expr"].count(")")
        assert re.fullmatch(r"\d+[smhd]", rule["for"])
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        names = set(METRIC_NAME.findall(rule["expr"]))
        assert names and names <= _exported_names(), names - _exported_names()
    alerts = {r["alert"] for r in rules}
    assert {
        "CqrsEventStoreHorizonStalled",
        "CqrsProjectionLagging",
        "CqrsOutboxOldestMessageAge",
        "CqrsOutboxDeadLetters",
    } <= alerts
