"""Alerts and dashboards: promtool checks and unit tests, PromQL that parses, and only metric
names that PoC Dojo's code (prometheus_client) or Ray actually export."""

from __future__ import annotations

import functools
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import prometheus_client
import promql_parser
import pytest
import ray
import yaml

from cluster.config import topology
from cluster.tests.support import CLUSTER, tool

OBS = CLUSTER / "observability"
#: Series Prometheus itself makes for every scrape target.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((OBS / "alerts.yaml").read_text())
    assert doc["kind"] == "PrometheusRule"
    return [r for g in doc["spec"]["groups"] for r in g["rules"] if "alert" in r]


def dashboard_exprs() -> dict[str, list[str]]:
    exprs: dict[str, list[str]] = {}
    for path in sorted((OBS / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        exprs[path.name] = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
        exprs[path.name] += [
            v["query"]["query"] for v in board["templating"]["list"] if v["type"] == "query"
        ]
    return exprs


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's variables with values so the expression is plain PromQL."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    expr = re.sub(r"label_values\((\w+), \w+\)", r"\1", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("rules")
    doc = yaml.safe_load((OBS / "alerts.yaml").read_text())
    (work / "rules.yaml").write_text(yaml.safe_dump(doc["spec"]))
    (work / "alerts.test.yaml").write_text((OBS / "alerts.test.yaml").read_text())
    return work


def test_promtool_check_rules(rules_dir: Path) -> None:
    result = run(str(tool("promtool")), "check", "rules", "rules.yaml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules(rules_dir: Path) -> None:
    result = run(str(tool("promtool")), "test", "rules", "alerts.test.yaml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_fails_when_an_expectation_is_wrong(rules_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text((rules_dir / "rules.yaml").read_text())
    tests = (
        (rules_dir / "alerts.test.yaml")
        .read_text()
        .replace("Dojo edits wait 45 s", "Dojo edits wait 46 s")
    )
    (tmp_path / "alerts.test.yaml").write_text(tests)
    result = run(str(tool("promtool")), "test", "rules", "alerts.test.yaml", cwd=tmp_path)
    assert result.returncode != 0


def test_every_alert_has_a_firing_and_a_quiet_rule_test() -> None:
    tests = yaml.safe_load((OBS / "alerts.test.yaml").read_text())["tests"]
    cases = [c for t in tests for c in t["alert_rule_test"]]
    for name in {r["alert"] for r in alert_rules()}:
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in mine), f"{name}: no firing case"
        assert any(not c["exp_alerts"] for c in mine), f"{name}: no quiet case"


def test_the_required_alerts_exist() -> None:
    names = {r["alert"] for r in alert_rules()}
    assert names >= {
        "ServeHigh5xxRatio",
        "ServeP99LatencyOverGoal",
        "ServeReplicasUnhealthy",
        "RayGcsDown",
        "DojoUpdateLogLagging",
        "RenderQueueStale",
        "SearchIndexerLagging",
    }


def test_latency_alerts_use_the_goals_of_the_topology() -> None:
    goals = {}
    for rule in alert_rules():
        if rule["alert"] == "ServeP99LatencyOverGoal":
            app = re.search(r'application="([^"]+)"', rule["expr"]).group(1)
            threshold = float(rule["expr"].strip().rsplit(">", 1)[1])
            goals[app] = threshold / 1000
    assert goals == topology.LATENCY_GOALS_S


def test_dashboard_promql_parses() -> None:
    exprs = dashboard_exprs()
    assert set(exprs) == {"api-services.json", "dojos.json", "renders.json"}
    for name, items in exprs.items():
        assert items, name
        for expr in items:
            promql_parser.parse(grafana_to_promql(expr))  # raises on a syntax error


def test_dashboard_promql_passes_promtool(tmp_path: Path) -> None:
    # The real Prometheus parser too: each expression as a recording rule.
    rules = [
        {"record": f"dashboard:check:{i}", "expr": grafana_to_promql(e)}
        for i, e in enumerate(e for items in dashboard_exprs().values() for e in items)
    ]
    (tmp_path / "dash.yaml").write_text(yaml.safe_dump({"groups": [{"name": "d", "rules": rules}]}))
    result = run(str(tool("promtool")), "check", "rules", "dash.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            for m in node.matchers.matchers:
                if m.name == "__name__":
                    names.add(m.value)
        for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, (str, int, float)):
                walk(child)
        for arg in getattr(node, "args", None) or []:
            walk(arg)

    walk(promql_parser.parse(expr))
    return names


def pocdojo_exported_names() -> set[str]:
    """Every sample name the prometheus_client objects of pocdojo's code export."""
    import pocdojo.api.metrics
    import pocdojo.metrics

    names: set[str] = set()
    for module in (pocdojo.metrics, pocdojo.api.metrics):
        for obj in vars(module).values():
            if isinstance(obj, prometheus_client.metrics.MetricWrapperBase):
                for family in obj.describe():
                    names.add(family.name)
                    names.update(s.name for s in family.samples)
                    if family.type == "counter":
                        names.add(family.name + "_total")
                    if family.type == "histogram":
                        names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    return names


@functools.cache
def ray_exported_names() -> frozenset[str]:
    """Ray's metric names: those its Python code declares (exported with the ``ray_`` prefix
    and the usual suffixes) and those its own Grafana dashboards query."""
    root = Path(ray.__file__).parent
    declared: set[str] = set()
    pattern = re.compile(r"\b(Counter|Gauge|Histogram)\(\s*f?\"([a-z][a-z0-9_{}]+)\"")
    for path in root.rglob("*.py"):
        if "tests" in path.parts:
            continue
        text = path.read_text(errors="ignore")
        for kind, name in pattern.findall(text):
            for variant in {name, name.replace("{protocol_name}", "http")}:
                if "{" in variant:
                    continue
                base = "ray_" + variant
                declared.add(base)
                if kind == "Counter":
                    declared.add(base + "_total")
                if kind == "Histogram":
                    declared.update(base + s for s in ("_bucket", "_sum", "_count"))
    dashboards = root / "dashboard" / "modules" / "metrics" / "dashboards"
    for path in dashboards.glob("*_panels.py"):
        declared.update(re.findall(r"\bray_[a-z0-9_]+[a-z0-9]", path.read_text()))
    return frozenset(declared)


def test_every_metric_used_is_exported_by_our_code_or_ray() -> None:
    known = pocdojo_exported_names() | ray_exported_names() | PROMETHEUS_SYNTHETIC
    assert "pocdojo_http_requests_total" in known
    assert "ray_serve_num_http_requests_total" in known
    used: dict[str, str] = {}
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            used[name] = f"alert {rule['alert']}"
    for board, items in dashboard_exprs().items():
        for expr in items:
            for name in metric_names(grafana_to_promql(expr)):
                used[name] = board
    unknown = {n: where for n, where in used.items() if n not in known}
    assert unknown == {}
    assert any(n.startswith("pocdojo_") for n in used)
    assert any(n.startswith("ray_") for n in used)


def test_metric_name_check_catches_an_unknown_name() -> None:
    known = pocdojo_exported_names() | ray_exported_names()
    assert metric_names("rate(pocdojo_dojo_updates_totl[5m])") <= {"pocdojo_dojo_updates_totl"}
    assert "pocdojo_dojo_updates_totl" not in known


def test_catalog_follows_prometheus_naming() -> None:
    import pocdojo.metrics

    for name in pocdojo.metrics.__all__:
        obj = getattr(pocdojo.metrics, name)
        (family,) = obj.describe()
        assert family.name.startswith("pocdojo_"), family.name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", family.name)
        assert family.documentation, family.name
        if family.type == "histogram":
            assert family.name.endswith(("_seconds", "_ratio", "_bytes")), family.name
