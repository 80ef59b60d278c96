"""deploy/monitoring: the Grafana dashboard imports (a datasource input, unique panels) and every query and rule
names only metrics marginguard exposes; the Prometheus rules are well formed (and pass `promtool check rules`
where Debian's prometheus package provides it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon.app.http import Metrics

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
METRIC = re.compile(r"\b(marginguard_[a-z_]+)\b")
PROMETHEUS_OWN = {"up"}


def exposed() -> set[str]:
    """Every series name the daemon's registry can expose (a counter as `<name>_total`)."""
    names = set()
    for family in Metrics().registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((MONITORING / "marginguard-dashboard.json").read_text())
    return loaded


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((MONITORING / "marginguard-rules.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_dashboard_imports_with_a_prometheus_datasource_input_and_unique_panels() -> None:
    board = dashboard()
    [source] = board["__inputs"]
    assert source["type"] == "datasource" and source["pluginId"] == "prometheus"
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels) and len({p["title"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_every_query_and_rule_names_a_metric_the_daemon_exposes() -> None:
    known = exposed()
    queries = [t["expr"] for p in dashboard()["panels"] for t in p["targets"]]
    queries += [v["query"] for v in dashboard()["templating"]["list"]]
    queries += [rule["expr"] for rule in rules()]
    for query in queries:
        named = set(METRIC.findall(query))
        assert named or "up{" in query, query
        assert named <= known, (query, named - known)


def test_every_rule_has_a_severity_and_a_summary() -> None:
    found = rules()
    assert {rule["alert"] for rule in found} >= {
        "MarginguardDown",
        "MarginguardStreamStale",
        "MarginguardDeliveryFailing",
        "MarginguardJournalNotWritable",
    }
    for rule in found:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian: prometheus)")
def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run(
        ["promtool", "check", "rules", str(MONITORING / "marginguard-rules.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
