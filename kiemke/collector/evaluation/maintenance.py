"""The periodic maintenance pass in a background thread (one per app and process).

Every worker of every instance runs the thread; a pass runs once across all of them: the
`maintenance` lock (kiemke.collector.db.job_locks) keeps passes from overlapping, and
Evaluator.claim_maintenance lets one process per interval do it.
"""

from __future__ import annotations

import logging
import threading
import weakref

from kiemke.collector.db.job_locks import exclusive, holder_id
from kiemke.collector.evaluation.evaluator import Evaluator
from kiemke.collector.timeutil import utcnow

log = logging.getLogger(__name__)


class MaintenanceThread(threading.Thread):
    """Runs Evaluator.maintain every `interval` seconds until the app is gone."""

    def __init__(self, evaluator: Evaluator, interval: float) -> None:
        super().__init__(name="kiemke-maintenance", daemon=True)
        self._ref = weakref.ref(evaluator)  # a test's discarded app ends the thread
        self.interval = interval
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            evaluator = self._ref()
            if evaluator is None:
                return
            try:
                run_once(evaluator, self.interval)
            except Exception as exc:  # noqa: BLE001 - keep the thread; retry next pass
                log.warning("compliance maintenance pass failed (retrying in %.0f s): %s",
                            self.interval, exc)
            del evaluator

    def stop(self) -> None:
        self.stop_event.set()


def run_once(evaluator: Evaluator, interval: float) -> bool:
    """One pass, when this process gets the lock and the interval's claim; True if it ran."""
    now = utcnow()
    with exclusive(evaluator.engine, "maintenance", now) as got:
        if not got or not evaluator.claim_maintenance(now, interval):
            return False
        stats = evaluator.maintain(now)
    log.debug("maintenance pass of %s by %s: %s unit results, %s daily rows",
             now.isoformat(), holder_id(), stats["unit_results_written"], stats["daily_rows"])
    return True
