"""The Grafana dashboard only queries metrics the code exports (names as Prometheus sees them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric

from openelb import metrics

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "openelb-dashboard.json"
RESERVED = {"instance", "job"}
METRIC = re.compile(r"\bopenelb_[a-z0-9_]+")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "info": ("_info",),
    "gauge": ("",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}


def _exposed_names(families: list[Metric]) -> set[str]:
    names = set()
    for family in families:
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def exported() -> set[str]:
    """Every sample name openelb can expose: the module's metrics plus the custom collectors."""
    families = list(metrics.registry.collect())
    scratch = CollectorRegistry()
    collector = metrics.register_xdp_counters(lambda: {"arp_reply": 1}, mode="xdp", to=scratch)
    families += list(collector.describe())
    return {n for n in _exposed_names(families) if n.startswith("openelb_")}


def queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
    return found


def test_the_dashboard_has_the_panels_the_design_asks_for() -> None:
    titles = " | ".join(title for title, _ in queries()).lower()
    for topic in ("failover", "announce", "vips owned", "by reason", "pool", "leader", "vrrp"):
        assert topic in titles


def test_every_query_names_a_metric_the_code_exports() -> None:
    names = exported()
    missing = []
    for title, expr in queries():
        used = METRIC.findall(expr)
        assert used, f"panel {title!r} queries no openelb metric: {expr}"
        missing += [f"{title}: {name}" for name in used if name not in names]
    assert not missing, "dashboard queries metrics nobody exports:\n" + "\n".join(missing)


def test_no_metric_has_a_label_prometheus_sets_on_every_target() -> None:
    # Prometheus adds `instance` and `job` to every series it scrapes; a metric's own label of
    # that name is renamed to exported_instance and the dashboard's "by node" breaks.
    clashing = []
    for name in dir(metrics):
        metric = getattr(metrics, name)
        if isinstance(metric, MetricWrapperBase):
            clashing += [f"{name}.{label}" for label in metric._labelnames if label in RESERVED]
    assert not clashing


def test_vrrp_panels_name_the_keepalived_instance_by_its_own_label() -> None:
    vrrp = [expr for title, expr in queries() if "openelb_vrrp_" in expr]
    legends = json.loads(DASHBOARD.read_text())
    texts = [
        target.get("legendFormat", "")
        for panel in legends["panels"]
        for target in panel.get("targets", [])
        if "openelb_vrrp_" in target["expr"]
    ]
    assert vrrp and all("vrrp_instance" in t for t in texts)
