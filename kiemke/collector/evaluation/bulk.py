"""Full re-evaluation from stored facts, fast: compare by digest, write only changes.

A re-evaluation after a rule change usually changes few results, so the cost is in
reading and comparing, not writing. Per batch of machines (consecutive machine ids):
- the facts and each machine's `results_digest` are read once, in one row per machine
  (raw JSON text), in a read transaction: no lock is held while Python compares;
- the facts texts of a batch are decoded in one json.loads (a JSON array of them: the
  decoder's key memo then serves the whole batch), only the date facts converted;
- the digest of the machine's results (rule, result and reason in rule order, plus the
  unit id: kiemke.collector.evaluation.digest) is computed by one generated function
  (kiemke.collector.evaluation.signatures: results and reasons from a memo, hashed as
  bytes) and compared with the stored one, which
  ResultWriter keeps in the same transaction as the rows: only machines whose digests
  differ (or is NULL, e.g. right after the migration that added it) or that have a
  waiver go through ResultWriter (which keeps `since`, writes changed rows and
  rule_counts deltas, and the right digest), in a write transaction that first reads
  their rows again (locked on PostgreSQL) and evaluates again any machine whose facts
  or unit changed meanwhile;
- result rows of machine ids inside the batch's id range that have no machine any more
  are deleted (with their count deltas), so no separate orphan scan is needed;
- the unit rules' inputs of active machines are kept for the unit pass that follows.
A digest that differs for any other reason only sends the machine down the full path:
never a wrong result. Rows edited behind ResultWriter's back (by hand in SQL) are not
seen unless the machine's digest is set to NULL with them.

`run_parallel` splits the machine-id range into one part per worker process (fork):
each part is its own sequence of batch transactions, exactly as one process would run
them, so any interleaving of the parts gives the serial pass's rows and counts. On
SQLite (one writer at a time) the processes take turns for their writes with a lock of
their own; on PostgreSQL they write at the same time (their machine rows are disjoint,
count rows are locked in key order). Writes go WRITE_CHUNK machines per transaction, so
that ingest never waits for a whole batch of a first evaluation.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import pickle
import threading
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    String,
    Text,
    bindparam,
    cast,
    func,
    select,
    text,
    type_coerce,
)

from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import machines
from kiemke.collector.evaluation.digest import Outcome
from kiemke.collector.evaluation.signatures import compile_digest, compile_values, unit_prefix
from kiemke.collector.evaluation.store import ResultWriter, active_waivers, load_results
from kiemke.compliance import RuleSet, evaluate_machine
from kiemke.compliance.evaluate import ReasonMemo
from kiemke.compliance.facts import decode_stored_facts

# Machine ids in the batch's id range that have result rows and no machine (walks the
# primary keys in the database: only the orphans come back).
_RESULT_IDS = ("SELECT r.machine_id FROM (SELECT DISTINCT machine_id FROM rule_results "
               "WHERE machine_id > :lo {upper}) r WHERE NOT EXISTS "
               "(SELECT 1 FROM machines m WHERE m.machine_id = r.machine_id)")
# The same on PostgreSQL, given the batch's machine ids (:ids, comma-separated: one text
# parameter, not an array of 2,000 to adapt): BulkEvaluator._orphans.
_PG_RESULT_IDS = ("SELECT DISTINCT machine_id FROM rule_results WHERE machine_id > :lo "
                  "{upper} AND machine_id <> ALL(string_to_array(:ids, ','))")
# Below this many machines a pass is not split: forking costs more than it saves.
PARALLEL_MIN = 20_000
# Machines written per transaction, and how long a worker waits for the others' writes.
WRITE_CHUNK = 500
WRITE_WAIT_S = 600
# A machine to write: (unit id, facts text, decoded facts, results) as the compare read
# them; None: not read (the write transaction reads and evaluates the machine's facts).
Pending = tuple[int, "str | None", "dict[str, Any] | None", "tuple[str, ...] | None"]
_INHERITED: list[Any] = []  # in a forked worker: the parent's pool, never finalized
_NEVER = datetime.max.replace(tzinfo=timezone.utc)  # a cutoff no machine is active after


def _result_ids_query(bounded: bool) -> Any:
    return text(_RESULT_IDS.format(upper="AND machine_id <= :hi" if bounded else ""))


def _pg_result_ids_query(bounded: bool) -> Any:
    return text(_PG_RESULT_IDS.format(upper="AND machine_id <= :hi" if bounded else ""))


def _facts_text(dialect: str) -> Any:
    # Raw JSON text on both databases: one json.loads per machine instead of
    # SQLAlchemy's (SQLite) or psycopg's (PostgreSQL) JSON layers, and a text that the
    # write phase compares to see whether the facts changed meanwhile.
    if dialect == "postgresql":
        return cast(machines.c.facts, Text)
    return type_coerce(machines.c.facts, String)


def _batch_query(dialect: str, bounded: bool) -> Any:
    # Whether the machine is active, from the database: no datetime is decoded per row.
    # (As an integer: no per-row conversion to bool on SQLite.)
    active = type_coerce(machines.c.last_seen >= bindparam(
        "cutoff", type_=machines.c.last_seen.type), Integer)
    query = (select(machines.c.machine_id, machines.c.unit_id, active.label("active"),
                    _facts_text(dialect).label("facts"), machines.c.results_digest)
             .where(machines.c.machine_id > bindparam("lo")))
    if bounded:
        query = query.where(machines.c.machine_id <= bindparam("hi"))
    return query.order_by(machines.c.machine_id).limit(bindparam("n"))


def _again_query(dialect: str) -> Any:
    """The rows of machines about to be written, read again inside the write transaction."""
    query = (select(machines.c.machine_id, machines.c.unit_id,
                    _facts_text(dialect).label("facts"), machines.c.results_digest)
             .where(machines.c.machine_id.in_(bindparam("ids", expanding=True)))
             .order_by(machines.c.machine_id))
    if dialect == "postgresql":
        # Ingest of one of these machines waits for this write (row locks, id order).
        query = query.with_for_update(of=machines)
    return query


def split_points(conn: Connection, parts: int, minimum: int = 0) -> list[str]:
    """Machine ids that cut the id range into `parts` parts of about equal size (none
    when there are fewer than `minimum` machines)."""
    total = conn.execute(select(func.count()).select_from(machines)).scalar() or 0
    points: list[str] = []
    if total < minimum:
        return points
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_sort = off")  # the primary key's order (run)
    for n in range(1, parts):
        found = conn.execute(select(machines.c.machine_id).order_by(machines.c.machine_id)
                             .limit(1).offset(total * n // parts)).scalar()
        if found is not None and (not points or found > points[-1]):
            points.append(found)
    return points


class BulkEvaluator:
    """One full pass over every machine's stored facts; see the module docstring."""

    def __init__(self, ruleset: RuleSet, lang: str, now: datetime, *,
                 unit_inputs: Sequence[str] = (), cutoff: datetime | None = None,
                 counts: bool = True) -> None:
        self.ruleset = ruleset
        # False: no rule_counts deltas (nor change log); the caller recounts after.
        self.counts = counts
        self.lang = lang
        self.now = now
        rules = ruleset.machine_rules
        self.memo = ReasonMemo(rules, lang)
        self.ids = [r.id for r in rules]
        self._digest = compile_digest(self.memo)
        self._prefixes: dict[int, bytes] = {}  # unit id -> signatures.unit_prefix
        self.machines = 0
        self.written = 0
        # The unit rules' inputs of every active machine, gathered on the way so that the
        # unit rules need not read every machine's facts again: per unit, how many
        # active machines have each tuple of `unit_inputs` values (lists as tuples). A
        # fleet repeats a few such tuples, so a worker process sends back little.
        self.unit_inputs = tuple(unit_inputs)
        self.cutoff = cutoff
        self.per_unit: dict[int, Counter[tuple[Any, ...]]] = {}
        self._values = compile_values(self.unit_inputs)
        self.write_lock: Any = None  # set by run_parallel on SQLite

    def outcomes(self, results: tuple[str, ...], facts: Mapping[str, Any],
                 waived: Mapping[str, str]) -> dict[str, Outcome]:
        """evaluate_machine's {rule id: (result, reason)}, reasons from the memo."""
        if waived:  # rare: evaluate_machine applies the waivers
            return evaluate_machine(self.ruleset, facts, exemptions=waived, lang=self.lang)
        reason = self.memo.reason
        return {rule_id: (result, reason(i, result, facts))
                for i, (rule_id, result) in enumerate(zip(self.ids, results, strict=True))}

    # ------------------------------------------------------------------ the pass

    def run(self, engine: Engine, batch: int, lo: str = "", hi: str | None = None) -> None:
        """The batches of machine ids in (lo, hi] (hi None: to the end), in order."""
        last = lo  # machine ids are non-empty: every id sorts after ""
        dialect = engine.dialect.name
        query = self._query(dialect, hi is not None)
        # No cutoff: no machine counts as active (nothing is gathered).
        cutoff = self.cutoff if self.unit_inputs and self.cutoff is not None else _NEVER
        while True:
            params: dict[str, Any] = {"lo": last, "n": batch, "cutoff": cutoff}
            if hi is not None:
                params["hi"] = hi
            with engine.connect() as conn, conn.begin():  # one snapshot per batch
                if dialect == "postgresql":
                    # Walk the primary key in order. Without statistics (a table just
                    # filled, autovacuum off) the planner expects a few rows in the range
                    # and bitmap-scans, decodes and sorts the whole rest of the part for
                    # each batch: 0.4 s instead of 0.03 s per batch at 100,000 machines.
                    conn.exec_driver_sql("SET LOCAL enable_sort = off")
                rows = conn.execute(query, params).all()
                # The last batch of the part owns every result row up to the part's end.
                upper = rows[-1].machine_id if len(rows) == batch else hi
                work = self._compare(conn, rows, last, upper)
            if work is not None:
                self._write_all(engine, *work)
            if len(rows) < batch:
                return
            last = rows[-1].machine_id

    def _query(self, dialect: str, bounded: bool) -> Any:
        """The batch read: machine id, unit id, active, facts text, results digest."""
        return _batch_query(dialect, bounded)

    def _compare(self, conn: Connection, rows: Sequence[Any], lo: str, hi: str | None
                 ) -> tuple[dict[str, Pending],
                            list[str]] | None:
        """The machines of the batch to write, and the orphaned result ids; None if none."""
        ids = [r[0] for r in rows]
        waived = active_waivers(conn, ids, self.now, contiguous=True) if ids else {}
        digest, prefixes, evaluate = self._digest, self._prefixes, self.ruleset.machine_results
        differ: dict[str, Pending] = {}
        values, per_unit = self._values, self.per_unit
        decode = decode_stored_facts
        decoded = iter(decode_all([r[3] for r in rows if r[3] is not None]))
        for mid, unit_id, active, raw, stored in rows:
            if raw is None:
                continue  # neither facts nor a report: nothing to evaluate, keep as is
            facts = decode(next(decoded))
            if active:
                found = per_unit.get(unit_id)
                if found is None:
                    found = per_unit[unit_id] = Counter()
                key = values(facts)
                found[key] = found.get(key, 0) + 1
            prefix = prefixes.get(unit_id)
            if prefix is None:
                prefix = prefixes[unit_id] = unit_prefix(unit_id)
            if mid in waived or stored is None or stored != digest(facts, prefix):
                differ[mid] = (unit_id, raw, facts, evaluate(facts))
        self.machines += len(rows)
        orphans = self._orphans(conn, ids, lo, hi)
        return (differ, orphans) if differ or orphans else None

    @staticmethod
    def _orphans(conn: Connection, ids: list[str], lo: str, hi: str | None) -> list[str]:
        """Machine ids in (lo, hi] with result rows and no machine. On PostgreSQL: those
        that are not a machine of the batch (a filter in the scan of the results' primary
        key instead of a probe of `machines` per id: 8.6 ms against 19.4 ms per batch of
        2,000, EXPLAIN ANALYZE). An id that is a machine after all (one added since the
        batch read; one with a comma, which no valid machine id has) is dropped by the
        write transaction, which keeps only orphans that are no machine by then."""
        params: dict[str, Any] = {"lo": lo} if hi is None else {"lo": lo, "hi": hi}
        if conn.dialect.name == "postgresql":
            params["ids"] = ",".join(ids)
            return list(conn.execute(_pg_result_ids_query(hi is not None), params).scalars())
        return list(conn.execute(_result_ids_query(hi is not None), params).scalars())

    def _write_all(self, engine: Engine,
                   differ: dict[str, Pending],
                   orphans: list[str]) -> None:
        """The writes of one batch, WRITE_CHUNK machines per transaction: a first
        evaluation writes every row, and ingest must not wait for a whole batch."""
        ids = sorted(differ)
        chunks = [ids[i:i + WRITE_CHUNK] for i in range(0, len(ids), WRITE_CHUNK)] or [[]]
        for n, chunk in enumerate(chunks):
            with self._write_turn(), write_transaction(engine) as conn:
                self._write(conn, {mid: differ[mid] for mid in chunk},
                            orphans if n == 0 else [])

    def _write_turn(self) -> Any:
        """The worker processes' write lock on SQLite (one writer at a time there: the
        others wait here instead of running out of the busy timeout)."""
        lock = self.write_lock
        if lock is None:
            return contextlib.nullcontext()
        if not lock.acquire(timeout=WRITE_WAIT_S):
            raise RuntimeError(f"another re-evaluation process held the write lock for "
                               f"{WRITE_WAIT_S} s")
        return _Release(lock)

    def _write(self, conn: Connection,
               differ: dict[str, Pending],
               orphans: list[str]) -> None:
        dialect = conn.dialect.name
        again = {r.machine_id: r for r in conn.execute(_again_query(dialect),
                                                       {"ids": sorted(differ)})} \
            if differ else {}
        if orphans:  # a machine may have been added meanwhile, with its results
            orphans = sorted(set(orphans) - set(conn.execute(
                select(machines.c.machine_id).where(machines.c.machine_id.in_(orphans)))
                .scalars()))
        gone = [mid for mid in differ if mid not in again]  # deleted meanwhile
        ids = [mid for mid in differ if mid in again]
        old = load_results(conn, ids + gone + orphans)
        waived = active_waivers(conn, ids, self.now) if ids else {}
        writer = ResultWriter(self.now)
        for mid in ids:
            unit_id, raw, facts, results = differ[mid]
            row = again[mid]
            if row.facts is None:
                continue
            # A report came meanwhile (or the caller read only some facts): the facts
            # of the row, evaluated again.
            if facts is None or results is None or row.facts != raw:
                facts = decode_stored_facts(json.loads(row.facts))
                results = self.ruleset.machine_results(facts)
            new = self.outcomes(results, facts, waived.get(mid, {}))
            writer.machine(mid, row.unit_id, new, old[mid], digest=row.results_digest,
                           digest_known=True)
        for mid in gone + orphans:  # results of a machine that no longer exists
            if old[mid]:
                writer.machine(mid, 0, {}, old[mid])
        self.written += writer.flush(conn, counts=self.counts)

    # ------------------------------------------------------------------ parts

    def part(self) -> BulkEvaluator:
        """A new evaluator of the same pass, for a worker process's part."""
        return BulkEvaluator(self.ruleset, self.lang, self.now, unit_inputs=self.unit_inputs,
                             cutoff=self.cutoff, counts=self.counts)

    def summary(self) -> dict[str, Any]:
        return {"machines": self.machines, "written": self.written,
                "per_unit": self.per_unit}

    def merge(self, summary: Mapping[str, Any]) -> None:
        self.machines += summary["machines"]
        self.written += summary["written"]
        for unit_id, found in summary["per_unit"].items():
            self.per_unit.setdefault(unit_id, Counter()).update(found)


def run_parallel(bulk: BulkEvaluator, engine: Engine, batch: int, workers: int) -> int:
    """The pass of `bulk.run` split over `workers` processes (this one included) by
    machine-id range; returns the number of processes used. Each forked worker opens
    its own connections and sends its figures back through a pipe."""
    points: list[str] = []
    # Only from a process with one thread (startup, the CLI): in a forked child the
    # other threads' objects are finalized, and a database connection finalized there
    # would speak on the parent's socket (a rollback, a terminate). The maintenance
    # thread of a serving worker therefore runs the pass in one process.
    if workers > 1 and hasattr(os, "fork") and threading.active_count() == 1 \
            and not _in_memory(engine):
        with engine.connect() as conn, conn.begin():
            points = split_points(conn, workers, PARALLEL_MIN)
    if not points:
        bulk.run(engine, batch)
        return 1
    if engine.dialect.name == "sqlite":
        bulk.write_lock = multiprocessing.Lock()  # shared with the forked workers
    bounds = list(zip(["", *points], [*points, None], strict=True))
    children: list[tuple[int, int]] = []
    try:
        for lo, hi in bounds[1:]:
            children.append(_fork_part(bulk, engine, batch, lo, hi))
        bulk.run(engine, batch, *bounds[0])
    finally:
        errors = []
        for pid, fd in children:
            status, payload = _collect(pid, fd)
            if status == "ok":
                bulk.merge(payload)
            else:
                errors.append(payload)
    if errors:
        raise RuntimeError("a re-evaluation worker process failed (its batches before the "
                           "failure are committed; the next pass redoes the rest):\n"
                           + "\n".join(errors))
    return len(bounds)


def decode_all(texts: list[str]) -> list[Any]:
    """json.loads of each text, in one call: the texts joined as one JSON array (the
    decoder's key memo then serves the whole batch: 2.4 us per machine instead of
    4.6 us, the bench's facts). Texts that are not one JSON value each are decoded one
    by one, as json.loads alone would (and fail) on them."""
    if not texts:
        return []
    with contextlib.suppress(ValueError):
        found = json.loads("[" + ",".join(texts) + "]")
        if len(found) == len(texts):
            return list(found)
    return [json.loads(t) for t in texts]


def _in_memory(engine: Engine) -> bool:
    """An in-memory SQLite database: a forked worker would write to its own copy."""
    database = engine.url.database or ""
    return engine.dialect.name == "sqlite" and (database in ("", ":memory:")
                                                 or "mode=memory" in str(engine.url))


def _fork_part(bulk: BulkEvaluator, engine: Engine, batch: int, lo: str, hi: str | None
               ) -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_fd)
        return pid, read_fd
    # The child: never returns into the caller's code (os._exit), so it runs no atexit
    # handler and flushes no buffer it does not own. The parent's pooled connections
    # stay referenced (_INHERITED) so that nothing finalizes them here.
    code = 0
    try:
        os.close(read_fd)
        _INHERITED.append(engine.pool)
        engine.dispose(close=False)  # a new pool: the parent's connections stay the parent's
        part = bulk.part()
        part.write_lock = bulk.write_lock
        part.run(engine, batch, lo, hi)
        payload = pickle.dumps(("ok", part.summary()), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        payload = pickle.dumps(("error", traceback.format_exc()))
        code = 1
    try:
        with os.fdopen(write_fd, "wb") as out:
            out.write(payload)
    finally:
        os._exit(code)


class _Release:
    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: object) -> None:
        self.lock.release()


def _collect(pid: int, fd: int) -> tuple[str, Any]:
    with os.fdopen(fd, "rb") as source:
        data = source.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        return "error", f"worker process {pid} ended without a result (status {status})"
    found: tuple[str, Any] = pickle.loads(data)  # noqa: S301 - our own child's bytes
    return found
