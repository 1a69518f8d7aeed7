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

One ingest writer at a time across processes, on both databases. SQLite: the batch's
transaction begins IMMEDIATE (write_transaction) and waits for the lock with the busy
timeout. PostgreSQL: it first takes a transaction-scoped advisory lock (INGEST_LOCK_KEY,
every process and instance the same). Without it two processes' batches formed lock
cycles: every report of a unit updates the unit's shared rows (rule counts, unit rules,
the change version), so batch A held those after its first report and waited for a
machine that batch B had locked before B waited for them; PostgreSQL then aborted one
("deadlock detected", answered 503). The rows the reports share are locked by nearly
every ingest transaction until its commit anyway, so serialising the batches costs
little; group commit keeps the throughput. A transaction that PostgreSQL still rolls
back (a deadlock or serialization failure against another writer: an administrator's
change, the re-evaluation pass) is run again, up to ROLLBACK_RETRIES times, before its
error reaches the report.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text
from sqlalchemy import exc as sa_exc

from kiemke.collector.db.engine import write_transaction

log = logging.getLogger(__name__)

MAX_BATCH = 32  # reports per transaction: bounds how long one batch holds the lock
IDLE_EXIT = 30.0  # seconds without work after which the committer thread ends
INGEST_LOCK_KEY = 0x6B69656D6B6520  # "kiemke" + 0x20; the job locks use 0x09..0x12
ROLLBACK_RETRIES = 3  # runs again of a transaction PostgreSQL rolled back (SQLSTATE 40xxx)

Work = Callable[[Connection], None]

_LIVE: weakref.WeakSet[GroupCommitter] = weakref.WeakSet()  # this process's committers


@contextmanager
def ingest_transaction(engine: Engine) -> Iterator[Connection]:
    """write_transaction, holding the ingest lock on PostgreSQL until the commit."""
    with write_transaction(engine) as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": INGEST_LOCK_KEY})
        yield conn


def rolled_back_by_server(exc: BaseException) -> bool:
    """A deadlock or serialization failure (SQLSTATE class 40): safe to run again."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, sa_exc.DBAPIError) and isinstance(code, str) \
        and code.startswith("40")


def stop_all(timeout: float = 10.0) -> None:
    """End the thread of every committer of this process (each restarts with its next
    report): for a caller that needs this process to run one thread only, as the
    re-evaluation pass does before it forks (evaluation/bulk.py)."""
    for committer in list(_LIVE):
        committer.stop(timeout)


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
        self._stopping = False
        self.batches = 0  # transactions committed with more than one report (tests, bench)
        _LIVE.add(self)

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

    def stop(self, timeout: float = 10.0) -> None:
        """End the committer thread once its queue is empty; a later submit starts
        another. For a caller that needs this process to run one thread only: the
        re-evaluation pass forks its workers only then (evaluation/bulk.py)."""
        with self._cond:
            thread = self._thread
            self._stopping = True
            self._cond.notify_all()
        try:
            if thread is not None:
                thread.join(timeout)
        finally:
            with self._cond:
                self._stopping = False

    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._stopping:
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
                with ingest_transaction(self.engine) as conn:
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
            for attempt in range(ROLLBACK_RETRIES + 1):
                try:
                    with ingest_transaction(self.engine) as conn:
                        item.work(conn)
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                    if attempt < ROLLBACK_RETRIES and rolled_back_by_server(exc):
                        log.info("a report's transaction was rolled back by the database "
                                 "(%s); running it again", type(getattr(exc, "orig", exc)).__name__)
                        continue
                    item.error = exc
                break
            item.done.set()
