"""validate: the report against the schema and against the agent that sends it."""

from __future__ import annotations

from typing import ClassVar

from kiemke.collector.pipeline.base import Ingest, Rejected
from kiemke.collector.timeutil import parse_iso
from kiemke.collector.validation import Validator, check_report


class ValidateStep:
    """Schema (kiemke/schema/report-v1.json), a real collected_at, and the machine the
    agent enrolled as. Before the transaction: a bad report costs no write."""

    name: ClassVar[str] = "validate"
    in_transaction: ClassVar[bool] = False

    def __init__(self, validate: Validator) -> None:
        self.validate = validate

    def run(self, ingest: Ingest) -> None:
        report = ingest.report
        problem = check_report(self.validate, report)
        if problem:
            raise Rejected(400, problem.error, problem.field, problem.message)
        try:
            parse_iso(report["collected_at"])
        except ValueError:
            raise Rejected(400, "invalid_field", "collected_at",
                           f"collected_at {report['collected_at']!r} is not a real date and "
                           f"time; check the clock of the reporting machine") from None
        if report["identity"]["machine_id"] != ingest.agent.machine_id:
            raise Rejected(403, "machine_mismatch", "identity.machine_id",
                           "this report is about another machine than the one the agent "
                           "enrolled as; enrol the agent again on this machine")
