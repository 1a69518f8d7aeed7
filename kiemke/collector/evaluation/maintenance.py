"""The periodic maintenance pass in a background thread (one per app and process)."""

from __future__ import annotations

import logging
import threading
import weakref

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
                if evaluator.claim_maintenance(utcnow(), self.interval):
                    evaluator.maintain()
            except Exception as exc:  # noqa: BLE001 - keep the thread; retry next pass
                log.warning("compliance maintenance pass failed (retrying in %.0f s): %s",
                            self.interval, exc)
            del evaluator

    def stop(self) -> None:
        self.stop_event.set()
