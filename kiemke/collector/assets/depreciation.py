"""Per-machine depreciation on the collector, on top of kiemke.compliance.depreciation.

The arithmetic is the engine's (assess, book_value, age_months). This module decides
what to store per machine (inputs and the dates derived from them, none of which move
with the calendar) and derives what does move (status, age, book value, replacement
year) for a given day: per machine for the API, and for all machines at once in one SQL
GROUP BY for /metrics. "Today" is the UTC date, as for the facts rules evaluate.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, func, literal, select

from kiemke.collector.db.asset_tables import machine_depreciation as md
from kiemke.compliance import depreciation as engine
from kiemke.compliance.config import DepreciationConfig
from kiemke.compliance.facts import to_date

# Status names on the wire and in metrics (docs/design.md); the engine says
# "overdue_for_replacement" for OVERDUE.
IN_SERVICE, FULLY_DEPRECIATED, OVERDUE, UNKNOWN = ("in_service", "fully_depreciated", "overdue",
                                                   "unknown")
STATUSES = (IN_SERVICE, FULLY_DEPRECIATED, OVERDUE, UNKNOWN)
_FROM_ENGINE = {engine.IN_SERVICE: IN_SERVICE, engine.FULLY_DEPRECIATED: FULLY_DEPRECIATED,
                engine.OVERDUE: OVERDUE, engine.UNKNOWN: UNKNOWN}
AGE_BUCKETS = (*(str(n) for n in range(10)), "10+", "unknown")
FORECAST_YEARS = 6  # this year and the next five: one whole 5-year life cycle


def utc_today(now: dt.datetime) -> dt.date:
    return now.astimezone(dt.timezone.utc).date()


def compute_row(*, machine_id: str, unit_id: int, report: dict[str, Any] | None,
                asset: dict[str, Any] | None, config: DepreciationConfig,
                keys: tuple[str | None, str | None, str | None], now: dt.datetime
                ) -> dict[str, Any]:
    """The machine_depreciation row for a machine (without updated_at)."""
    hardware = (report or {}).get("hardware") or {}
    made = hardware.get("manufacture_date") or {}
    result = engine.assess(
        at=utc_today(now), config=config, chassis=hardware.get("chassis"),
        purchase_date=asset["purchase_date"] if asset else None,
        cost=asset.get("cost") if asset else None,
        category=asset.get("category") if asset else None,
        manufacture_date=to_date(made.get("value")),
        manufacture_estimated=bool(made.get("estimated", True)))
    done = result.fully_depreciated_on
    return {
        "machine_id": machine_id, "unit_id": unit_id,
        "asset_id": asset["id"] if asset else None,
        "serial_key": keys[0], "tag_key": keys[1], "host_key": keys[2],
        "category": result.category, "estimated": bool(result.estimated),
        "start_date": result.start_date if done else None,
        "cost": asset.get("cost") if asset and not result.estimated else None,
        "useful_life_years": result.useful_life_years,
        "fully_depreciated_on": done,
        "overdue_from": engine.add_months(done, config.overdue_after_months) if done else None,
        "reason": result.reason or None,
    }


@dataclass(frozen=True)
class MachineDepreciation:
    """What the API shows for one machine on one day."""

    status: str
    estimated: bool
    category: str | None
    useful_life_years: int | None
    start_date: dt.date | None
    age_years: int | None
    age_months: int | None
    book_value: int | None
    cost: int | None
    fully_depreciated_on: dt.date | None
    replacement_year: int | None
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "estimated": self.estimated, "category": self.category,
            "useful_life_years": self.useful_life_years,
            "start_date": self.start_date.isoformat() if self.start_date else None,
            "age": None if self.age_years is None else
            {"years": self.age_years, "months": self.age_months},
            "cost": self.cost, "book_value": self.book_value,
            "fully_depreciated_on": self.fully_depreciated_on.isoformat()
            if self.fully_depreciated_on else None,
            "replacement_year": self.replacement_year, "reason": self.reason,
        }


def on_day(row: Any, today: dt.date, config: DepreciationConfig) -> MachineDepreciation:
    """A stored machine_depreciation row as of `today`, through the engine."""
    if row.fully_depreciated_on is None or row.start_date is None:
        return MachineDepreciation(UNKNOWN, bool(row.estimated), row.category,
                                   row.useful_life_years, None, None, None, None, None, None,
                                   None, row.reason)
    estimated = bool(row.estimated)
    result = engine.assess(
        at=today, config=config, chassis=None, category=row.category,
        purchase_date=None if estimated else row.start_date, cost=row.cost,
        manufacture_date=row.start_date if estimated else None, manufacture_estimated=True)
    return MachineDepreciation(_FROM_ENGINE[result.status], estimated, result.category,
                               result.useful_life_years, result.start_date, result.age_years,
                               result.age_months, result.book_value, row.cost,
                               result.fully_depreciated_on, result.replacement_year,
                               result.reason or row.reason)


def age_cutoffs(today: dt.date, max_years: int = 10) -> list[dt.date]:
    """c[k-1] = the latest start date at which a machine is at least k whole years old today.

    Follows engine.age_months: a month is complete on the same day of a later month, or
    on that month's last day when it is shorter (29 Feb 2020 is one year old on 28 Feb 2021).
    """
    last_day = today.day == calendar.monthrange(today.year, today.month)[1]
    out = []
    for k in range(1, max_years + 1):
        year = today.year - k
        days = calendar.monthrange(year, today.month)[1]
        out.append(dt.date(year, today.month, days if last_day else min(today.day, days)))
    return out


def status_expr(today: dt.date) -> Any:
    """The status on `today` as a SQL expression over machine_depreciation (engine rules)."""
    done, overdue = md.c.fully_depreciated_on, md.c.overdue_from
    return case((done.is_(None), literal(UNKNOWN)), (done > today, literal(IN_SERVICE)),
                (overdue > today, literal(FULLY_DEPRECIATED)), else_=literal(OVERDUE))


def _grouping_subquery(today: dt.date) -> Any:
    done, start = md.c.fully_depreciated_on, md.c.start_date
    status = status_expr(today)
    # A machine past its life counts in this year's forecast until it is replaced.
    year_whens = [(done.is_(None), literal(None)), (done < dt.date(today.year + 1, 1, 1),
                                                    literal(today.year))]
    year_whens += [(done < dt.date(today.year + n + 1, 1, 1), literal(today.year + n))
                   for n in range(1, FORECAST_YEARS)]
    year = case(*year_whens, else_=literal(None))
    cutoffs = age_cutoffs(today)
    age = case((start.is_(None), literal(-1)),
               *[(start > c, literal(k)) for k, c in enumerate(cutoffs)], else_=literal(10))
    return select(md.c.unit_id.label("unit_id"), md.c.estimated.label("estimated"),
                  status.label("status"), year.label("year"), age.label("age")).subquery()


@dataclass
class Aggregates:
    """Direct (not rolled up) counts per unit, as of one day."""

    by_status: dict[tuple[int, tuple[str, bool]], float]
    forecast: dict[tuple[int, int], float]
    by_age: dict[tuple[int, str], float]
    years: list[int]


def aggregate(conn: Connection, today: dt.date, unit_ids: list[int] | None = None
              ) -> Aggregates:
    """One GROUP BY over machine_depreciation; the subquery keeps PostgreSQL's GROUP BY
    valid (the CASE expressions carry bound dates)."""
    sub = _grouping_subquery(today)
    query = select(sub.c.unit_id, sub.c.estimated, sub.c.status, sub.c.year, sub.c.age,
                   func.count()).group_by(sub.c.unit_id, sub.c.estimated, sub.c.status,
                                          sub.c.year, sub.c.age)
    if unit_ids is not None:
        query = query.where(sub.c.unit_id.in_(unit_ids))
    by_status: dict[tuple[int, tuple[str, bool]], float] = defaultdict(float)
    forecast: dict[tuple[int, int], float] = defaultdict(float)
    by_age: dict[tuple[int, str], float] = defaultdict(float)
    for unit_id, estimated, status, year, age, n in conn.execute(query):
        by_status[(unit_id, (status, bool(estimated)))] += n
        if year is not None:
            forecast[(unit_id, int(year))] += n
        bucket = "unknown" if age < 0 else ("10+" if age >= 10 else str(age))
        by_age[(unit_id, bucket)] += n
    years = [today.year + n for n in range(FORECAST_YEARS)]
    return Aggregates(dict(by_status), dict(forecast), dict(by_age), years)
