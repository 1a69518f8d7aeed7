"""validate: the report against the schema and against the agent that sends it."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from kiemke.collector.pipeline.base import Ingest, Rejected
from kiemke.collector.timeutil import parse_iso, utcnow
from kiemke.collector.validation import Validator, check_report


class ValidateStep:
    """Schema (kiemke/schema/report-v1.json), a real collected_at within the clock bounds,
    and the machine the agent enrolled as. Before the transaction: a bad report costs no
    write."""

    name: ClassVar[str] = "validate"
    in_transaction: ClassVar[bool] = False

    def __init__(self, validate: Validator, max_clock_skew: timedelta,
                 max_report_age: timedelta) -> None:
        self.validate = validate
        self.max_clock_skew, self.max_report_age = max_clock_skew, max_report_age

    def run(self, ingest: Ingest) -> None:
        report = ingest.report
        problem = check_report(self.validate, report)
        if problem:
            raise Rejected(400, problem.error, problem.field, problem.message)
        check_clock(report["collected_at"], self.max_clock_skew, self.max_report_age)
        if report["identity"]["machine_id"] != ingest.agent.machine_id:
            raise Rejected(403, "machine_mismatch", "identity.machine_id",
                           "this report is about another machine than the one the agent "
                           "enrolled as; enrol the agent again on this machine")


def check_clock(text: str, max_skew: timedelta, max_age: timedelta) -> None:
    """collected_at must be a real time within [now - max_age, now + max_skew]: a machine
    whose clock is in the future (9999-12-31) or the past (1900, 0001) would otherwise
    decide or skew its own current state and history (issue 11)."""
    try:
        collected = parse_iso(text)
    except (ValueError, OverflowError):
        raise Rejected(400, "invalid_field", "collected_at",
                       f"collected_at {text!r} is not a real date and time; check the clock "
                       f"of the reporting machine") from None
    now = utcnow()
    if collected > now + max_skew:
        raise Rejected(400, "clock_skew", "collected_at",
                       f"collected_at {text} is {span(collected - now)} ahead of the "
                       f"collector's clock, more than the allowed skew of {span(max_skew)} "
                       f"(KIEMKE_MAX_CLOCK_SKEW); set the machine's clock right (time "
                       f"synchronisation) and the agent sends again")
    if collected < now - max_age:
        raise Rejected(400, "clock_skew", "collected_at",
                       f"collected_at {text} is {span(now - collected)} in the past, older "
                       f"than the {span(max_age)} a report may be (KIEMKE_MAX_REPORT_AGE); "
                       f"set the machine's clock right (time synchronisation)")


def span(delta: timedelta) -> str:
    """3 h, 2.5 d, 15 min, 40 s."""
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}".replace(".0 ", " ")
    return f"{seconds} s"
