"""Metric families for rules (docs/metrics.md), built from the database.

Each process keeps the families it built and reuses them while what they were built from
is unchanged: the change versions (kiemke/collector/changes.py, bumped in the writing
transactions), the unit tree and the set of stale machines (read on every scrape: a
machine turns stale with the clock, without any write). Every gunicorn worker and
collector instance sharing a database therefore exports the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Connection, select

from kiemke.collector.changes import COMPLIANCE, MACHINES
from kiemke.collector.compliance.figures import compute
from kiemke.collector.db.compliance_tables import rule_results
from kiemke.collector.db.tables import machines
from kiemke.collector.metrics import (
    UNIT_LABELS,
    Memo,
    RowsFamily,
    StaleMachine,
    change_versions,
    scrape_units,
    stale_machines,
    unit_labels,
)
from kiemke.collector.units import Unit
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
    cache = Memo()

    def build(conn: Connection, now: datetime, units_: list[Unit]) -> list[Metric]:
        figures = compute(conn, ruleset, now, stale_after, units_)
        ratio_family = RowsFamily(
            "kiemke_rule_compliance_ratio",
            "pass / (pass + fail + unknown) over active machines (machine rules) or offices "
            "(unit rules) of the unit and its descendants", ["rule", *UNIT_LABELS])
        machines_family = RowsFamily(
            "kiemke_rule_machines", "Active machines of the unit and its descendants per "
            "rule result", ["rule", *UNIT_LABELS, "result"])
        units_family = RowsFamily(
            "kiemke_rule_units", "Offices of the unit's subtree (itself included) per "
            "unit-rule result", ["rule", *UNIT_LABELS, "result"])
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
                        family.add([rule.id, *labels, result], n)
                value = ratio(counts)
                if value is not None:  # nothing to measure: no series rather than NaN
                    ratio_family.add([rule.id, *labels], value)
        for family in (ratio_family, machines_family, units_family):
            family.text()  # rendered once, while cached
        return [ratio_family, machines_family, units_family]

    def provider(conn: Connection, now: datetime) -> Iterator[Metric]:
        units_ = scrape_units(conn)
        stale = stale_machines(conn, now - stale_after)
        key = (change_versions(conn)[COMPLIANCE], units_,
               tuple((m.machine_id, m.unit_id) for m in stale))
        yield from cache.get(key, lambda: build(conn, now, list(units_)))

    return provider


def machine_series(ruleset: RuleSet, stale_after: timedelta) -> Provider:
    """kiemke_machine_rule_failing (active machines only) and kiemke_machine_stale."""
    failing_cache, stale_cache = Memo(), Memo()

    def build_failing(conn: Connection, now: datetime, units_: tuple[Unit, ...]
                      ) -> RowsFamily:
        paths = {u.id: u.path for u in units_}
        cutoff = now - stale_after
        failing = RowsFamily(
            "kiemke_machine_rule_failing",
            "A machine failing a rule; value = unix time the failure began",
            ["machine_id", "hostname", "unit", "rule", "severity", "reason"])
        add = failing.rows.append
        for rule in ruleset.machine_rules:
            # One query per rule uses the (rule_id, result) index.
            rows = conn.execute(
                select(rule_results.c.machine_id, machines.c.hostname, rule_results.c.unit_id,
                       rule_results.c.reason, rule_results.c.since)
                .join(machines, machines.c.machine_id == rule_results.c.machine_id)
                .where(rule_results.c.rule_id == rule.id, rule_results.c.result == "fail",
                       machines.c.last_seen >= cutoff))
            rule_id, severity = rule.id, rule.severity
            for mid, hostname, unit_id, reason, since in rows:
                add(((mid, hostname, paths.get(unit_id, ""), rule_id, severity, reason or ""),
                     since.timestamp()))
        failing.text()
        return failing

    def build_stale(stale: tuple[StaleMachine, ...], units_: tuple[Unit, ...]) -> RowsFamily:
        paths = {u.id: u.path for u in units_}
        family = RowsFamily(
            "kiemke_machine_stale",
            "A machine that has not reported within the stale window; value = unix time of "
            "its last report", ["machine_id", "hostname", "unit"])
        for m in stale:
            family.add([m.machine_id, m.hostname, paths.get(m.unit_id, "")],
                       m.last_seen.timestamp())
        family.text()
        return family

    def provider(conn: Connection, now: datetime) -> Iterator[Metric]:
        units_ = scrape_units(conn)
        stale = stale_machines(conn, now - stale_after)
        cv = change_versions(conn)
        key = (cv[COMPLIANCE], cv[MACHINES], units_, tuple(m.machine_id for m in stale))
        yield failing_cache.get(key, lambda: build_failing(conn, now, units_))
        yield stale_cache.get((stale, units_), lambda: build_stale(stale, units_))

    return provider
