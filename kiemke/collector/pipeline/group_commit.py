"""Group commit: the write transactions of concurrent reports of one process, together.

Leader and followers, on the request threads themselves (no committer thread): a
request thread that finds no commit in progress becomes the leader and runs its own
work at once, in its own write transaction (nothing waits for company: a lone report
costs no hand-over to another thread). Threads arriving while a commit is in progress
queue and wait. When a commit ends, the leader releases the reports of that batch
(each is answered only after its own commit: synchronous commits kept, the agent
deletes a report from its spool on the 2xx) and, if reports are queued, commits the
next batch of them (up to MAX_BATCH, their work one after the other in ONE write
transaction), at most LEAD_BATCHES batches in all; then it promotes the first waiting
thread to leader, which takes itself and the threads queued behind it, and returns to
its own answer. So no request thread commits others' work indefinitely: a leader's
answer waits for at most LEAD_BATCHES - 1 more commits, a follower's for the batches
ahead of it in the queue. Leading a few batches in a row, not one, is measured: each
hand-over is a thread switch (the waiting thread must get the GIL, up to the 5 ms
switch interval while the old leader answers), and in the same bench run on SQLite
promoting after every batch gave unchanged reports 0.1-0.2 ms more CPU and up to
20 % less throughput than four batches per leader (docs/performance.md).

When anything in a batch fails (one report's step raises, e.g. 409 for an unknown
digest, or the commit itself), the batch is rolled back and each of its reports runs
again alone in its own transaction: one bad report never fails the others, and the
work is written to be re-run from the start (Pipeline.run resets the report's state).
If the leader's thread is interrupted mid-batch (a BaseException that is not an
Exception: the process is going down), the followers of its batch get an error, never
a success they may not have, and the next queued thread is still promoted.

One ingest writer at a time across processes, on both databases. SQLite: the batch's
transaction begins IMMEDIATE (write_transaction) and waits for the lock with the busy
timeout. PostgreSQL: it first takes a transaction-scoped advisory lock (pipeline/
ingest_lock.py: every process and instance the same, before any row lock, in the round
trip of the transaction's first statement). Without it two processes'
batches formed lock cycles: every report of a unit updates the unit's shared rows (rule
counts, unit rules, the change version), so batch A held those after its first report
and waited for a machine that batch B had locked before B waited for them; PostgreSQL
then aborted one ("deadlock detected", answered 503). The rows the reports share are
locked by nearly every ingest transaction until its commit anyway, so serialising the
batches costs little; group commit keeps the throughput. A transaction that PostgreSQL
still rolls back (a deadlock or serialization failure against another writer: an
administrator's change, the re-evaluation pass) is run again, up to ROLLBACK_RETRIES
times, before its error reaches the report.

No thread of its own, so a process that has ingested reports still runs only its
request threads: the re-evaluation pass, which forks only from a one-thread process
(evaluation/bulk.py), needs nothing stopped first. A forked child starts with an empty
queue and no leader (os.register_at_fork): the parent's waiting threads are not in it.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from kiemke.collector.pipeline.ingest_lock import ingest_transaction

log = logging.getLogger(__name__)

MAX_BATCH = 32  # reports per transaction: bounds how long one batch holds the lock
# Batches a leader commits before it hands over (its own, then of threads queued
# meanwhile): each hand-over to a waiting thread costs a thread switch (the GIL), and a
# leader's answer waits for at most LEAD_BATCHES - 1 more commits.
LEAD_BATCHES = 4
ROLLBACK_RETRIES = 3  # runs again of a transaction PostgreSQL rolled back (SQLSTATE 40xxx)

Work = Callable[[Connection], None]

_LIVE: weakref.WeakSet[GroupCommitter] = weakref.WeakSet()  # this process's committers


def rolled_back_by_server(exc: BaseException) -> bool:
    """A deadlock or serialization failure (SQLSTATE class 40): safe to run again."""
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, sa_exc.DBAPIError) and isinstance(code, str) \
        and code.startswith("40")


class BatchInterrupted(RuntimeError):
    """The leader's thread was interrupted while it ran this report's batch."""


class _Item:
    __slots__ = ("error", "lead", "settled", "wake", "work")

    def __init__(self, work: Work) -> None:
        self.work = work
        self.wake = threading.Event()  # set when settled, or when promoted to leader
        self.lead = False  # this thread runs the next batch
        self.settled = False  # committed, or `error` holds why not
        self.error: BaseException | None = None


class GroupCommitter:
    """One per pipeline and process; the request threads commit in turns (module doc)."""

    def __init__(self, engine: Engine, max_batch: int = MAX_BATCH,
                 lead_batches: int = LEAD_BATCHES) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.lead_batches = lead_batches
        self._lock = threading.Lock()
        self._waiting: deque[_Item] = deque()  # queued behind the batch in progress
        self._busy = False  # a leader is committing (or promoting the next one)
        self.batches = 0  # transactions committed with more than one report (tests, bench)
        _LIVE.add(self)

    def submit(self, work: Work) -> None:
        """Run `work(conn)` in a write transaction; return once it is committed, or raise
        what the work (or the commit) raised, with nothing of it written."""
        item = _Item(work)
        with self._lock:
            if self._busy:
                self._waiting.append(item)
            else:
                self._busy = item.lead = True
        if not item.lead:
            item.wake.wait()  # settled by a leader, or promoted
        if item.lead:
            self._lead(item)
        if item.error is not None:
            raise item.error

    def _forked(self) -> None:
        """In a forked child: no leader, nobody waiting (those threads are the parent's)."""
        self._lock = threading.Lock()
        self._waiting = deque()
        self._busy = False

    def _lead(self, own: _Item) -> None:
        """Commit the batch that starts with `own`, then up to LEAD_BATCHES - 1 batches of
        the threads queued meanwhile (lead_batches in all), then hand over to the first
        thread still waiting."""
        first: _Item | None = own
        for turn in range(self.lead_batches):
            with self._lock:
                if first is None:
                    if not self._waiting:
                        self._busy = False
                        return
                    first = self._waiting.popleft()
                batch = [first]
                while self._waiting and len(batch) < self.max_batch:
                    batch.append(self._waiting.popleft())
            self._commit_and_release(batch, own, hand_over=turn == self.lead_batches - 1)
            first = None

    def _commit_and_release(self, batch: list[_Item], own: _Item, hand_over: bool) -> None:
        try:
            self._commit(batch)
        except BaseException:
            hand_over = True  # interrupted: this thread leads no further batch
            raise
        finally:
            with self._lock:
                promoted = self._waiting.popleft() if hand_over and self._waiting else None
                if promoted is not None:
                    promoted.lead = True
                elif hand_over:
                    self._busy = False
            if promoted is not None:
                promoted.wake.set()
            for item in batch:
                if item is own:
                    continue  # its thread is this one: submit raises or returns
                if not item.settled:  # the leader was interrupted: no success to claim
                    item.error = BatchInterrupted(
                        "the thread committing this report's batch was interrupted; "
                        "the agent sends the report again")
                item.wake.set()

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
                    item.settled = True
                return
        for item in batch:
            for attempt in range(ROLLBACK_RETRIES + 1):
                try:
                    with ingest_transaction(self.engine) as conn:
                        item.work(conn)
                except BaseException as exc:  # noqa: BLE001 - raised in the report's thread
                    if attempt < ROLLBACK_RETRIES and rolled_back_by_server(exc):
                        log.info("a report's transaction was rolled back by the database "
                                 "(%s); running it again", type(getattr(exc, "orig", exc)).__name__)
                        continue
                    item.error = exc
                break
            item.settled = True


def _after_fork_in_child() -> None:
    for committer in list(_LIVE):
        committer._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
