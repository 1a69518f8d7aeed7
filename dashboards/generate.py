#!/usr/bin/env python3
"""Generate kiemke's Grafana dashboards (dashboards/grafana/*.json) from one description.

Why generated: five dashboards share variables, datasource wiring, thresholds and units;
one Python description keeps them consistent and lets the tests run every panel query
against a real Prometheus (tests/test_prometheus_e2e.py imports `DASHBOARDS`).

    python dashboards/generate.py            # rewrite dashboards/grafana/*.json
    python dashboards/generate.py --out DIR  # write elsewhere (the tests compare)

Metric names and labels follow the "Metrics" contract in docs/design.md and
docs/metrics.md. Series name units by unit_id; the panels show names and paths through
`group_left` joins on kiemke_unit_info, so a renamed or moved unit keeps its series.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "grafana"
SCHEMA_VERSION = 39
DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}

# kiemke_unit_info, one copy per unit whatever the number of collector instances.
def unit_info(labels: str, selector: str = "", at_end: bool = False) -> str:
    series = f"kiemke_unit_info{{{selector}}}" + (" @ end()" if at_end else "")
    return f"max by (unit_id, {labels}) ({series})"


# The selected unit and every unit below it (by the path prefix of $unit_path, the
# selected unit's path), for per-machine series that carry their own unit's id only.
# Backtick strings: PromQL does not unescape them, so the backslashes of Grafana's regex
# format reach the regex engine unchanged.
SUBTREE_INFO = unit_info("path", "path=~`${unit_path:regex}( / .*)?`")
# The children of the selected unit, with their names.
CHILD_INFO = unit_info("name", 'parent_id="$unit"')


def in_subtree(expr: str) -> str:
    """Per-machine series of the selected subtree, with their unit's path."""
    return f"{expr} * on (unit_id) group_left (path) {SUBTREE_INFO}"


def of_children(expr: str) -> str:
    """Per-unit series of the selected unit's children, with their names."""
    return f"{expr} * on (unit_id) group_left (name) {CHILD_INFO}"


PERCENT_THRESHOLDS = {"mode": "absolute", "steps": [
    {"color": "red", "value": None}, {"color": "orange", "value": 0.8},
    {"color": "green", "value": 0.95}]}
COUNT_BAD_THRESHOLDS = {"mode": "absolute", "steps": [
    {"color": "green", "value": None}, {"color": "red", "value": 1}]}
NEUTRAL_THRESHOLDS = {"mode": "absolute", "steps": [{"color": "blue", "value": None}]}


@dataclass
class Target:
    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


@dataclass
class Panel:
    title: str
    description: str
    kind: str  # stat, timeseries, table, bargauge, piechart, barchart, gauge
    targets: list[Target]
    w: int = 6
    h: int = 6
    unit: str = "short"
    thresholds: dict[str, Any] = field(default_factory=lambda: NEUTRAL_THRESHOLDS)
    minmax: tuple[float, float] | None = None
    repeat: str | None = None
    # table only: column renames for the merged instant queries, and the sort column
    columns: dict[str, str] = field(default_factory=dict)
    sort_by: tuple[str, bool] | None = None  # (display name, descending)
    matrix: tuple[str, str] | None = None  # (row label, column label) -> grouping to matrix
    field_units: dict[str, str] = field(default_factory=dict)


@dataclass
class Dashboard:
    uid: str
    title: str
    description: str
    variables: list[str]
    panels: list[Panel]
    time_from: str = "now-7d"


def datasource_variable() -> dict[str, Any]:
    return {"type": "datasource", "name": "datasource", "label": "Nguồn dữ liệu / Data source",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": "",
            "options": [], "includeAll": False, "multi": False, "skipUrlSync": False}


def query_variable(name: str, label: str, query: str, *, multi: bool = False,
                   description: str = "", regex: str = "", hide: int = 0) -> dict[str, Any]:
    return {"type": "query", "name": name, "label": label, "description": description,
            "datasource": DS, "definition": query,
            "query": {"query": query, "refId": f"kiemke-{name}"},
            "refresh": 2, "sort": 1, "regex": regex, "hide": hide, "current": {},
            "options": [], "multi": multi, "includeAll": multi, "skipUrlSync": False}


# The unit variable's value is the unit_id, its text the path: Grafana's query_result()
# shows each series as `{path="…",unit_id="…"} 1 <time>` (labels in the order Prometheus
# returns them: by name) and the named groups pick the text and the value.
UNIT_QUERY = "query_result(max by (unit_id, path) (kiemke_unit_info))"
UNIT_REGEX = '/path="(?<text>.*)",\\s*unit_id="(?<value>[0-9]+)"/'
UNIT_PATH_QUERY = 'query_result(max by (path) (kiemke_unit_info{unit_id="$unit"}))'
UNIT_PATH_REGEX = '/path="(.*)"/'


VARIABLES: dict[str, dict[str, Any]] = {
    "datasource": datasource_variable(),
    # Shown as paths ("Tỉnh / Huyện / Xã"), which sort into tree order; the value is the
    # unit_id. The panels reach children with parent_id="$unit" and descendants with the
    # path prefix $unit_path (hidden: follows $unit).
    "unit": query_variable(
        "unit", "Đơn vị / Unit", UNIT_QUERY, regex=UNIT_REGEX,
        description="Đơn vị đang xem; số liệu gồm cả các đơn vị cấp dưới. "
                    "The unit shown; figures include every unit below it."),
    "unit_path": query_variable(
        "unit_path", "Đường dẫn đơn vị / Unit path", UNIT_PATH_QUERY, regex=UNIT_PATH_REGEX,
        hide=2, description="Đường dẫn của đơn vị đang xem (tự động). The selected unit's "
                            "path, for the machines of its subtree."),
    "rule": query_variable(
        "rule", "Quy tắc / Rule", "label_values(kiemke_rule_info, rule)",
        description="Quy tắc tuân thủ (rules/*.yml). A compliance rule (rules/*.yml)."),
    "rules": query_variable(
        "rule", "Quy tắc / Rules", "label_values(kiemke_rule_info, rule)", multi=True,
        description="Một bảng xếp hạng cho mỗi quy tắc được chọn. One ranking per rule."),
}

# Instant table queries that Grafana merges into one row per rule / unit.
RULE_COLUMNS = {"rule": "Quy tắc / Rule", "title_vi": "Tên / Title", "severity": "Mức / Severity"}


def _field_config(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit, "thresholds": panel.thresholds,
                                "color": {"mode": "thresholds"}, "mappings": []}
    if panel.minmax is not None:
        defaults["min"], defaults["max"] = panel.minmax
    if panel.kind == "timeseries":
        defaults["color"] = {"mode": "palette-classic"}
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 2, "fillOpacity": 10,
                              "showPoints": "never", "spanNulls": False}
    overrides = [{"matcher": {"id": "byName", "options": name},
                  "properties": [{"id": "unit", "value": unit}]}
                 for name, unit in panel.field_units.items()]
    if panel.kind == "table":
        overrides += [{"matcher": {"id": "byName", "options": name},
                       "properties": [{"id": "custom.cellOptions",
                                       "value": {"type": "color-background"}}]}
                      for name in panel.field_units if panel.field_units[name] == "percentunit"]
    return {"defaults": defaults, "overrides": overrides}


def _options(panel: Panel) -> dict[str, Any]:
    reduce = {"calcs": ["lastNotNull"], "fields": "", "values": panel.kind in ("bargauge",
                                                                                  "piechart")}
    if panel.kind == "stat":
        return {"reduceOptions": reduce, "colorMode": "background", "graphMode": "area",
                "justifyMode": "auto", "orientation": "auto", "textMode": "auto"}
    if panel.kind == "gauge":
        return {"reduceOptions": reduce, "showThresholdMarkers": True}
    if panel.kind == "bargauge":
        return {"reduceOptions": {**reduce, "values": True}, "orientation": "horizontal",
                "displayMode": "gradient", "showUnfilled": True}
    if panel.kind == "piechart":
        return {"reduceOptions": reduce, "pieType": "donut",
                "legend": {"displayMode": "table", "placement": "right", "values": ["value"]}}
    if panel.kind == "barchart":
        return {"orientation": "vertical", "showValue": "always", "xTickLabelRotation": 0,
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
    if panel.kind == "timeseries":
        return {"legend": {"displayMode": "table", "placement": "right",
                           "calcs": ["lastNotNull", "min"], "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "asc"}}
    if panel.kind == "table":
        options: dict[str, Any] = {"showHeader": True, "cellHeight": "sm",
                                   "footer": {"show": False, "reducer": ["sum"]}}
        if panel.sort_by:
            options["sortBy"] = [{"displayName": panel.sort_by[0], "desc": panel.sort_by[1]}]
        return options
    raise ValueError(f"unknown panel kind {panel.kind!r}")


def _transformations(panel: Panel) -> list[dict[str, Any]]:
    if panel.kind != "table":
        return []
    if panel.matrix:
        row, column = panel.matrix
        return [{"id": "groupingToMatrix", "options": {
            "rowField": row, "columnField": column, "valueField": "Value"}}]
    steps: list[dict[str, Any]] = [{"id": "merge", "options": {}}]
    # a column renamed to "" is hidden (e.g. the constant 1 of an info metric)
    rename = {k: v for k, v in panel.columns.items() if v}
    excluded = {"Time": True, **{k: True for k, v in panel.columns.items() if not v}}
    steps.append({"id": "organize", "options": {"excludeByName": excluded,
                                                 "renameByName": rename, "indexByName": {}}})
    return steps


def _target_json(target: Target, ref: str) -> dict[str, Any]:
    return {"refId": ref, "datasource": DS, "expr": target.expr,
            "legendFormat": target.legend or "__auto", "instant": target.instant,
            "range": not target.instant, "format": "table" if target.table else "time_series",
            "editorMode": "code"}


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": panel_id, "type": panel.kind, "title": panel.title,
        "description": panel.description, "datasource": DS,
        "gridPos": {"h": panel.h, "w": panel.w, "x": x, "y": y},
        "targets": [_target_json(t, chr(ord("A") + i)) for i, t in enumerate(panel.targets)],
        "fieldConfig": _field_config(panel), "options": _options(panel),
        "transformations": _transformations(panel),
    }
    if panel.repeat:
        out.update(repeat=panel.repeat, repeatDirection="h", maxPerRow=3)
    return out


def dashboard_json(dash: Dashboard) -> dict[str, Any]:
    panels, x, y, row_h = [], 0, 0, 0
    for number, panel in enumerate(dash.panels, start=1):
        if x + panel.w > 24:
            x, y, row_h = 0, y + row_h, 0
        panels.append(panel_json(panel, number, x, y))
        x, row_h = x + panel.w, max(row_h, panel.h)
    return {
        "uid": dash.uid, "title": dash.title, "description": dash.description,
        "tags": ["kiemke"], "timezone": "browser", "editable": True, "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "refresh": "5m",
        "time": {"from": dash.time_from, "to": "now"}, "fiscalYearStartMonth": 0,
        "weekStart": "monday", "liveNow": False,
        "links": [{"type": "dashboards", "tags": ["kiemke"], "asDropdown": True,
                   "title": "kiemke", "includeVars": True, "keepTime": True}],
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": [VARIABLES[name] for name in dash.variables]},
        "panels": panels,
    }


# ----------------------------------------------------------------------- the dashboards

U = 'unit_id="$unit"'
R = 'rule="$rule"'


def db(metric: str, selector: str = "") -> str:
    """A gauge the collector builds from the database.

    Every collector instance sharing one database exports the same values; `max without
    (instance)` keeps one copy so sums and joins stay right when Prometheus scrapes
    several instances (docs/operations.md).
    """
    return f"max without (instance) ({metric}{{{selector}}})" if selector else \
        f"max without (instance) ({metric})"


def ratio(selector: str) -> str:
    return db("kiemke_rule_compliance_ratio", selector)


TARGET = "max by (rule) (kiemke_rule_target_ratio)"
ACTIVE = f'sum({db("kiemke_machines", U + ", status=" + chr(34) + "active" + chr(34))})'
ALL_MACHINES = f'sum({db("kiemke_machines", U)})'
COVERAGE = f"{ACTIVE} / {ALL_MACHINES}"
FAILING = "kiemke_machine_rule_failing"
FAILING_COLUMNS = "hostname, unit_id, rule, reason_code, machine_id"
# The human text of each failure code (the rule's reason, machine values elided).
REASON_TEXT = ("on (rule, reason_code) group_left (text_vi) "
               "max by (rule, reason_code, text_vi) (kiemke_reason_info)")
DEPRECIATION = "kiemke_depreciation_machines"
INGEST = "kiemke_reports_received_total"


def active_stale(status: str) -> str:
    return db("kiemke_machines", f'{U}, status="{status}"')


OVERVIEW = Dashboard(
    uid="kiemke-overview", title="kiemke — Tổng quan / Overview",
    description="Mức tuân thủ của một đơn vị so với chỉ tiêu kế hoạch. "
                "How far the selected unit is from its plan targets.",
    variables=["datasource", "unit", "unit_path"],
    time_from="now-30d",
    panels=[
        Panel("Máy đang báo cáo / Active machines",
              "Máy đã gửi báo cáo trong thời hạn (gồm đơn vị cấp dưới). "
              "How many machines of this unit report on time?",
              "stat", [Target(f"sum({active_stale('active')})")], w=4, h=5),
        Panel("Máy mất liên lạc / Stale machines",
              "Máy không báo cáo quá thời hạn; không tính vào tỷ lệ tuân thủ. "
              "How many machines went silent? They are left out of the compliance ratios.",
              "stat", [Target(f"sum({active_stale('stale')})")], w=4, h=5,
              thresholds=COUNT_BAD_THRESHOLDS),
        Panel("Tỷ lệ báo cáo / Reporting coverage",
              "Máy đang báo cáo / tổng số máy. Share of known machines that report on time.",
              "stat", [Target(COVERAGE)], w=4, h=5, unit="percentunit",
              thresholds=PERCENT_THRESHOLDS, minmax=(0, 1)),
        Panel("Quy tắc đạt chỉ tiêu / Rules meeting target",
              "Số quy tắc mà đơn vị đạt chỉ tiêu. How many rules does this unit meet?",
              "stat", [Target(f"count({ratio(U)} >= on (rule) group_left {TARGET}) "
                              "or vector(0)", "đạt / met"),
                       Target(f"count({ratio(U)})", "tổng / total")], w=4, h=5),
        Panel("Máy cần khắc phục thêm / Machines still to fix",
              "Tổng khoảng cách chỉ tiêu của mọi quy tắc: ceil(chỉ tiêu × số máy tính) − số máy "
              "đạt. Sum over rules of how many more machines must pass to meet the target.",
              "stat", [Target(f"sum(kiemke:rule_gap{{{U}}}) or vector(0)")], w=4, h=5,
              thresholds=COUNT_BAD_THRESHOLDS),
        Panel("Máy lỗi nghiêm trọng / Machines failing a critical rule",
              "Máy vi phạm quy tắc nghiêm trọng (diệt virus thiếu, tắt, cũ, hết hạn bản quyền). "
              "Machines failing a critical rule such as antivirus missing or disabled.",
              "stat", [Target("count(count by (machine_id) ("
                              + in_subtree(FAILING + '{severity="critical"}')
                              + ")) or vector(0)")],
              w=4, h=5, thresholds=COUNT_BAD_THRESHOLDS),
        Panel("Tuân thủ theo quy tắc / Compliance by rule",
              "Mỗi quy tắc: tỷ lệ đạt, chỉ tiêu, khoảng cách (số máy cần đạt thêm), số máy lỗi; "
              "xếp từ thấp nhất. Each rule: ratio, target, gap in machines, failing machines, "
              "worst first.",
              "table", [
                  Target(f"max by (rule) (kiemke_rule_compliance_ratio{{{U}}})", instant=True,
                         table=True),
                  Target(TARGET, instant=True, table=True),
                  Target(f"max by (rule) (kiemke:rule_gap{{{U}}})", instant=True, table=True),
                  Target(f'max by (rule) (kiemke_rule_machines{{{U}, result="fail"}})',
                         instant=True, table=True),
                  Target("max by (rule, title_vi, severity) (kiemke_rule_info)", instant=True,
                         table=True),
              ], w=24, h=10,
              columns={**RULE_COLUMNS, "Value #A": "Tỷ lệ / Ratio",
                       "Value #B": "Chỉ tiêu / Target", "Value #C": "Thiếu (máy) / Gap",
                       "Value #D": "Lỗi / Failing", "Value #E": ""},
              sort_by=("Tỷ lệ / Ratio", False),
              field_units={"Tỷ lệ / Ratio": "percentunit", "Chỉ tiêu / Target": "percentunit"}),
        Panel("Xu hướng tuân thủ / Compliance trend",
              "Tỷ lệ tuân thủ theo thời gian, mỗi đường một quy tắc. Is the unit improving?",
              "timeseries", [Target(f"max by (rule) (kiemke_rule_compliance_ratio{{{U}}})",
                                    "{{rule}}")],
              w=12, h=9, unit="percentunit", minmax=(0, 1)),
        Panel("Máy theo trạng thái / Machines by status",
              "Máy đang báo cáo và mất liên lạc theo thời gian. Active and stale machines.",
              "timeseries", [Target(f"max by (status) (kiemke_machines{{{U}}})",
                                    "{{status}}")], w=12, h=9),
    ])

UNITS = Dashboard(
    uid="kiemke-units", title="kiemke — Đơn vị cấp dưới / Units",
    description="So sánh các đơn vị cấp dưới của đơn vị đã chọn, xếp từ kém nhất: "
                "cơ sở xếp hạng cuối năm. Child units side by side, worst first.",
    variables=["datasource", "unit", "unit_path", "rules"],
    time_from="now-30d",
    panels=[
        Panel("Xếp hạng đơn vị cấp dưới / Ranking of child units",
              "Tỷ lệ tuân thủ trung bình các quy tắc, số quy tắc đạt chỉ tiêu, tổng số máy cần "
              "khắc phục, máy đang báo cáo và mất liên lạc; kém nhất ở trên. Which child unit "
              "is furthest from the targets?",
              "table", [
                  Target(of_children(f"avg by (unit_id) ({ratio('')})"), instant=True,
                         table=True),
                  Target(of_children(f"(count by (unit_id) ({ratio('')} >= on (rule) "
                                     f"group_left {TARGET}) or 0 * count by (unit_id) "
                                     f"({ratio('')}))"), instant=True, table=True),
                  Target(of_children("sum by (unit_id) (kiemke:rule_gap)"), instant=True,
                         table=True),
                  Target(of_children('max by (unit_id) (kiemke_machines{status="active"})'),
                         instant=True, table=True),
                  Target(of_children('max by (unit_id) (kiemke_machines{status="stale"})'),
                         instant=True, table=True),
              ], w=24, h=10,
              columns={"name": "Đơn vị / Unit", "unit_id": "",
                       "Value #A": "Tuân thủ TB / Mean compliance",
                       "Value #B": "Quy tắc đạt / Rules met", "Value #C": "Thiếu (máy) / Gap",
                       "Value #D": "Đang báo cáo / Active", "Value #E": "Mất liên lạc / Stale"},
              sort_by=("Tuân thủ TB / Mean compliance", False),
              field_units={"Tuân thủ TB / Mean compliance": "percentunit"}),
        Panel("Đơn vị × quy tắc / Units × rules",
              "Ma trận tỷ lệ tuân thủ: hàng là đơn vị cấp dưới, cột là quy tắc. "
              "Every child unit against every rule.",
              "table", [Target(of_children("max by (unit_id, rule) "
                                           "(kiemke_rule_compliance_ratio)"),
                               instant=True, table=True)],
              w=24, h=10, unit="percentunit", thresholds=PERCENT_THRESHOLDS,
              minmax=(0, 1), matrix=("name", "rule")),
        Panel("$rule — đơn vị cấp dưới / child units",
              "Tỷ lệ tuân thủ quy tắc của từng đơn vị cấp dưới, kém nhất ở trên. "
              "One panel per selected rule, worst child unit first.",
              "bargauge", [Target("sort(" + of_children(
                  f"max by (unit_id) (kiemke_rule_compliance_ratio{{{R}}})") + ")",
                  "{{name}}", instant=True)],
              w=8, h=10, unit="percentunit", thresholds=PERCENT_THRESHOLDS, minmax=(0, 1),
              repeat="rule"),
    ])

# The failing machines of $rule in the subtree, with their unit's path and reason text.
FAILED_HERE = (in_subtree(f"max by ({FAILING_COLUMNS}) ({FAILING}{{{R}}})")
               + f" * {REASON_TEXT}")

RULE = Dashboard(
    uid="kiemke-rule", title="kiemke — Chi tiết quy tắc / Rule drill-down",
    description="Máy nào vi phạm một quy tắc, vì sao và từ khi nào. "
                "Which machines fail a rule, why and since when.",
    variables=["datasource", "unit", "unit_path", "rule"],
    panels=[
        Panel("Tỷ lệ tuân thủ / Compliance",
              "Tỷ lệ đạt của quy tắc trong đơn vị. pass / (pass + fail + unknown).",
              "stat", [Target(f"max(kiemke_rule_compliance_ratio{{{R}, {U}}})")], w=4, h=5,
              unit="percentunit", thresholds=PERCENT_THRESHOLDS, minmax=(0, 1)),
        Panel("Chỉ tiêu / Target", "Chỉ tiêu của kế hoạch cho quy tắc. The plan's target.",
              "stat", [Target(f"max(kiemke_rule_target_ratio{{{R}}})")], w=4, h=5,
              unit="percentunit", minmax=(0, 1)),
        Panel("Cần khắc phục thêm / Gap (machines)",
              "Số máy (hoặc văn phòng với quy tắc cấp đơn vị) phải đạt thêm để đạt chỉ tiêu. "
              "How many more must pass to reach the target.",
              "stat", [Target(f"max(kiemke:rule_gap{{{R}, {U}}}) or vector(0)")],
              w=4, h=5, thresholds=COUNT_BAD_THRESHOLDS),
        Panel("Thời hạn khắc phục / Grace period",
              "Máy vi phạm lâu hơn thời hạn này thì cảnh báo. Failures older than this alert.",
              "stat", [Target(f"max(kiemke_rule_grace_seconds{{{R}}})")], w=4, h=5,
              unit="s"),
        Panel("Máy theo kết quả / Machines by result",
              "Số máy (hoặc văn phòng, với quy tắc cấp đơn vị) đạt, lỗi, chưa rõ, không áp "
              "dụng, được miễn. Machines (offices for unit rules) per result.",
              "bargauge", [Target(f"max by (result) (kiemke_rule_machines{{{R}, {U}}})",
                                  "{{result}}", instant=True),
                           Target(f"max by (result) (kiemke_rule_units{{{R}, {U}}})",
                                  "{{result}} (văn phòng / offices)", instant=True)],
              w=8, h=5),
        Panel("Máy vi phạm / Failing machines",
              "Từng máy vi phạm quy tắc: tên máy, đơn vị, lý do, bắt đầu từ khi nào và đã bao "
              "lâu. Which machines fail, why, since when?",
              "table", [
                  Target(f"{FAILED_HERE} * 1000", instant=True, table=True),
                  Target(f"time() - ({FAILED_HERE})", instant=True, table=True),
              ], w=24, h=10,
              columns={"hostname": "Máy / Machine", "path": "Đơn vị / Unit",
                       "reason_code": "Mã lý do / Reason code", "text_vi": "Lý do / Reason",
                       "machine_id": "machine_id", "unit_id": "", "rule": "",
                       "Value #A": "Từ / Since", "Value #B": "Đã / For"},
              sort_by=("Đã / For", True),
              field_units={"Từ / Since": "dateTimeAsIso", "Đã / For": "s"}),
        Panel("Đơn vị cấp dưới / Child units",
              "Tỷ lệ tuân thủ quy tắc của đơn vị cấp dưới, kém nhất ở trên. Worst child first.",
              "bargauge", [Target("sort(" + of_children(
                  f"max by (unit_id) (kiemke_rule_compliance_ratio{{{R}}})") + ")",
                  "{{name}}", instant=True)],
              w=12, h=9, unit="percentunit", thresholds=PERCENT_THRESHOLDS, minmax=(0, 1)),
        Panel("Xu hướng / Trend",
              "Tỷ lệ tuân thủ của đơn vị và chỉ tiêu theo thời gian. Ratio against target.",
              "timeseries", [Target(f"max(kiemke_rule_compliance_ratio{{{R}, {U}}})",
                                    "tỷ lệ / ratio"),
                             Target(f"max(kiemke_rule_target_ratio{{{R}}})",
                                    "chỉ tiêu / target")],
              w=12, h=9, unit="percentunit", minmax=(0, 1)),
        Panel("Xu hướng đơn vị cấp dưới / Child units trend",
              "Tỷ lệ tuân thủ quy tắc của từng đơn vị cấp dưới theo thời gian, mang tên hiện "
              "tại: đơn vị đổi tên hay chuyển vẫn là một đường. Each child unit's ratio over "
              "time under its current name; a renamed or moved unit stays one line.",
              "timeseries", [Target(f"max by (unit_id) (kiemke_rule_compliance_ratio{{{R}}}) "
                                    "* on (unit_id) group_left (name) "
                                    + unit_info("name", 'parent_id="$unit"', at_end=True),
                                    "{{name}}")],
              w=24, h=9, unit="percentunit", minmax=(0, 1)),
    ])

OUT_OF_LIFE = 'status=~"fully_depreciated|overdue"'


def dep_total(selector: str) -> str:
    return f"sum({db(DEPRECIATION, f'{U}, {selector}')}) or vector(0)"

HARDWARE = Dashboard(
    uid="kiemke-hardware", title="kiemke — Phần cứng và khấu hao / Hardware and depreciation",
    description="Tuổi máy, máy đã hết khấu hao vẫn đang dùng và dự báo thay thế "
                "(khấu hao đường thẳng, rules/depreciation.yml). Age, depreciation, "
                "replacement forecast.",
    variables=["datasource", "unit", "unit_path"],
    time_from="now-90d",
    panels=[
        Panel("Hết khấu hao vẫn dùng / Fully depreciated, in service",
              "Máy đã khấu hao hết (kể cả quá hạn thay thế) vẫn đang báo cáo. "
              "Machines past full depreciation that are still in use.",
              "stat", [Target(dep_total(OUT_OF_LIFE))],
              w=6, h=5, thresholds=COUNT_BAD_THRESHOLDS),
        Panel("Quá hạn thay thế / Overdue for replacement",
              "Máy đã quá hạn thay thế. Machines overdue for replacement.",
              "stat", [Target(dep_total('status="overdue"'))], w=6, h=5,
              thresholds=COUNT_BAD_THRESHOLDS),
        Panel("Tuổi ước tính / Estimated ages",
              "Máy không có trong sổ tài sản: tuổi ước tính từ ngày firmware. "
              "Machines whose age is estimated (not in the asset register).",
              "stat", [Target(dep_total('estimated="true"'))], w=6, h=5),
        Panel("Không rõ tuổi / Unknown age",
              "Máy không xác định được tuổi. Machines with no known age.",
              "stat", [Target(dep_total('status="unknown"'))], w=6, h=5),
        Panel("Phân bố tuổi máy / Age distribution",
              "Số máy theo tuổi (năm). How old is the fleet?",
              "bargauge", [Target(f"max by (age_years) (kiemke_machines_by_age{{{U}}})",
                                  "{{age_years}} năm / years", instant=True)], w=12, h=9),
        Panel("Tình trạng khấu hao / Depreciation status",
              "Máy theo tình trạng khấu hao. Machines by depreciation status.",
              "piechart", [Target(f"sum by (status) ({db(DEPRECIATION, U)})", "{{status}}",
                                  instant=True)], w=12, h=9),
        Panel("Dự báo thay thế theo năm / Replacement forecast by year",
              "Số máy hết khấu hao trong từng năm: căn cứ lập dự toán. "
              "Machines reaching full depreciation per year, for the budget.",
              "bargauge", [Target(f"max by (year) (kiemke_replacement_forecast_machines"
                                  f"{{{U}}})", "{{year}}", instant=True)], w=12, h=9),
        Panel("Dự báo theo đơn vị cấp dưới / Forecast by child unit",
              "Số máy cần thay theo đơn vị cấp dưới và năm. Replacement per child unit × year.",
              "table", [Target(of_children("max by (unit_id, year) "
                                           "(kiemke_replacement_forecast_machines)"),
                               instant=True, table=True)],
              w=12, h=9, matrix=("name", "year")),
        Panel("Hết khấu hao theo đơn vị cấp dưới / Fully depreciated by child unit",
              "Đơn vị cấp dưới có nhiều máy hết khấu hao nhất ở trên. Most first.",
              "bargauge", [Target("sort_desc(" + of_children(
                  f"sum by (unit_id) ({db(DEPRECIATION, OUT_OF_LIFE)})") + ")", "{{name}}",
                  instant=True)], w=24, h=8),
    ])

HEALTH = Dashboard(
    uid="kiemke-health", title="kiemke — Agent và máy chủ thu thập / Agents and collector",
    description="Máy có báo cáo đủ không, phiên bản agent, máy chủ thu thập có khoẻ không. "
                "Reporting coverage, agent versions, collector health.",
    variables=["datasource", "unit", "unit_path"],
    time_from="now-24h",
    panels=[
        Panel("Máy chủ thu thập hoạt động / Collectors up",
              "Số tiến trình collector Prometheus lấy được số liệu. Collector targets up.",
              "stat", [Target('sum(up{job="kiemke"})', "up"),
                       Target('count(up{job="kiemke"})', "tổng / total")], w=4, h=5),
        Panel("Cơ sở dữ liệu / Database",
              "1 = cơ sở dữ liệu trả lời. 1 when every collector reaches its database.",
              "stat", [Target("min(kiemke_database_up)")], w=4, h=5,
              thresholds={"mode": "absolute", "steps": [{"color": "red", "value": None},
                                                        {"color": "green", "value": 1}]}),
        Panel("Tỷ lệ báo cáo / Reporting coverage",
              "Máy đang báo cáo / tổng số máy của đơn vị. Share of machines reporting.",
              "gauge", [Target(COVERAGE)], w=4, h=5,
              unit="percentunit", thresholds=PERCENT_THRESHOLDS, minmax=(0, 1)),
        Panel("Báo cáo nhận / Reports received",
              "Báo cáo được nhận, trùng, bị từ chối mỗi giây. Ingest rate by result.",
              "timeseries", [Target(f"sum by (result) (rate({INGEST}[$__rate_interval]))",
                                    "{{result}}")], w=12, h=5, unit="reqps"),
        Panel("Tỷ lệ báo cáo theo đơn vị cấp dưới / Coverage by child unit",
              "Đơn vị cấp dưới báo cáo kém nhất ở trên. Worst reporting child unit first.",
              "bargauge", [Target("sort(" + of_children(
                  'max by (unit_id) (kiemke_machines{status="active"}) / sum by (unit_id) '
                  f"({db('kiemke_machines')})") + ")", "{{name}}", instant=True)],
              w=12, h=9, unit="percentunit", thresholds=PERCENT_THRESHOLDS, minmax=(0, 1)),
        Panel("Danh sách máy mất liên lạc / Stale machine list",
              "Máy không báo cáo quá thời hạn, lần báo cáo cuối; lâu nhất ở trên. "
              "Which machines went silent, and when did each last report?",
              "table", [Target(in_subtree("max by (hostname, unit_id, machine_id) "
                                          "(kiemke_machine_stale)") + " * 1000",
                               instant=True, table=True)], w=12, h=9,
              columns={"hostname": "Máy / Machine", "path": "Đơn vị / Unit",
                       "machine_id": "machine_id", "unit_id": "",
                       "Value": "Báo cáo cuối / Last report"},
              sort_by=("Báo cáo cuối / Last report", False),
              field_units={"Báo cáo cuối / Last report": "dateTimeAsIso"}),
        Panel("Phiên bản agent / Agent versions",
              "Số máy theo phiên bản agent (toàn hệ thống). Machines per agent version.",
              "piechart", [Target("max by (version) (kiemke_agent_version_machines)",
                                  "{{version}}", instant=True)], w=12, h=9),
        Panel("Báo cáo bị từ chối theo lý do / Rejected reports by reason",
              "Vì sao báo cáo bị từ chối (sai định dạng, sai khoá, ...). Why reports fail.",
              "timeseries", [Target(f'sum by (reason) (rate({INGEST}{{result="rejected"}}'
                                    '[$__rate_interval]))', "{{reason}}")],
              w=12, h=8, unit="reqps"),
        Panel("Từ chối trong khoảng thời gian / Rejected in range",
              "Tổng số báo cáo bị từ chối theo lý do trong khoảng thời gian đang xem. "
              "Rejected reports per reason over the dashboard's time range.",
              "table", [Target(f'sum by (reason) (increase({INGEST}{{result="rejected"}}'
                               '[$__range]))', instant=True, table=True)], w=12, h=8,
              columns={"reason": "Lý do / Reason", "Value": "Số báo cáo / Reports"}),
        Panel("Thời gian nhận báo cáo / Ingest latency",
              "p50 và p99 thời gian xử lý một báo cáo. Ingest latency percentiles.",
              "timeseries", [Target(f"histogram_quantile({q}, sum by (le) (rate("
                                    "kiemke_report_ingest_seconds_bucket[$__rate_interval])))",
                                    label) for q, label in (("0.5", "p50"), ("0.99", "p99"))],
              w=12, h=8, unit="s"),
        Panel("Thời gian tạo /metrics / Scrape duration",
              "Thời gian collector tạo số liệu và thời gian Prometheus lấy. Metrics cost.",
              "timeseries", [Target("max by (instance) (kiemke_scrape_duration_seconds)",
                                    "kiemke {{instance}}"),
                             Target('max by (instance) (scrape_duration_seconds{job="kiemke"})',
                                    "prometheus {{instance}}")], w=12, h=8, unit="s"),
        Panel("Báo cáo agent không lưu được / Reports agents could not spool",
              "Số báo cáo agent không ghi được vào hàng đợi trên đĩa (đầy, chỉ đọc) trong khoảng "
              "thời gian đang xem. Reports lost to a full or read-only agent disk.",
              "stat", [Target("sum(increase(kiemke_agent_spool_errors_total[$__range])) "
                              "or vector(0)")], w=24, h=5),
        Panel("Nguồn số liệu /metrics / Metrics providers",
              "1 = nguồn số liệu tạo được số liệu trong lần lấy gần nhất, 0 = lỗi (xem nhật "
              "ký collector). Which metrics provider failed in the last scrape.",
              "table", [Target("min by (provider) (kiemke_metrics_provider_success)",
                               instant=True, table=True)], w=12, h=8,
              columns={"provider": "Nguồn / Provider", "Value": "Hoạt động / OK"}),
        Panel("Thời gian từng nguồn số liệu / Metrics provider duration",
              "Thời gian mỗi nguồn số liệu tạo số liệu của nó. Cost of each provider per scrape.",
              "timeseries", [Target("max by (provider) (kiemke_metrics_provider_duration_seconds)",
                                    "{{provider}}")], w=12, h=8, unit="s"),
        Panel("Phiên bản collector / Collector versions",
              "Phiên bản kiemke của từng collector. Collector build per instance.",
              "table", [Target("max by (instance, version) (kiemke_build_info)", instant=True,
                               table=True)], w=24, h=6,
              columns={"instance": "Instance", "version": "Version", "Value": "up"}),
    ])

DASHBOARDS: list[Dashboard] = [OVERVIEW, UNITS, RULE, HARDWARE, HEALTH]


def render(dash: Dashboard) -> str:
    return json.dumps(dashboard_json(dash), ensure_ascii=False, indent=2) + "\n"


def file_name(dash: Dashboard) -> str:
    return dash.uid.removeprefix("kiemke-") + ".json"


def write_all(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for dash in DASHBOARDS:
        path = out_dir / file_name(dash)
        path.write_text(render(dash), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
