"""docs/grafana/twinsite.json, the Grafana dashboard of the agents' Prometheus metrics: every metric it queries is
one the agents export, with the labels it uses, in the lab agents' own textfiles (read with Prometheus's
parser), and it shows what an operator asks first (lag, backlog, rewind window, test freshness, switchovers)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.cli import REPO
from harness.scenarios import ensure_configured
from tests.views import parse
from twinsite.agent.metrics import METRICS
from twinsite.lab.topology import Lab

DASHBOARD = json.loads((REPO / "docs" / "grafana" / "twinsite.json").read_text())
#: labels Prometheus adds to every scraped sample
TARGET_LABELS = {"instance", "job"}
#: metrics that exist once a host has run an assured-recovery test (the lab's agents may not have yet)
AFTER_A_TEST = {"twinsite_recovery_test_passed", "twinsite_recovery_test_timestamp_seconds",
                "twinsite_recovery_test_data_age_seconds"}  # fmt: skip


def targets() -> list[dict[str, Any]]:
    return [t for p in DASHBOARD["panels"] for t in p["targets"]]


def queried() -> set[str]:
    return {m for t in targets() for m in re.findall(r"\btwinsite_[a-z_]+", t["expr"])}


def labels_used(target: dict[str, Any]) -> set[str]:
    expr = target["expr"]
    used = set(re.findall(r"([a-z_]+)\s*=~?\s*\"", expr))
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        used |= {g.strip() for g in group.split(",") if g.strip()}
    return used | set(re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", target.get("legendFormat", "")))


def test_the_dashboard_is_importable_and_queries_only_what_the_agents_export() -> None:
    assert DASHBOARD["__inputs"][0]["name"] == "DS_PROMETHEUS"
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for p in DASHBOARD["panels"]:
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}" and p["targets"], p["title"]
        assert p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p["title"]
        assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in p["targets"]), p["title"]
    assert queried() <= set(METRICS), sorted(queried() - set(METRICS))
    for what in ("lag_seconds", "backlog_bytes", "rewind_window_seconds", "recovery_test_timestamp_seconds",
                 "switchovers_total"):  # fmt: skip
        assert f"twinsite_{what}" in queried(), what
    assert all("$scenario" in t["expr"] or "scenario" not in labels_used(t) for t in targets())


@pytest.mark.lab
def test_every_query_finds_its_metric_and_labels_in_the_lab_agents_exports(lab: Lab) -> None:
    ensure_configured(lab)
    exported: dict[str, set[str]] = {}
    for host in ("prod1", "dr1", "dr2"):
        textfile = Path(lab.host(host).private_dir("/var/lib/twinsite")) / "metrics" / "twinsite.prom"
        for name, labels in parse(textfile.read_text()):
            exported.setdefault(name, set()).update(k for k, _ in labels)
    missing = sorted(queried() - set(exported) - AFTER_A_TEST)
    assert missing == [], f"the dashboard queries metrics no lab agent exports: {missing}"
    for t in targets():
        names = [m for m in re.findall(r"\btwinsite_[a-z_]+", t["expr"]) if m in exported]
        have = set().union(*(exported[m] for m in names)) | TARGET_LABELS if names else TARGET_LABELS
        assert labels_used(t) <= have, (t["expr"], sorted(labels_used(t) - have))
