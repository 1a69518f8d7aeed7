"""Period figures computed by the database: one row per unit x rule (or unit x day),
not one per unit x rule x day.

compliance_daily and history_units already hold each day's counts rolled up over the
subtree (history.py writes them when a day is closed), so a report of any unit reads
only its own rows and its children's: ~365 x rules rows per unit for a year, summed by
`GROUP BY` (SQLite and PostgreSQL alike). Only closed days count (`history_days`),
except for the previous period's mean, which has always been taken over every stored
row of that period (figures.py documents it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, Float, case, cast, func, literal, select

from kiemke.collector.db.compliance_tables import compliance_daily
from kiemke.collector.db.history_tables import history_days, history_units

CHUNK = 500  # unit ids per IN list


@dataclass(frozen=True)
class RuleStats:
    mean: float | None  # mean of the daily ratios (days with a ratio), rounded to 6 digits
    days: int  # days with a ratio
    worst: float | None
    worst_day: date | None  # the first day with the worst ratio


def _closed(first: date, last: date) -> Any:
    return select(history_days.c.day).where(history_days.c.day.between(first, last))


def _chunks(ids: Iterable[int]) -> list[list[int]]:
    items = sorted(set(ids))
    return [items[k:k + CHUNK] for k in range(0, len(items), CHUNK)]


def rule_stats(conn: Connection, unit_ids: Iterable[int], first: date, last: date,
               closed_only: bool = True, worst_day: bool = True
               ) -> dict[tuple[int, str], RuleStats]:
    """Mean, count, worst value and (unless `worst_day` is False) the worst value's first
    day of the daily ratios per unit x rule over [first, last]."""
    cd = compliance_daily.c
    out: dict[tuple[int, str], RuleStats] = {}
    for ids in _chunks(unit_ids):
        where = [cd.unit_id.in_(ids), cd.day.between(first, last)]
        if closed_only:
            where.append(cd.day.in_(_closed(first, last)))
        agg = (select(cd.unit_id, cd.rule_id, func.avg(cd.ratio).label("mean"),
                      func.count(cd.ratio).label("n"), func.min(cd.ratio).label("worst"))
               .where(*where).group_by(cd.unit_id, cd.rule_id)).subquery()
        worst_days: dict[tuple[int, str], date] = {}
        if worst_day:
            # The first day of the worst ratio: the first row of each unit x rule ordered
            # by (ratio, day), by a window function (one sort; a join back to the
            # aggregates would search the unit's rows once per rule).
            ranked = (select(cd.unit_id, cd.rule_id, cd.day, func.row_number().over(
                partition_by=(cd.unit_id, cd.rule_id), order_by=(cd.ratio, cd.day))
                .label("rn")).where(*where, cd.ratio.is_not(None)).subquery())
            worst_days = {(u, r): d for u, r, d in conn.execute(
                select(ranked.c.unit_id, ranked.c.rule_id, ranked.c.day)
                .where(ranked.c.rn == 1))}
        for unit_id, rule_id, mean, n, worst in conn.execute(
                select(agg.c.unit_id, agg.c.rule_id, agg.c.mean, agg.c.n, agg.c.worst)):
            out[(unit_id, rule_id)] = RuleStats(
                None if not n else round(float(mean), 6), int(n),
                None if worst is None else float(worst),
                worst_days.get((unit_id, rule_id)) if n else None)
    return out


def rows_on(conn: Connection, unit_ids: Iterable[int], day: date) -> dict[tuple[int, str], Any]:
    """compliance_daily rows of one day per unit x rule."""
    out = {}
    for ids in _chunks(unit_ids):
        for row in conn.execute(select(compliance_daily).where(
                compliance_daily.c.day == day, compliance_daily.c.unit_id.in_(ids))):
            out[(row.unit_id, row.rule_id)] = row
    return out


def coverage_means(conn: Connection, unit_ids: Iterable[int], first: date, last: date
                   ) -> dict[int, float | None]:
    """Mean over closed days of active / machines (days with machines) per unit."""
    hu = history_units.c
    out: dict[int, float | None] = {}
    for ids in _chunks(unit_ids):
        for unit_id, value in conn.execute(
                select(hu.unit_id, func.avg(cast(hu.active, Float) / hu.machines))
                .where(hu.unit_id.in_(ids), hu.day.in_(_closed(first, last)), hu.machines > 0)
                .group_by(hu.unit_id)):
            out[unit_id] = None if value is None else round(float(value), 6)
    return out


@dataclass(frozen=True)
class DayScore:
    attainment: float  # sum_r w_r * min(1, ratio / target) / sum_r w_r
    weight: float  # sum_r w_r (0: no rule measured that day)


def day_attainments(conn: Connection, unit_ids: Iterable[int], days: Sequence[date],
                    rules: Sequence[tuple[str, float, float]]
                    ) -> dict[tuple[int, date], DayScore]:
    """The ranking's A_d per unit x closed day, summed by the database. `rules`: (rule
    id, weight, target when the row has none)."""
    if not days or not rules:
        return {}
    cd = compliance_daily.c
    weight = case({r: literal(w, Float) for r, w, _t in rules}, value=cd.rule_id,
                  else_=literal(0.0, Float))
    target = func.coalesce(cd.target, case({r: literal(t, Float) for r, _w, t in rules},
                                           value=cd.rule_id, else_=literal(1.0, Float)))
    share = case((target <= 0, literal(1.0, Float)),
                 (cd.ratio / target > 1.0, literal(1.0, Float)), else_=cd.ratio / target)
    out = {}
    for ids in _chunks(unit_ids):
        for unit_id, day, num, den in conn.execute(
                select(cd.unit_id, cd.day, func.sum(weight * share), func.sum(weight))
                .where(cd.unit_id.in_(ids), cd.day.between(days[0], days[-1]),
                       cd.day.in_(_closed(days[0], days[-1])), cd.ratio.is_not(None),
                       cd.rule_id.in_([r for r, _w, _t in rules]))
                .group_by(cd.unit_id, cd.day)):
            den = float(den or 0)
            out[(unit_id, day)] = DayScore(float(num) / den if den else 0.0, den)
    return out


def unit_day_counts(conn: Connection, unit_ids: Iterable[int], days: Sequence[date]
                    ) -> dict[tuple[int, date], tuple[int, int]]:
    """(active, machines) per unit x closed day."""
    hu = history_units.c
    out = {}
    for ids in _chunks(unit_ids):
        for unit_id, day, active, machines in conn.execute(
                select(hu.unit_id, hu.day, hu.active, hu.machines)
                .where(hu.unit_id.in_(ids), hu.day.in_(_closed(days[0], days[-1])))):
            out[(unit_id, day)] = (active, machines)
    return out


def stats_for(stats: Mapping[tuple[int, str], RuleStats], unit_id: int, rule_id: str
              ) -> RuleStats:
    return stats.get((unit_id, rule_id), RuleStats(None, 0, None, None))


__all__ = ["DayScore", "RuleStats", "coverage_means", "day_attainments", "rows_on",
           "rule_stats", "stats_for", "unit_day_counts"]
