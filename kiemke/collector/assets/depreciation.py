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

from sqlalchemy import Connection, case, func, literal, literal_column, select, text
from sqlalchemy.sql.elements import ColumnClause

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
    overdue = engine.add_months(done, config.overdue_after_months) if done else None
    return {
        "machine_id": machine_id, "unit_id": unit_id,
        "asset_id": asset["id"] if asset else None,
        "serial_key": keys[0], "tag_key": keys[1], "host_key": keys[2],
        # Without a result, "estimated" still says whether the register knows the machine.
        "category": result.category,
        "estimated": bool(result.estimated) if done else asset is None,
        "start_date": result.start_date if done else None,
        "cost": asset.get("cost") if asset and not result.estimated else None,
        "useful_life_years": result.useful_life_years,
        "fully_depreciated_on": done,
        "overdue_from": overdue,
        "start_key": date_key(result.start_date) if done else None,
        "done_key": date_key(done), "overdue_key": date_key(overdue),
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


def date_key(day: dt.date | None) -> int | None:
    """2024-02-29 -> 20240229."""
    return None if day is None else day.year * 10000 + day.month * 100 + day.day


def age_key(today: dt.date) -> int:
    """Today's key for whole-year ages: (age_key - start_key) // 10000 = whole years.

    Equals engine.age_months(start, today) // 12: a year is complete on the same day, or
    on the last day of February for a 29 February start (29 Feb 2020 is one year old on
    28 Feb 2021), hence the last day of February counts as the 29th.
    """
    key = date_key(today)
    assert key is not None
    if today.month == 2 and today.day == calendar.monthrange(today.year, 2)[1]:
        return key - today.day + 29
    return key


NO_AGE = -1000
_STATUS_CODES = (UNKNOWN, IN_SERVICE, FULLY_DEPRECIATED, OVERDUE)


def status_expr(today: dt.date) -> Any:
    """The status on `today` as a SQL expression (for filtering lists by status)."""
    done, overdue, key = md.c.done_key, md.c.overdue_key, date_key(today)
    return case((done.is_(None), literal(UNKNOWN)), (done > key, literal(IN_SERVICE)),
                (overdue > key, literal(FULLY_DEPRECIATED)), else_=literal(OVERDUE))


def _int_div(expr: Any, by: int) -> Any:
    """Integer division (truncating) on SQLite and PostgreSQL; SQLAlchemy's // would add
    FLOOR(), a float function that costs as much as the rest of the query on SQLite."""
    return expr.self_group().op("/")(literal_column(str(by)))


def _grouping_query(today: dt.date) -> Any:
    """Per unit, estimated, status code, replacement year and whole years of age: a count.

    Today's keys are SQL literals (integers we computed, never user input) and the GROUP BY
    is positional: PostgreSQL then sees identical expressions, and SQLite needs no subquery
    (which would double the time).
    """
    done, overdue, start = md.c.done_key, md.c.overdue_key, md.c.start_key
    key: ColumnClause[Any] = literal_column(str(date_key(today)))
    status = case((done.is_(None), literal_column("0")), (done > key, literal_column("1")),
                  (overdue > key, literal_column("2")), else_=literal_column("3"))
    # A machine past its life counts in this year's forecast until it is replaced.
    year = case((done.is_(None), literal_column("NULL")),
                (done <= key, literal_column(str(today.year))), else_=_int_div(done, 10000))
    age = case((start.is_(None), literal_column(str(NO_AGE))),
               else_=_int_div(literal_column(str(age_key(today))) - start, 10000))
    return select(md.c.unit_id, md.c.estimated, status, year, age, func.count()
                  ).group_by(text("1, 2, 3, 4, 5"))


@dataclass
class Aggregates:
    """Direct (not rolled up) counts per unit, as of one day."""

    by_status: dict[tuple[int, tuple[str, bool]], float]
    forecast: dict[tuple[int, int], float]
    by_age: dict[tuple[int, str], float]
    years: list[int]


def aggregate(conn: Connection, today: dt.date, unit_ids: list[int] | None = None
              ) -> Aggregates:
    """One GROUP BY over machine_depreciation (direct counts; roll them up for a tree)."""
    query = _grouping_query(today)
    if unit_ids is not None:
        query = query.where(md.c.unit_id.in_(unit_ids))
    by_status: dict[tuple[int, tuple[str, bool]], float] = defaultdict(float)
    forecast: dict[tuple[int, int], float] = defaultdict(float)
    by_age: dict[tuple[int, str], float] = defaultdict(float)
    years = [today.year + n for n in range(FORECAST_YEARS)]
    for unit_id, estimated, status, year, age, n in conn.execute(query):
        by_status[(unit_id, (_STATUS_CODES[status], bool(estimated)))] += n
        if year is not None and int(year) <= years[-1]:
            forecast[(unit_id, int(year))] += n
        age = max(int(age), 0) if age != NO_AGE else -1  # a future start date is age 0
        bucket = "unknown" if age < 0 else ("10+" if age >= 10 else str(age))
        by_age[(unit_id, bucket)] += n
    return Aggregates(dict(by_status), dict(forecast), dict(by_age), years)
