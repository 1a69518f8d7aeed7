"""Metric families for rules (docs/metrics.md), built on scrape from the database.

Nothing is kept in memory between scrapes, so every gunicorn worker and collector
instance sharing a database exports the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Connection, select

from kiemke.collector.compliance.figures import compute
from kiemke.collector.db.compliance_tables import rule_results
from kiemke.collector.db.tables import machines
from kiemke.collector.metrics import UNIT_LABELS, unit_labels
from kiemke.collector.units import all_units
from kiemke.compliance import RESULTS, RuleSet, ratio

ALWAYS = ("pass", "fail", "unknown")

Provider = Callable[[Connection, datetime], Iterator[Metric]]


def rule_definitions(ruleset: RuleSet) -> Provider:
    """kiemke_rule_info, kiemke_rule_target_ratio, kiemke_rule_grace_seconds."""

    def provider(_conn: Connection, _now: datetime) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "kiemke_rule_info", "A rule of the loaded rule set (value 1)",
            labels=["rule", "title_vi", "title_en", "source", "severity", "scope"])
        target = GaugeMetricFamily("kiemke_rule_target_ratio",
                                   "Target share of passing machines (units) of a rule",
                                   labels=["rule"])
        grace = GaugeMetricFamily("kiemke_rule_grace_seconds",
                                  "How long a failure may last before it counts against "
                                  "the rule's deadline", labels=["rule"])
        for rule in ruleset.rules:
            info.add_metric([rule.id, rule.title.get("vi", ""), rule.title.get("en", ""),
                             rule.source.document, rule.severity, rule.kind], 1)
            target.add_metric([rule.id], rule.target)
            grace.add_metric([rule.id], rule.grace_seconds)
        yield from (info, target, grace)

    return provider


def rule_compliance(ruleset: RuleSet, stale_after: timedelta) -> Provider:
    """Ratios and result counts per unit x rule, rolled up over the tree."""

    def provider(conn: Connection, now: datetime) -> Iterator[Metric]:
        figures = compute(conn, ruleset, now, stale_after)
        ratio_family = GaugeMetricFamily(
            "kiemke_rule_compliance_ratio",
            "pass / (pass + fail + unknown) over active machines (machine rules) or offices "
            "(unit rules) of the unit and its descendants", labels=["rule", *UNIT_LABELS])
        machines_family = GaugeMetricFamily(
            "kiemke_rule_machines", "Active machines of the unit and its descendants per "
            "rule result", labels=["rule", *UNIT_LABELS, "result"])
        units_family = GaugeMetricFamily(
            "kiemke_rule_units", "Offices of the unit's subtree (itself included) per "
            "unit-rule result", labels=["rule", *UNIT_LABELS, "result"])
        # Series stay bounded by units x rules: a unit with nothing to count for a rule
        # exports nothing for it; otherwise pass, fail and unknown are always exported
        # (the gap recording rule subtracts them) and other results only when non-zero.
        for unit in figures.units:
            labels = unit_labels(unit)
            for rule in ruleset.rules:
                counts = figures.counts(unit.id, rule.id, rule.kind)
                if not counts:
                    continue
                family = units_family if rule.kind == "unit" else machines_family
                for result in RESULTS:
                    n = counts.get(result, 0)
                    if n or result in ALWAYS:
                        family.add_metric([rule.id, *labels, result], n)
                value = ratio(counts)
                if value is not None:  # nothing to measure: no series rather than NaN
                    ratio_family.add_metric([rule.id, *labels], value)
        yield from (ratio_family, machines_family, units_family)

    return provider


def machine_series(ruleset: RuleSet, stale_after: timedelta) -> Provider:
    """kiemke_machine_rule_failing (active machines only) and kiemke_machine_stale."""

    def provider(conn: Connection, now: datetime) -> Iterator[Metric]:
        paths = {u.id: u.path for u in all_units(conn)}
        cutoff = now - stale_after
        failing = GaugeMetricFamily(
            "kiemke_machine_rule_failing",
            "A machine failing a rule; value = unix time the failure began",
            labels=["machine_id", "hostname", "unit", "rule", "severity", "reason"])
        for rule in ruleset.machine_rules:
            # One query per rule uses the (rule_id, result) index.
            rows = conn.execute(
                select(rule_results.c.machine_id, machines.c.hostname, rule_results.c.unit_id,
                       rule_results.c.reason, rule_results.c.since)
                .join(machines, machines.c.machine_id == rule_results.c.machine_id)
                .where(rule_results.c.rule_id == rule.id, rule_results.c.result == "fail",
                       machines.c.last_seen >= cutoff))
            for mid, hostname, unit_id, reason, since in rows:
                failing.add_metric([mid, hostname, paths.get(unit_id, ""), rule.id,
                                    rule.severity, reason or ""], since.timestamp())
        stale = GaugeMetricFamily(
            "kiemke_machine_stale",
            "A machine that has not reported within the stale window; value = unix time of "
            "its last report", labels=["machine_id", "hostname", "unit"])
        for mid, hostname, unit_id, last_seen in conn.execute(
                select(machines.c.machine_id, machines.c.hostname, machines.c.unit_id,
                       machines.c.last_seen).where(machines.c.last_seen < cutoff)):
            stale.add_metric([mid, hostname, paths.get(unit_id, "")], last_seen.timestamp())
        yield from (failing, stale)

    return provider
