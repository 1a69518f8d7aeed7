"""changes: bump the change versions for what this report changed, last."""

from __future__ import annotations

from typing import ClassVar

from kiemke.collector import changes
from kiemke.collector.pipeline.base import Ingest


class ChangesStep:
    """kiemke.collector.changes.flush: one COMPLIANCE bump with the unit x rule blocks the
    earlier steps recorded, as the last lock of the report's work (the machines and units
    topics are bumped by triggers, with the rows). In a group-commit batch the next
    report's work follows it; the ingest lock (pipeline/group_commit.py) keeps batches
    from deadlocking on the version row."""

    name: ClassVar[str] = "changes"
    in_transaction: ClassVar[bool] = True

    def run(self, ingest: Ingest) -> None:
        changes.flush(ingest.db)
