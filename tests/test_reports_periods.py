"""Report periods in the local calendar (pure functions, well under a second)."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from kiemke.collector.reports.delivery import due_periods, periods_ending
from kiemke.collector.reports.periods import (
    PeriodError,
    day_end,
    local_day,
    parse_period,
)

TZ = "Asia/Ho_Chi_Minh"


@pytest.mark.parametrize(("text", "first", "last", "previous", "label"), [
    ("2026-11", date(2026, 11, 1), date(2026, 11, 30), "2026-10", "tháng 11 năm 2026"),
    ("2026-1", date(2026, 1, 1), date(2026, 1, 31), "2025-12", "tháng 1 năm 2026"),
    ("2024-02", date(2024, 2, 1), date(2024, 2, 29), "2024-01", "tháng 2 năm 2024"),
    ("2026-Q4", date(2026, 10, 1), date(2026, 12, 31), "2026-Q3", "quý IV năm 2026"),
    ("2026-q1", date(2026, 1, 1), date(2026, 3, 31), "2025-Q4", "quý I năm 2026"),
    ("2026", date(2026, 1, 1), date(2026, 12, 31), "2025", "năm 2026"),
    ("2026-11-03..2026-11-20", date(2026, 11, 3), date(2026, 11, 20),
     "2026-10-16..2026-11-02", "từ ngày 03/11/2026 đến ngày 20/11/2026"),
])
def test_periods(text, first, last, previous, label):
    p = parse_period(text)
    assert (p.first, p.last, p.previous().text, p.label("vi")) == (first, last, previous, label)
    assert p.previous().days == p.days or p.kind != "range"


@pytest.mark.parametrize(("text", "message"), [
    ("", "period is missing"), ("2026-13", "the month must be 1 to 12"),
    ("2026-Q5", "is not a period"), ("2026-02-30..2026-03-01", "is not a real date"),
    ("2026-11-20..2026-11-03", "ends before it begins"), ("Q4/2026", "is not a period"),
])
def test_malformed_periods_name_the_parameter(text, message):
    with pytest.raises(PeriodError) as exc:
        parse_period(text)
    assert message in str(exc.value) and exc.value.field == "period"


def test_a_period_that_has_not_begun_is_refused_a_running_one_is_not():
    today = local_day(datetime(2026, 11, 30, 18, 0, tzinfo=timezone.utc), TZ)
    assert today == date(2026, 12, 1)  # 01:00 local on 1 December
    assert parse_period("2026-12", today).first == today
    with pytest.raises(PeriodError, match="has not begun yet"):
        parse_period("2027", today)
    assert day_end(date(2026, 11, 30), TZ) == datetime(2026, 11, 30, 17, 0,
                                                       tzinfo=timezone.utc)


def test_which_periods_end_on_a_day():
    kinds = ("month", "quarter", "year")
    assert [p.text for p in periods_ending(date(2026, 12, 31), kinds)] == [
        "2026-12", "2026-Q4", "2026"]
    assert [p.text for p in periods_ending(date(2026, 11, 30), kinds)] == ["2026-11"]
    assert periods_ending(date(2026, 11, 29), kinds) == []
    # A failed delivery is retried for a week after the period ended.
    assert [p.text for p in due_periods(date(2026, 12, 3), ["month"])] == ["2026-11"]
    assert due_periods(date(2026, 12, 9), ["month"]) == []
