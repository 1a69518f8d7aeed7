"""Report periods in the local calendar: 2026-11, 2026-Q4, 2026, 2026-11-03..2026-11-20.

A period is a run of whole local days [first, last]. Reports only read closed days
(history_days), so a period still running is reported up to its last closed day and
says so; a period that has not begun is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo


class PeriodError(ValueError):
    """A period that cannot be read; `field` names the parameter."""

    def __init__(self, message: str, field: str = "period") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Period:
    kind: str  # month | quarter | year | range
    first: date
    last: date  # inclusive
    text: str  # canonical text: 2026-11, 2026-Q4, 2026, 2026-11-03..2026-11-20

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def each_day(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range(self.days)]

    def previous(self) -> Period:
        """The period before: the month, quarter or year before, or a range as long."""
        if self.kind == "month":
            return month(*_shift_month(self.first.year, self.first.month, -1))
        if self.kind == "quarter":
            year, q = self.first.year, (self.first.month - 1) // 3 + 1
            return quarter(year - 1, 4) if q == 1 else quarter(year, q - 1)
        if self.kind == "year":
            return year_period(self.first.year - 1)
        last = self.first - timedelta(days=1)
        first = last - timedelta(days=self.days - 1)
        return Period("range", first, last, f"{first.isoformat()}..{last.isoformat()}")

    def label(self, lang: str) -> str:
        """'tháng 11 năm 2026', 'quý IV năm 2026', 'năm 2026', 'từ ngày … đến ngày …'."""
        f, la = self.first, self.last
        if lang == "vi":
            if self.kind == "month":
                return f"tháng {f.month} năm {f.year}"
            if self.kind == "quarter":
                return f"quý {ROMAN[(f.month - 1) // 3]} năm {f.year}"
            if self.kind == "year":
                return f"năm {f.year}"
            return f"từ ngày {vi_date(f)} đến ngày {vi_date(la)}"
        if self.kind == "month":
            return f"{f.strftime('%B')} {f.year}"
        if self.kind == "quarter":
            return f"Q{(f.month - 1) // 3 + 1} {f.year}"
        if self.kind == "year":
            return f"the year {f.year}"
        return f"{f.isoformat()} to {la.isoformat()}"


ROMAN = ("I", "II", "III", "IV")


def vi_date(day: date) -> str:
    return f"{day.day:02d}/{day.month:02d}/{day.year}"


def _shift_month(year: int, month_: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month_ - 1) + delta
    return index // 12, index % 12 + 1


def month(year: int, month_: int) -> Period:
    first = date(year, month_, 1)
    ny, nm = _shift_month(year, month_, 1)
    return Period("month", first, date(ny, nm, 1) - timedelta(days=1), f"{year:04d}-{month_:02d}")


def quarter(year: int, q: int) -> Period:
    first = date(year, 3 * (q - 1) + 1, 1)
    ny, nm = _shift_month(year, 3 * (q - 1) + 1, 3)
    return Period("quarter", first, date(ny, nm, 1) - timedelta(days=1), f"{year:04d}-Q{q}")


def year_period(year: int) -> Period:
    return Period("year", date(year, 1, 1), date(year, 12, 31), f"{year:04d}")


_MONTH = re.compile(r"(\d{4})-(\d{1,2})")
_QUARTER = re.compile(r"(\d{4})-[Qq]([1-4])")
_YEAR = re.compile(r"(\d{4})")
_DAY = r"\d{4}-\d{2}-\d{2}"
_RANGE = re.compile(rf"({_DAY})\.\.({_DAY})")
FORMS = "2026-11 (a month), 2026-Q4 (a quarter), 2026 (a year) or 2026-11-01..2026-11-15"


def parse_period(text: str, today: date | None = None, *, field: str = "period") -> Period:
    """Parse a period; with `today` (local), refuse one that has not begun yet."""
    raw = (text or "").strip()
    period = _parse(raw, field)
    if today is not None and period.first > today:
        raise PeriodError(f"{field} {raw!r} has not begun yet (today is {today.isoformat()} "
                          f"local time): choose a period that has started", field)
    return period


def _parse(raw: str, field: str) -> Period:
    if not raw:
        raise PeriodError(f"{field} is missing: give {FORMS}", field)
    try:
        if m := _QUARTER.fullmatch(raw):
            return quarter(int(m[1]), int(m[2]))
        if m := _MONTH.fullmatch(raw):
            if not 1 <= int(m[2]) <= 12:
                raise PeriodError(f"{field} {raw!r}: the month must be 1 to 12", field)
            return month(int(m[1]), int(m[2]))
        if m := _YEAR.fullmatch(raw):
            return year_period(int(m[1]))
        if m := _RANGE.fullmatch(raw):
            first, last = date.fromisoformat(m[1]), date.fromisoformat(m[2])
            if last < first:
                raise PeriodError(f"{field} {raw!r}: the range ends before it begins", field)
            if (last - first).days > 3660:
                raise PeriodError(f"{field} {raw!r}: a range is limited to ten years", field)
            return Period("range", first, last, f"{first.isoformat()}..{last.isoformat()}")
    except ValueError as exc:
        if isinstance(exc, PeriodError):
            raise
        raise PeriodError(f"{field} {raw!r} is not a real date ({exc})", field) from None
    raise PeriodError(f"{field} {raw!r} is not a period: give {FORMS}", field)


def day_end(day: date, timezone: str) -> datetime:
    """The instant the local day ends (the next local midnight), aware."""
    return datetime.combine(day + timedelta(days=1), time(0), ZoneInfo(timezone))


def day_start(day: date, timezone: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(timezone))


def local_day(instant: datetime, timezone: str) -> date:
    return instant.astimezone(ZoneInfo(timezone)).date()
