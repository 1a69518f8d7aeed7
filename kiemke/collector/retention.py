"""Retention of raw reports: rows of `reports` older than KIEMKE_REPORT_RETENTION_DAYS
(default 30, 0 = keep all) are deleted, in small batches so ingest never waits long.

What reads raw reports, and why deleting old ones loses nothing it needs:
- ingest: a re-sent report is recognised by its id (the primary key) — agents re-send
  within the weeks their spool keeps a report, hence the 7-day minimum;
- the daily history job: a machine back from stale starts at its first report after
  the stale interval began (recent reports only);
- the console's machine page: the machine's last 20 reports.
Period reports and the ranking read the history tables (kiemke.collector.reports), the
asset register and depreciation read `machines` (the current facts): none of them read
old raw reports. The latest report of every machine is always kept (its newest row and
the row `machines.last_report_id` names), however old.

Runs once across instances: the `retention` lock and an hourly claim
(kiemke.collector.db.job_locks); every worker starts a RetentionThread.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, func, select, tuple_

from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.job_locks import claim_every, exclusive, holder_id
from kiemke.collector.db.tables import machines, reports
from kiemke.collector.timeutil import utcnow

log = logging.getLogger(__name__)

LOCK = "retention"
EVERY = timedelta(hours=1)
BATCH = 500  # rows per delete transaction: well under 0.1 s of the write lock
PAUSE = 0.05  # seconds between batches, so ingest's transactions go first


def _prunable(cutoff: datetime) -> Any:
    newer = reports.alias("newer")
    newest = exists().where(newer.c.machine_id == reports.c.machine_id,
                            newer.c.received_at > reports.c.received_at)
    current = exists().where(machines.c.machine_id == reports.c.machine_id,
                             machines.c.last_report_id == reports.c.report_id)
    return and_(reports.c.received_at < cutoff, newest, ~current)


def prune_reports(engine: Engine, retention_days: int, now: datetime | None = None, *,
                  batch: int = BATCH, pause: float = PAUSE) -> dict[str, Any]:
    """Delete raw reports received before now - retention_days, except each machine's
    latest; returns {"deleted", "cutoff", "batches", "longest_batch_s"} (the longest
    a delete transaction held the write lock) or {"skipped": why}."""
    now = now or utcnow()
    if retention_days <= 0:
        return {"skipped": "KIEMKE_REPORT_RETENTION_DAYS=0 keeps every report"}
    cutoff = now - timedelta(days=retention_days)
    deleted = batches = 0
    longest = 0.0
    with exclusive(engine, LOCK, now) as got:
        if not got:
            return {"skipped": "another collector instance is pruning"}
        while True:
            began = time.perf_counter()
            with write_transaction(engine) as conn:
                keys = [tuple(r) for r in conn.execute(
                    select(reports.c.machine_id, reports.c.report_id)
                    .where(_prunable(cutoff)).limit(batch))]
                if keys:
                    conn.execute(delete(reports).where(
                        tuple_(reports.c.machine_id, reports.c.report_id).in_(keys)))
            longest = max(longest, time.perf_counter() - began)
            deleted += len(keys)
            batches += 1
            if len(keys) < batch:
                break
            time.sleep(pause)
    return {"deleted": deleted, "cutoff": cutoff.isoformat(), "batches": batches,
            "longest_batch_s": round(longest, 4)}


def report_counts(engine: Engine) -> tuple[int, datetime | None]:
    """(rows in `reports`, the oldest received_at): for the CLI and tests."""
    with engine.connect() as conn:
        row = conn.execute(select(func.count(), func.min(reports.c.received_at))).one()
    return int(row[0]), row[1]


class RetentionThread(threading.Thread):
    """Prunes at start-up and then every hour, in one process of one instance at a time."""

    def __init__(self, engine: Engine, retention_days: int) -> None:
        super().__init__(name="kiemke-retention", daemon=True)
        self._ref = weakref.ref(engine)  # a discarded app's engine ends the thread
        self.retention_days = retention_days
        self.stop_event = threading.Event()

    def run(self) -> None:
        wait = 10.0  # let the app finish starting
        while not self.stop_event.wait(wait):
            wait = EVERY.total_seconds()
            engine = self._ref()
            if engine is None:
                return
            try:
                now = utcnow()
                if claim_every(engine, LOCK, now, EVERY * 0.9):
                    stats = prune_reports(engine, self.retention_days, now)
                    log.info("raw report retention by %s (%d days): %s", holder_id(),
                             self.retention_days, stats)
            except Exception as exc:  # noqa: BLE001 - keep the thread; retry later
                log.warning("raw report retention failed (retrying in 5 minutes): %s", exc)
                wait = 300.0
            del engine

    def stop(self) -> None:
        self.stop_event.set()
