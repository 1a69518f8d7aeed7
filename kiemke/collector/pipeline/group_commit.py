"""Group commit: the write transactions of concurrent reports of one process, together.

Each request thread hands its in-transaction work to this process's committer thread
and waits. The committer takes every report queued meanwhile (up to MAX_BATCH), runs
their work one after the other in ONE write transaction and commits; only then are the
waiting threads released, so each report is still answered after its own commit
(synchronous commits kept: the agent deletes a report from its spool on the 2xx).
Nothing waits for company: a lone report is committed at once, batches form only
while a commit is in progress (no added latency at low load).

When anything in a batch fails (one report's step raises, e.g. 409 for an unknown
digest, or the commit itself), the batch is rolled back and each of its reports runs
again alone in its own transaction: one bad report never fails the others, and the
work is written to be re-run from the start (Pipeline.run resets the report's state).

SQLite: one writer at a time across processes, as before: the batch's transaction
begins IMMEDIATE (write_transaction) and waits for the lock with the busy timeout.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from sqlalchemy import Connection, Engine

from kiemke.collector.db.engine import write_transaction

log = logging.getLogger(__name__)

MAX_BATCH = 32  # reports per transaction: bounds how long one batch holds the lock
IDLE_EXIT = 30.0  # seconds without work after which the committer thread ends

Work = Callable[[Connection], None]


class _Item:
    __slots__ = ("done", "error", "work")

    def __init__(self, work: Work) -> None:
        self.work = work
        self.done = threading.Event()
        self.error: BaseException | None = None


class GroupCommitter:
    """One per pipeline and process; its thread starts with the first report."""

    def __init__(self, engine: Engine, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Item] = []
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.batches = 0  # transactions committed with more than one report (tests, bench)

    def submit(self, work: Work) -> None:
        """Run `work(conn)` in a write transaction; return once it is committed, or raise
        what the work (or the commit) raised, with nothing of it written."""
        item = _Item(work)
        with self._cond:
            if self._thread is None or self._pid != os.getpid():  # none yet, or forked
                self._pid = os.getpid()
                self._queue = []
                self._thread = threading.Thread(target=self._loop, name="group-commit",
                                                daemon=True)
                self._thread.start()
            self._queue.append(item)
            self._cond.notify()
        item.done.wait()
        if item.error is not None:
            raise item.error

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._queue:
                    self._cond.wait(timeout=IDLE_EXIT)
                if not self._queue:
                    self._thread = None  # idle: the next submit starts another
                    return
                batch = self._queue[:self.max_batch]
                del self._queue[:self.max_batch]
            self._commit(batch)

    def _commit(self, batch: list[_Item]) -> None:
        if len(batch) > 1:
            try:
                with write_transaction(self.engine) as conn:
                    for item in batch:
                        item.work(conn)
            except Exception as exc:  # noqa: BLE001 - each report again alone, below
                log.debug("a batch of %d reports failed (%s: %s); each runs alone",
                          len(batch), type(exc).__name__, exc)
            else:
                self.batches += 1
                for item in batch:
                    item.done.set()
                return
        for item in batch:
            try:
                with write_transaction(self.engine) as conn:
                    item.work(conn)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                item.error = exc
            item.done.set()
