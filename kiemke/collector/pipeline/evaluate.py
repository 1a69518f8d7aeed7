"""evaluate: facts from the report, rule results, per-unit counts, unit rules."""

from __future__ import annotations

from typing import ClassVar

from kiemke.collector.evaluation.evaluator import Evaluator
from kiemke.collector.pipeline.base import Ingest


class EvaluateStep:
    """Evaluator.on_report in the ingest transaction (kiemke.collector.evaluation)."""

    name: ClassVar[str] = "evaluate"
    in_transaction: ClassVar[bool] = True

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    def run(self, ingest: Ingest) -> None:
        self.evaluator.on_report(ingest.db, ingest.machine, ingest.report)
