"""Straight-line depreciation at month boundaries (Thông tư 23/2023/TT-BTC: 5 years, 20%)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from kiemke.compliance import depreciation as dep
from kiemke.compliance.config import DEFAULT_DEPRECIATION

D = dt.date
CFG = DEFAULT_DEPRECIATION


@pytest.mark.parametrize(("start", "at", "months"), [
    (D(2020, 1, 31), D(2020, 2, 28), 0),   # Feb 2020 has 29 days: not yet a month
    (D(2020, 1, 31), D(2020, 2, 29), 1),   # last day of a shorter month completes it
    (D(2021, 1, 31), D(2021, 2, 28), 1),
    (D(2020, 2, 29), D(2021, 2, 28), 12),  # leap day anniversary
    (D(2020, 2, 29), D(2021, 2, 27), 11),
    (D(2019, 9, 10), D(2024, 9, 9), 59),
    (D(2019, 9, 10), D(2024, 9, 10), 60),
    (D(2024, 5, 1), D(2024, 4, 30), 0),    # purchase in the future
])
def test_age_months(start: dt.date, at: dt.date, months: int) -> None:
    assert dep.age_months(start, at) == months


def test_add_months_clamps_the_day() -> None:
    assert dep.add_months(D(2020, 1, 31), 1) == D(2020, 2, 29)
    assert dep.add_months(D(2021, 1, 31), 1) == D(2021, 2, 28)
    assert dep.add_months(D(2024, 12, 15), 13) == D(2026, 1, 15)


def test_book_value_month_by_month_from_the_purchase_month() -> None:
    cost = 18_000_000  # 300,000 đồng a month over 60 months
    start = D(2020, 1, 31)
    assert dep.book_value(cost, start, D(2020, 1, 31), 5) == 18_000_000
    assert dep.book_value(cost, start, D(2020, 2, 1), 5) == 17_700_000  # January charged
    assert dep.book_value(cost, start, D(2021, 1, 1), 5) == 14_400_000  # 20 % a year
    assert dep.book_value(cost, start, D(2024, 12, 31), 5) == 300_000   # one day before
    assert dep.book_value(cost, start, D(2025, 1, 1), 5) == 0
    assert dep.book_value(cost, start, D(2030, 6, 1), 5) == 0
    # next_month convention: charging starts in February
    assert dep.book_value(cost, start, D(2020, 2, 1), 5, "next_month") == 18_000_000
    assert dep.fully_depreciated_on(start, 5, "next_month") == D(2025, 2, 1)


def test_statuses_around_full_depreciation_and_overdue() -> None:
    start = D(2020, 1, 31)
    kw = {"config": CFG, "chassis": "desktop", "purchase_date": start, "cost": 18_000_000}
    one_day_before = dep.assess(at=D(2024, 12, 31), **kw)
    assert one_day_before.status == dep.IN_SERVICE
    assert one_day_before.fully_depreciated_on == D(2025, 1, 1)
    assert one_day_before.book_value == 300_000
    assert (one_day_before.age_years, one_day_before.age_months) == (4, 11)
    assert one_day_before.replacement_year == 2025
    done = dep.assess(at=D(2025, 1, 31), **kw)  # exactly five years
    assert done.status == dep.FULLY_DEPRECIATED and done.book_value == 0
    assert (done.age_years, done.age_months) == (5, 0)
    assert dep.assess(at=D(2025, 12, 31), **kw).status == dep.FULLY_DEPRECIATED
    late = dep.assess(at=D(2026, 1, 1), **kw)  # 12 months after full depreciation
    assert late.status == dep.OVERDUE and late.replacement_year == 2026
    strict = replace(CFG, overdue_after_months=0)
    assert dep.assess(at=D(2025, 1, 1), **{**kw, "config": strict}).status == dep.OVERDUE


def test_estimated_from_manufacture_date_and_unknowns() -> None:
    est = dep.assess(at=D(2024, 5, 6), config=CFG, chassis="laptop",
                     manufacture_date=D(2019, 9, 10), cost=20_000_000)
    assert est.status == dep.IN_SERVICE and est.estimated is True
    assert est.category == "laptop_computer" and est.useful_life_years == 5
    assert est.book_value is None  # no value from an estimated date
    assert est.fully_depreciated_on == D(2024, 9, 1)
    vm = dep.assess(at=D(2024, 5, 6), config=CFG, chassis="virtual",
                    manufacture_date=D(2019, 9, 10))
    assert vm.status == dep.UNKNOWN and "chassis 'virtual'" in vm.reason
    nodate = dep.assess(at=D(2024, 5, 6), config=CFG, chassis="desktop")
    assert nodate.status == dep.UNKNOWN and nodate.useful_life_years == 5
    # the asset register's category wins over the chassis
    reg = dep.assess(at=D(2024, 5, 6), config=CFG, chassis="desktop", category="laptop_computer",
                     purchase_date=D(2023, 1, 1))
    assert reg.category == "laptop_computer" and reg.estimated is False
