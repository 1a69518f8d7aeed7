"""Straight-line depreciation of IT equipment (useful lives from rules/depreciation.yml).

Convention (docs/rules.md "Depreciation"): depreciation is month-granular. With
`start: purchase_month` the month the machine enters use is the first month charged
and each month's charge is taken at the end of that month; with `start: next_month`
charging begins the month after. A machine with a 5-year life bought on 31 Jan 2020 is
therefore charged for Jan 2020 .. Dec 2024 (60 months) and is fully depreciated on
1 Jan 2025. Book values are rounded to whole units of the currency (đồng has no subunit).
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from .config import DepreciationConfig

IN_SERVICE = "in_service"
FULLY_DEPRECIATED = "fully_depreciated"
OVERDUE = "overdue_for_replacement"
UNKNOWN = "unknown"
STATUSES = (IN_SERVICE, FULLY_DEPRECIATED, OVERDUE, UNKNOWN)


def _month_index(d: dt.date) -> int:
    return d.year * 12 + d.month - 1


def _first_of(month_index: int) -> dt.date:
    return dt.date(month_index // 12, month_index % 12 + 1, 1)


def add_months(d: dt.date, months: int) -> dt.date:
    """`d` plus whole months, clamping the day (31 Jan + 1 month = 28/29 Feb)."""
    idx = _month_index(d) + months
    year, month = idx // 12, idx % 12 + 1
    return dt.date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def age_months(start: dt.date, at: dt.date) -> int:
    """Whole calendar months from `start` to `at` (0 before start).

    A month is complete on the same day of a later month, or on that month's last day
    when it is shorter: 31 Jan -> 28 Feb is one month, 29 Feb 2020 -> 28 Feb 2021 is 12.
    """
    if at <= start:
        return 0
    months = _month_index(at) - _month_index(start)
    day_needed = min(start.day, calendar.monthrange(at.year, at.month)[1])
    if at.day < day_needed:
        months -= 1
    return max(months, 0)


def _first_charged_month(start: dt.date, convention: str) -> int:
    return _month_index(start) + (1 if convention == "next_month" else 0)


def months_charged(start: dt.date, at: dt.date, life_months: int,
                   convention: str = "purchase_month") -> int:
    """Months of depreciation charged by date `at` (a month counts once it has ended)."""
    charged = _month_index(at) - _first_charged_month(start, convention)
    return min(max(charged, 0), life_months)


def fully_depreciated_on(start: dt.date, years: int, convention: str = "purchase_month") -> dt.date:
    """First day on which nothing is left to depreciate."""
    return _first_of(_first_charged_month(start, convention) + years * 12)


def book_value(cost: float, start: dt.date, at: dt.date, years: int,
               convention: str = "purchase_month") -> int:
    """Remaining value (nguyên giá - hao mòn lũy kế) on date `at`, straight line by month."""
    life = years * 12
    left = life - months_charged(start, at, life, convention)
    return round(cost * left / life)


@dataclass(frozen=True)
class Assessment:
    """Depreciation of one machine on one date."""

    status: str
    category: str | None = None
    useful_life_years: int | None = None
    start_date: dt.date | None = None
    estimated: bool = False
    age_years: int | None = None
    age_months: int | None = None  # months beyond the whole years
    fully_depreciated_on: dt.date | None = None
    replacement_year: int | None = None
    book_value: int | None = None
    reason: str = ""


def assess(*, at: dt.date, config: DepreciationConfig, chassis: str | None,
           purchase_date: dt.date | None = None, cost: float | None = None,
           category: str | None = None, manufacture_date: dt.date | None = None,
           manufacture_estimated: bool = True) -> Assessment:
    """Assess a machine from the asset register (purchase date, cost) or, failing that,
    its manufacture date (flagged estimated when the agent estimated it)."""
    key = category or (config.chassis_category.get(chassis) if chassis else None)
    cat = config.categories.get(key) if key else None
    if cat is None:
        why = (f"category '{key}' is not in depreciation.yml" if key
               else f"no useful life configured for chassis '{chassis or 'unknown'}'")
        return Assessment(UNKNOWN, reason=why)
    if purchase_date is not None:
        start, estimated = purchase_date, False
    elif manufacture_date is not None:
        start, estimated = manufacture_date, bool(manufacture_estimated)
    else:
        return Assessment(UNKNOWN, category=cat.key, useful_life_years=cat.years,
                          reason="no purchase date in the asset register and no "
                                 "manufacture date from the machine")
    months = age_months(start, at)
    done = fully_depreciated_on(start, cat.years, config.start)
    overdue_from = add_months(done, config.overdue_after_months)
    if at < done:
        status = IN_SERVICE
    elif at < overdue_from:
        status = FULLY_DEPRECIATED
    else:
        status = OVERDUE
    value = None
    if cost is not None and not estimated:
        value = book_value(cost, start, at, cat.years, config.start)
    # A machine past its life is forecast for replacement this year if not replaced yet.
    replacement_year = max(done.year, at.year) if status != IN_SERVICE else done.year
    return Assessment(status, cat.key, cat.years, start, estimated, months // 12, months % 12,
                      done, replacement_year, value)
