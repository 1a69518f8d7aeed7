"""compliance_daily: one row per local day x unit x rule, so any month, quarter or year
can be reported again exactly as it was. The maintenance pass rewrites today's rows
(only those whose figures changed); past days are never touched here. These rows are
provisional: the daily history job (kiemke/collector/reports/history.py) replaces each
day's rows when the day ends, and reports read closed days only."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, bindparam, select, update

from kiemke.collector.config import CollectorConfig
from kiemke.collector.db.compliance_tables import compliance_daily
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.history_tables import history_days
from kiemke.collector.evaluation.figures import compute
from kiemke.compliance import RESULTS, RuleSet, ratio

_FIELDS = (*RESULTS, "stale", "ratio", "target")


def local_day(now: datetime, timezone: str) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


def snapshot_day(engine: Engine, ruleset: RuleSet, config: CollectorConfig, now: datetime
                 ) -> int:
    """Upsert today's (local calendar) figures; return the rows written."""
    day = local_day(now, config.timezone)
    with write_transaction(engine) as conn:
        if conn.execute(select(history_days.c.day).where(history_days.c.day == day)).first():
            return 0  # closed by the daily job (a pass that began before midnight)
        figures = compute(conn, ruleset, now, config.stale_after)
        wanted: dict[tuple[int, str], dict[str, Any]] = {}
        for unit in figures.units:
            for rule in ruleset.rules:
                counts = figures.counts(unit.id, rule.id, rule.kind)
                value = ratio(counts)
                wanted[(unit.id, rule.id)] = {
                    **{r: counts.get(r, 0) for r in RESULTS},
                    "stale": figures.stale.get((unit.id, rule.id), 0),
                    "ratio": None if value is None else round(value, 6),
                    "target": rule.target}
        have = {(r.unit_id, r.rule_id): {f: getattr(r, f) for f in _FIELDS}
                for r in conn.execute(select(compliance_daily)
                                      .where(compliance_daily.c.day == day))}
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for key, row in wanted.items():
            old = have.get(key)
            if old == row:
                continue
            target = inserts if old is None else updates
            target.append({"day": day, "unit_id": key[0], "rule_id": key[1], **row,
                           "updated_at": now})
        if inserts:
            conn.execute(compliance_daily.insert(), inserts)
        if updates:
            conn.execute(update(compliance_daily).where(
                compliance_daily.c.day == bindparam("d"),
                compliance_daily.c.unit_id == bindparam("u"),
                compliance_daily.c.rule_id == bindparam("r")).values(
                    **{f: bindparam(f"v_{f}") for f in _FIELDS}, updated_at=now),
                [{**{f"v_{f}": u[f] for f in _FIELDS}, "d": u["day"], "u": u["unit_id"],
                  "r": u["rule_id"]} for u in updates])
        return len(inserts) + len(updates)
