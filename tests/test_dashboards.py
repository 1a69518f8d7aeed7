"""Grafana dashboards and provisioning: generated output committed, lint rules that keep
them usable on any Grafana (datasource variable, units, ids), metrics from the contract."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO

DASH = REPO / "dashboards"
GRAFANA = DASH / "grafana"
DS = {"type": "prometheus", "uid": "${datasource}"}
UNIT_PANELS = {"stat", "timeseries", "gauge", "bargauge"}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "group_left",
    "group_right", "or", "and", "unless", "rate", "increase", "time", "vector", "sort",
    "sort_desc", "histogram_quantile", "clamp_min", "ceil", "last_over_time", "label_values",
    "bool", "offset", "absent", "end", "start",
}
BUILTIN_METRICS = {"up", "scrape_duration_seconds"}


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("kiemke_dashboards_generate",
                                                  DASH / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text("utf-8")) for p in sorted(GRAFANA.glob("*.json"))}


def contract_metrics() -> set[str]:
    """Metric names in the "Metrics" table of docs/design.md (the collector's contract)."""
    text = (REPO / "docs" / "design.md").read_text("utf-8")
    return set(re.findall(r"^\| `(kiemke_\w+)` \|", text, re.MULTILINE))


def recorded_metrics() -> set[str]:
    names = set()
    for path in (DASH / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text("utf-8"))["groups"]:
            names |= {r["record"] for r in group["rules"] if "record" in r}
    return names


def metric_names(expr: str) -> set[str]:
    """Identifiers in a PromQL expression that name series (not functions, labels, ...)."""
    without_strings = re.sub(r'"[^"]*"|`[^`]*`|\{[^}]*\}|\[[^\]]*\]', " ", expr)
    without_grouping = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
                              " ", without_strings)
    names = set(re.findall(r"[a-zA-Z_:][\w:]*", without_grouping)) - PROMQL_WORDS
    return {n for n in names if not re.fullmatch(r"e\d*|\d.*", n)}


def all_panels() -> list[tuple[str, dict[str, Any]]]:
    return [(name, panel) for name, dash in dashboards().items() for panel in dash["panels"]]


def test_committed_dashboards_match_the_generator(tmp_path: Path) -> None:
    generator = load_generator()
    written = generator.write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(dashboards())
    for path in written:
        committed = (GRAFANA / path.name).read_text("utf-8")
        assert path.read_text("utf-8") == committed, (
            f"dashboards/grafana/{path.name} differs from dashboards/generate.py: "
            f"run .venv/bin/python dashboards/generate.py and commit the result")


def test_five_dashboards_with_current_schema_and_unique_uids() -> None:
    dash = dashboards()
    assert set(dash) == {"overview.json", "units.json", "rule.json", "hardware.json",
                         "health.json"}
    uids = [d["uid"] for d in dash.values()]
    assert len(set(uids)) == len(uids)
    for name, d in dash.items():
        assert d["schemaVersion"] >= 39, name
        assert d["title"].startswith("kiemke — "), name
        assert "kiemke" in d["tags"]


def test_variables_datasource_and_unit_tree() -> None:
    for name, dash in dashboards().items():
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        ds = variables["datasource"]
        assert (ds["type"], ds["query"]) == ("datasource", "prometheus"), name
        unit = variables["unit"]
        assert unit["type"] == "query" and unit["datasource"] == DS, name
        # value: the unit_id (a rename keeps the selection); text: the path
        assert unit["query"]["query"] == \
            "query_result(max by (unit_id, path) (kiemke_unit_info))"
        assert unit["multi"] is False, "panels compare unit_id=\"$unit\" exactly"
        unit_path = variables["unit_path"]
        assert unit_path["hide"] == 2 and '{unit_id="$unit"}' in unit_path["query"]["query"]
        used = {m for p in dash["panels"] for t in p["targets"]
                for m in re.findall(r"\$\{?(\w+)", t["expr"])}
        assert used - {"__rate_interval", "__range"} <= set(variables), name
        if "rule" in used:
            assert variables["rule"]["query"]["query"] == "label_values(kiemke_rule_info, rule)"


def grafana_query_result_line(labels: dict[str, str]) -> str:
    """A series as Grafana's query_result() variable query shows it (labels in the order
    Prometheus returns them, joined by commas), value 1 at some time in milliseconds."""
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{{{inner}}} 1 1764633600000"


def js_regex(variable: dict[str, Any]) -> re.Pattern[str]:
    """A variable's /regex/ as Python compiles it ((?<name>) is (?P<name>) here)."""
    body = variable["regex"]
    assert body.startswith("/") and body.endswith("/"), body
    return re.compile(body[1:-1].replace("(?<", "(?P<"))


@pytest.mark.parametrize("path", ["Liên đoàn Lao động tỉnh Bắc Giang",
                                  "Tỉnh Bắc Giang / LĐLĐ huyện Yên Dũng, \"Văn phòng\""])
def test_unit_variable_shows_the_path_and_keeps_the_id(path: str) -> None:
    variables = {v["name"]: v for v in dashboards()["overview.json"]["templating"]["list"]}
    match = js_regex(variables["unit"]).search(
        grafana_query_result_line({"unit_id": "12", "path": path}))
    assert match and match.group("text") == path and match.group("value") == "12"
    match = js_regex(variables["unit_path"]).search(grafana_query_result_line({"path": path}))
    assert match and match.group(1) == path


def test_units_dashboard_compares_child_units_per_rule() -> None:
    panels = dashboards()["units.json"]["panels"]
    repeated = [p for p in panels if p.get("repeat")]
    assert [p["repeat"] for p in repeated] == ["rule"]
    assert 'kiemke_unit_info{parent_id="$unit"}' in repeated[0]["targets"][0]["expr"]
    assert repeated[0]["targets"][0]["expr"].startswith("sort(")  # worst first
    ranking = panels[0]
    assert ranking["options"]["sortBy"] == [{"displayName": "Tuân thủ TB / Mean compliance",
                                             "desc": False}]


def test_panels_have_unique_ids_datasource_variable_and_queries() -> None:
    for name, dash in dashboards().items():
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in dash["panels"]:
            where = f"{name} panel {panel['id']} {panel['title']!r}"
            assert panel["datasource"] == DS, where
            assert panel["targets"], where
            for target in panel["targets"]:
                assert target["datasource"] == DS, where
                assert target["expr"].strip(), where
            assert panel["description"], where
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, where


def test_no_hard_coded_datasource_uid_anywhere() -> None:
    for name, dash in dashboards().items():
        text = json.dumps(dash)
        uids = set(re.findall(r'"uid": "([^"]*)"', text)) - {dash["uid"]}
        assert uids <= {"${datasource}", "-- Grafana --"}, (name, uids)


def test_units_set_on_every_stat_timeseries_gauge_panel() -> None:
    checked = 0
    for name, panel in all_panels():
        if panel["type"] in UNIT_PANELS:
            unit = panel["fieldConfig"]["defaults"].get("unit")
            assert unit, f"{name}: panel {panel['title']!r} has no unit"
            checked += 1
    assert checked >= 30


def test_percent_panels_are_bounded_0_to_1() -> None:
    for name, panel in all_panels():
        defaults = panel["fieldConfig"]["defaults"]
        if defaults.get("unit") == "percentunit":
            assert (defaults.get("min"), defaults.get("max")) == (0, 1), (name, panel["title"])


def test_every_metric_is_in_the_contract_or_recorded() -> None:
    known = contract_metrics() | recorded_metrics() | BUILTIN_METRICS
    assert "kiemke_rule_compliance_ratio" in known and "kiemke:rule_gap" in known
    used: set[str] = set()
    for name, panel in all_panels():
        for target in panel["targets"]:
            names = {re.sub(r"_(bucket|sum|count)$", "", n) for n in
                     metric_names(target["expr"])}
            unknown = names - known
            assert not unknown, f"{name} {panel['title']!r}: not in docs/design.md: {unknown}"
            used |= names
    for path in (DASH / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text("utf-8"))["groups"]:
            for rule in group["rules"]:
                unknown = metric_names(rule["expr"]) - known
                assert not unknown, f"{path.name} {rule}: not in docs/design.md: {unknown}"
    # every family of the contract has a panel
    assert contract_metrics() - used == set()


@pytest.mark.parametrize("expr,names", [
    ('sum by (unit_id) (kiemke_machines{status="active"})', {"kiemke_machines"}),
    ('x * on (unit_id) group_left (name) max by (unit_id, name) (kiemke_unit_info @ end())',
     {"x", "kiemke_unit_info"}),
    ("histogram_quantile(0.5, sum by (le) (rate(kiemke_report_ingest_seconds_bucket[1m])))",
     {"kiemke_report_ingest_seconds_bucket"}),
    ("ceil(x * on (rule) group_left max by (rule) (y) - 1e-9)", {"x", "y"}),
])
def test_metric_name_extraction(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_grafana_provisioning_files() -> None:
    prov = GRAFANA / "provisioning"
    sources = yaml.safe_load((prov / "datasources" / "kiemke.yml").read_text("utf-8"))
    [source] = sources["datasources"]
    assert (source["name"], source["type"], source["uid"]) == (
        "Prometheus", "prometheus", "kiemke-prometheus")
    assert source["url"].startswith("http://")
    providers = yaml.safe_load((prov / "dashboards" / "kiemke.yml").read_text("utf-8"))
    [provider] = providers["providers"]
    assert provider["type"] == "file" and provider["folder"] == "kiemke"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/kiemke"
    assert "/var/lib/grafana/dashboards/kiemke" in (REPO / "docs" / "operations.md").read_text(
        "utf-8")


def test_docs_describe_every_panel() -> None:
    doc = (REPO / "docs" / "dashboards.md").read_text("utf-8")
    for name, dash in dashboards().items():
        assert dash["title"] in doc, name
        for panel in dash["panels"]:
            assert panel["title"] in doc, f"docs/dashboards.md lacks {panel['title']!r}"
