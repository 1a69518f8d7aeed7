"""What the console pages show, read from the same aggregates as the API.

Figures come from kiemke.collector.evaluation.figures (the module /metrics, the API and
the daily history use), so a page and GET /api/v1/compliance agree for the same unit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import Connection, case, func, select

from kiemke.collector.changes import versions
from kiemke.collector.db.compliance_tables import compliance_daily, rule_results, unit_rule_results
from kiemke.collector.db.tables import machines, units
from kiemke.collector.evaluation.figures import Figures, compute, rule_figure
from kiemke.collector.units import Unit
from kiemke.compliance.rules import Rule


@dataclass
class UnitView:
    """The unit a page is about: None for the whole organisation (several roots)."""

    unit: Unit | None
    sum_ids: list[int]  # units whose rolled-up figures add up to this view
    children: list[Unit]
    subtree: list[int] | None  # unit ids of the subtree; None: every unit


def unit_view(units_: list[Unit], unit: Unit | None, subtree: list[int] | None) -> UnitView:
    if unit is None:
        roots = [u for u in units_ if u.parent_id is None]
        return UnitView(None, [u.id for u in roots], roots, None)
    return UnitView(unit, [unit.id], [u for u in units_ if u.parent_id == unit.id], subtree)


figure = rule_figure  # the API's shape, so a page shows the API's numbers


# Figures are kept per process while the database's change versions stay the same (what
# /metrics does, kiemke/collector/changes.py), for at most FIGURES_TTL seconds: a machine
# that turns stale or reports again after being stale changes no version, so pages may
# show that up to this long after it happened.
FIGURES_TTL = 30


def _cache(conn: Connection, now: dt.datetime, ruleset: Any, stale_after: dt.timedelta
           ) -> dict[str, Any]:
    """This process's cache entry for the current versions and TTL window."""
    store = current_app.extensions.setdefault("kiemke_console_figures", {})
    key = (tuple(sorted(versions(conn).items())), int(now.timestamp() // FIGURES_TTL),
           id(ruleset), stale_after)
    if store.get("key") != key:
        store.clear()
        store.update(key=key, counts={})
    return store  # type: ignore[no-any-return]


def figures_for(conn: Connection, ruleset: Any, now: dt.datetime, stale_after: dt.timedelta,
                units_: list[Unit]) -> Figures:
    entry = _cache(conn, now, ruleset, stale_after)
    if "figures" not in entry:
        entry["figures"] = compute(conn, ruleset, now, stale_after, units_)
    return entry["figures"]  # type: ignore[no-any-return]


def machine_counts(conn: Connection, subtree: list[int] | None, now: dt.datetime,
                   ruleset: Any, stale_after: dt.timedelta) -> dict[str, int]:
    """Active and stale machines of a subtree (None: all)."""
    entry = _cache(conn, now, ruleset, stale_after)
    cache_key = None if subtree is None else tuple(subtree)
    found = entry["counts"].get(cache_key)
    if found is not None:
        return found  # type: ignore[no-any-return]
    cutoff = now - stale_after
    query = select(func.count(), func.sum(case((machines.c.last_seen < cutoff, 1), else_=0)))
    if subtree is not None:
        query = query.where(machines.c.unit_id.in_(subtree))
    total, stale = conn.execute(query).one()
    total, stale = int(total or 0), int(stale or 0)
    counts = entry["counts"][cache_key] = {"active": total - stale, "stale": stale,
                                           "total": total}
    return counts


def trends(conn: Connection, unit_ids: list[int], since: dt.date
           ) -> dict[str, list[tuple[dt.date, float | None]]]:
    """Per rule, the daily ratio from compliance_daily for one unit (or several summed)."""
    rows = conn.execute(select(compliance_daily.c.day, compliance_daily.c.rule_id,
                               compliance_daily.c["pass"], compliance_daily.c.fail,
                               compliance_daily.c.unknown)
                        .where(compliance_daily.c.unit_id.in_(unit_ids),
                               compliance_daily.c.day >= since)
                        .order_by(compliance_daily.c.day))
    sums: dict[tuple[str, dt.date], list[int]] = {}
    for day, rule_id, passed, failed, unknown in rows:
        bucket = sums.setdefault((rule_id, day), [0, 0])
        bucket[0] += passed
        bucket[1] += passed + failed + unknown
    out: dict[str, list[tuple[dt.date, float | None]]] = {}
    for (rule_id, day), (passed, denominator) in sorted(sums.items(), key=lambda kv: kv[0][1]):
        out.setdefault(rule_id, []).append((day, passed / denominator if denominator else None))
    return out


def listed(conn: Connection, rule: Rule, result: str, subtree: list[int] | None,
           now: dt.datetime, cutoff: dt.datetime, include_stale: bool, limit: int,
           offset: int, total: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Machines (offices, for a unit rule) with `result`, oldest first: the query of
    GET /api/v1/compliance/rules/<id>/failing. `total`: the count when the caller has it
    already (the figures hold it), saving a count over every matching row."""
    query: Any
    if rule.kind == "unit":
        table = unit_rule_results
        query = (select(table.c.unit_id, units.c.path, table.c.reason, table.c.since)
                 .join(units, units.c.id == table.c.unit_id)
                 .where(table.c.rule_id == rule.id, table.c.result == result))
        order = (table.c.since, table.c.unit_id)
    else:
        table = rule_results
        query = (select(table.c.machine_id, machines.c.hostname, table.c.unit_id, units.c.path,
                        table.c.reason, table.c.since, machines.c.last_seen)
                 .join(machines, machines.c.machine_id == table.c.machine_id)
                 .join(units, units.c.id == table.c.unit_id)
                 .where(table.c.rule_id == rule.id, table.c.result == result))
        if not include_stale:
            query = query.where(machines.c.last_seen >= cutoff)
        order = (table.c.since, table.c.machine_id)
    if subtree is not None:
        query = query.where(table.c.unit_id.in_(subtree))
    if total is None:
        total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    items = []
    for r in conn.execute(query.order_by(*order).limit(limit).offset(offset)):
        item = {"unit_id": r.unit_id, "unit_path": r.path, "reason": r.reason,
                "since": r.since, "days": max((now - r.since).days, 0)}
        if rule.kind != "unit":
            item.update(machine_id=r.machine_id, hostname=r.hostname, last_seen=r.last_seen,
                        stale=r.last_seen < cutoff)
        items.append(item)
    return items, int(total)
