"""Reading and writing rule results, unit rule results and the per-unit rule counts.

Rows are written only when something changed: an unchanged result keeps its `since`
and costs no write, so steady-state ingest adds reads only. Every change to a
machine's results is mirrored in `rule_counts` (per direct unit) by deltas, in the
same transaction, with keys sorted so that concurrent PostgreSQL transactions take
row locks in the same order (no deadlocks). Each machine's `results_digest` (a hash of
its results, kiemke.collector.evaluation.digest) is rewritten with them, so a full re-evaluation
compares one value per machine instead of every result row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from kiemke.collector.changes import COMPLIANCE, bump, record_compliance
from kiemke.collector.db.compliance_tables import (
    rule_counts,
    rule_results,
    unit_rule_results,
    waivers,
)
from kiemke.collector.db.tables import machines
from kiemke.collector.evaluation.digest import Outcome, results_digest

CountKey = tuple[int, str, str]  # (unit_id, rule_id, result)

@dataclass(frozen=True)
class StoredResult:
    result: str
    reason: str | None
    unit_id: int


def dialect_insert(conn: Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _machines_cond(column: Any, machine_ids: list[str], contiguous: bool) -> Any:
    if len(machine_ids) == 1:
        return column == machine_ids[0]
    if contiguous:
        # A batch of consecutive machine ids (sorted): a range scan on the primary key.
        return column.between(machine_ids[0], machine_ids[-1])
    return column.in_(machine_ids)


# One machine's rows (the ingest path), built once: building a statement costs more
# than running it.
_RESULTS_OF = select(rule_results.c.rule_id, rule_results.c.result, rule_results.c.reason,
                     rule_results.c.unit_id).where(rule_results.c.machine_id == bindparam("m"))
_WAIVERS_OF = select(waivers.c.rule_id, waivers.c.reason).where(
    waivers.c.machine_id == bindparam("m"), waivers.c.revoked_at.is_(None),
    waivers.c.expires_at > bindparam("now", type_=waivers.c.expires_at.type))


def load_results(conn: Connection, machine_ids: list[str], *, contiguous: bool = False
                 ) -> dict[str, dict[str, StoredResult]]:
    """{machine_id: {rule_id: StoredResult}} for the given machines.

    `contiguous`: the ids are sorted and no other machine id lies between them.
    """
    out: dict[str, dict[str, StoredResult]] = {m: {} for m in machine_ids}
    if not machine_ids:
        return out
    if len(machine_ids) == 1:  # ingest: the statement built once
        bucket = out[machine_ids[0]]
        for rule_id, result, reason, unit_id in conn.execute(_RESULTS_OF,
                                                             {"m": machine_ids[0]}):
            bucket[rule_id] = StoredResult(result, reason, unit_id)
        return out
    query = select(rule_results.c.machine_id, rule_results.c.rule_id, rule_results.c.result,
                   rule_results.c.reason, rule_results.c.unit_id)
    query = query.where(_machines_cond(rule_results.c.machine_id, machine_ids, contiguous))
    for mid, rule_id, result, reason, unit_id in conn.execute(query):
        found = out.get(mid)
        if found is not None:
            found[rule_id] = StoredResult(result, reason, unit_id)
    return out


def active_waivers(conn: Connection, machine_ids: list[str], now: datetime, *,
                   contiguous: bool = False) -> dict[str, dict[str, str]]:
    """{machine_id: {rule_id: waiver reason}} for waivers in force at `now`."""
    if not machine_ids:
        return {}
    if len(machine_ids) == 1:  # ingest: the statement built once
        found = {rule_id: reason for rule_id, reason in
                 conn.execute(_WAIVERS_OF, {"m": machine_ids[0], "now": now})}
        return {machine_ids[0]: found} if found else {}
    cond = _machines_cond(waivers.c.machine_id, machine_ids, contiguous)
    rows = conn.execute(select(waivers.c.machine_id, waivers.c.rule_id, waivers.c.reason)
                        .where(cond, waivers.c.revoked_at.is_(None),
                               waivers.c.expires_at > now))
    out: dict[str, dict[str, str]] = {}
    for mid, rule_id, reason in rows:
        out.setdefault(mid, {})[rule_id] = reason
    return out


class ResultWriter:
    """Collects result changes for one or many machines, then writes them in bulk."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.inserts: list[dict[str, Any]] = []
        self.changed: list[dict[str, Any]] = []  # result changed: since = now
        self.touched: list[dict[str, Any]] = []  # same result, new reason or unit
        self.deleted: list[dict[str, Any]] = []
        self.digests: list[dict[str, Any]] = []  # machines.results_digest updates
        self.deltas: Counter[CountKey] = Counter()

    def machine(self, machine_id: str, unit_id: int, new: Mapping[str, Outcome],
                old: Mapping[str, StoredResult], *, digest: str | None = None,
                digest_known: bool = False) -> bool:
        """Queue the differences for one machine; True when anything changed.

        `digest_known`: `digest` is the machine's stored results_digest (a full
        re-evaluation read it), so it is rewritten whenever it is not the right one
        (NULL or stale) even if no result row changes; otherwise it is rewritten only
        with the rows."""
        changed = self._rows(machine_id, unit_id, new, old)
        if changed or digest_known:
            value = results_digest(unit_id, new)
            if value != digest or not digest_known:
                self.digests.append({"m": machine_id, "d": value})
        return changed

    def _rows(self, machine_id: str, unit_id: int, new: Mapping[str, Outcome],
              old: Mapping[str, StoredResult]) -> bool:
        before = len(self.inserts) + len(self.changed) + len(self.touched) + len(self.deleted)
        deltas = self.deltas
        for rule_id, (result, reason) in new.items():
            prev = old.get(rule_id)
            if prev is None:
                self.inserts.append({"machine_id": machine_id, "rule_id": rule_id,
                                     "unit_id": unit_id, "result": result, "reason": reason,
                                     "since": self.now, "evaluated_at": self.now})
                deltas[(unit_id, rule_id, result)] += 1
                continue
            if prev.result != result:
                self.changed.append({"m": machine_id, "r": rule_id, "u": unit_id,
                                     "res": result, "why": reason})
            elif prev.reason != reason or prev.unit_id != unit_id:
                self.touched.append({"m": machine_id, "r": rule_id, "u": unit_id,
                                     "why": reason})
            else:
                continue
            if prev.result != result or prev.unit_id != unit_id:
                deltas[(prev.unit_id, rule_id, prev.result)] -= 1
                deltas[(unit_id, rule_id, result)] += 1
        for rule_id, prev in old.items():
            if rule_id not in new:  # the rule was removed or disabled
                self.deleted.append({"m": machine_id, "r": rule_id})
                deltas[(prev.unit_id, rule_id, prev.result)] -= 1
        return before != len(self.inserts) + len(self.changed) + len(self.touched) + \
            len(self.deleted)

    def flush(self, conn: Connection, *, counts: bool = True) -> int:
        """Write everything queued; return the number of result rows written.

        counts=False: neither rule_counts deltas nor the compliance change log are
        written; the caller rebuilds the counts with recount(), whose bump tells /metrics
        that anything may have changed (a first evaluation inserts every row)."""
        key = and_(rule_results.c.machine_id == bindparam("m"),
                   rule_results.c.rule_id == bindparam("r"))
        if self.digests:
            # First: ingest holds its machine row before rule_counts, and so do we here.
            conn.execute(update(machines).where(machines.c.machine_id == bindparam("m"))
                         .values(results_digest=bindparam("d")), self.digests)
        if self.inserts:
            conn.execute(insert(rule_results), self.inserts)
        # Bind names differ from column names (SQLAlchemy reserves those for SET).
        if self.changed:
            conn.execute(update(rule_results).where(key).values(
                unit_id=bindparam("u"), result=bindparam("res"), reason=bindparam("why"),
                since=self.now, evaluated_at=self.now), self.changed)
        if self.touched:
            conn.execute(update(rule_results).where(key).values(
                unit_id=bindparam("u"), reason=bindparam("why"), evaluated_at=self.now),
                self.touched)
        if self.deleted:
            conn.execute(delete(rule_results).where(key), self.deleted)
        if counts:
            add_counts(conn, self.deltas)
        written = len(self.inserts) + len(self.changed) + len(self.touched) + len(self.deleted)
        if written and counts:
            # The unit x rule blocks changed, for /metrics: every count key, plus the
            # rows whose reason alone changed (bumped at commit: kiemke.collector.changes).
            record_compliance(conn, {(u, r) for u, r, _ in self.deltas}
                              | {(row["u"], row["r"]) for row in self.touched},
                              [*((row["machine_id"], row["rule_id"]) for row in self.inserts),
                               *((row["m"], row["r"]) for row in self.changed),
                               *((row["m"], row["r"]) for row in self.touched),
                               *((row["m"], row["r"]) for row in self.deleted)])
        self.inserts, self.changed, self.touched, self.deleted = [], [], [], []
        self.digests = []
        self.deltas = Counter()
        return written


def add_counts(conn: Connection, deltas: Mapping[CountKey, int]) -> None:
    """rule_counts.n += delta for each (unit, rule, result), in a stable order."""
    rows = [{"unit_id": u, "rule_id": r, "result": res, "n": n}
            for (u, r, res), n in sorted(deltas.items()) if n]
    if not rows:
        return
    stmt = dialect_insert(conn)(rule_counts)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["unit_id", "rule_id", "result"],
        set_={"n": rule_counts.c.n + stmt.excluded.n}), rows)


def recount(conn: Connection) -> None:
    """Rebuild rule_counts from rule_results (after a full re-evaluation)."""
    if conn.dialect.name == "postgresql":
        # Ingest transactions add deltas to these rows: let them wait, not interleave.
        conn.execute(text("LOCK TABLE rule_counts IN EXCLUSIVE MODE"))
    conn.execute(delete(rule_counts))
    conn.execute(insert(rule_counts).from_select(
        ["unit_id", "rule_id", "result", "n"],
        select(rule_results.c.unit_id, rule_results.c.rule_id, rule_results.c.result,
               func.count()).group_by(rule_results.c.unit_id, rule_results.c.rule_id,
                                      rule_results.c.result)))
    bump(conn, COMPLIANCE)


def move_machine_results(conn: Connection, machine_id: str, unit_id: int) -> bool:
    """Results (and their counts) follow a machine to another unit; True when moved."""
    old = load_results(conn, [machine_id])[machine_id]
    if all(r.unit_id == unit_id for r in old.values()):
        return False
    deltas: Counter[CountKey] = Counter()
    for rule_id, prev in old.items():
        if prev.unit_id != unit_id:
            deltas[(prev.unit_id, rule_id, prev.result)] -= 1
            deltas[(unit_id, rule_id, prev.result)] += 1
    conn.execute(update(machines).where(machines.c.machine_id == machine_id).values(
        results_digest=results_digest(unit_id, {r: (p.result, p.reason)
                                                for r, p in old.items()})))
    conn.execute(update(rule_results).where(rule_results.c.machine_id == machine_id)
                 .values(unit_id=unit_id))
    add_counts(conn, deltas)
    record_compliance(conn, {(u, r) for u, r, _ in deltas},
                      [(machine_id, r) for r, prev in old.items() if prev.unit_id != unit_id])
    return True


def load_unit_results(conn: Connection, unit_ids: list[int]
                      ) -> dict[int, dict[str, tuple[str, str | None]]]:
    """{unit_id: {rule_id: (result, reason)}} of the given units' unit-rule results."""
    out: dict[int, dict[str, tuple[str, str | None]]] = {u: {} for u in unit_ids}
    for start in range(0, len(unit_ids), 1000):
        for unit_id, rule_id, result, reason in conn.execute(
                select(unit_rule_results.c.unit_id, unit_rule_results.c.rule_id,
                       unit_rule_results.c.result, unit_rule_results.c.reason)
                .where(unit_rule_results.c.unit_id.in_(unit_ids[start:start + 1000]))):
            out[unit_id][rule_id] = (result, reason)
    return out


def write_unit_results(conn: Connection, unit_id: int, new: Mapping[str, Outcome],
                       now: datetime,
                       old: Mapping[str, tuple[str, str | None]] | None = None) -> int:
    """Store one unit's unit-rule results; unchanged rows are not written. `old`: the
    unit's stored rows (load_unit_results), when the caller read them for many units."""
    if old is None:
        old = load_unit_results(conn, [unit_id])[unit_id]
    gone = [r for r in old if r not in new]
    if gone or any(old.get(r) != new[r] for r in new):
        record_compliance(conn, [(unit_id, r) for r in {*gone, *new}
                                 if r in gone or old.get(r) != new[r]])
    written = 0
    for rule_id in sorted(new):
        result, reason = new[rule_id]
        prev = old.get(rule_id)
        if prev is None:
            conn.execute(insert(unit_rule_results).values(
                unit_id=unit_id, rule_id=rule_id, result=result, reason=reason, since=now,
                evaluated_at=now))
        elif prev[0] != result:
            conn.execute(update(unit_rule_results).where(
                unit_rule_results.c.unit_id == unit_id, unit_rule_results.c.rule_id == rule_id)
                .values(result=result, reason=reason, since=now, evaluated_at=now))
        elif prev[1] != reason:
            conn.execute(update(unit_rule_results).where(
                unit_rule_results.c.unit_id == unit_id, unit_rule_results.c.rule_id == rule_id)
                .values(reason=reason, evaluated_at=now))
        else:
            continue
        written += 1
    if gone:
        conn.execute(delete(unit_rule_results).where(unit_rule_results.c.unit_id == unit_id,
                                                     unit_rule_results.c.rule_id.in_(gone)))
    return written + len(gone)
