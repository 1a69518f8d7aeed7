"""Full re-evaluation from stored facts, fast: compare by signature, write only changes.

A re-evaluation after a rule change usually changes few results, so the cost is in
reading and comparing, not writing. Per batch of machines (consecutive machine ids):
- the facts are read once (raw JSON text on SQLite, decoded once);
- results are computed without reasons, and reasons come from a ReasonMemo (a fleet
  has a handful of distinct reason texts);
- the stored results come back as ONE string per machine (rule, result and reason
  joined in rule order, built by the database, plus the unit ids), compared with the same string
  built in Python: only machines whose strings differ are read in full and go through
  ResultWriter (which keeps `since`, writes changed rows and rule_counts deltas);
- result rows of machine ids inside the batch's id range that have no machine any more
  are deleted (with their count deltas), so no separate orphan scan is needed;
- the unit rules' inputs of active machines are kept for the unit pass that follows.
A signature that differs for any other reason (e.g. a database that orders the
aggregate differently) only sends the machine down the full path: never a wrong result.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, bindparam, select, text, type_coerce

from kiemke.collector.compliance.store import (
    ResultWriter,
    active_waivers,
    load_results,
)
from kiemke.collector.db.tables import machines
from kiemke.compliance import RuleSet, evaluate_machine, facts_from_json
from kiemke.compliance.evaluate import ReasonMemo
from kiemke.compliance.rules import FAIL, UNKNOWN

FIELD, ROW, NULL = "\x1f", "\x1e", "\x1d"  # separators no rule id or reason contains

_SIGNATURE_SQL = {
    # Ordered subquery: SQLite's group_concat follows the order rows arrive in.
    "sqlite": "SELECT machine_id, min(unit_id), max(unit_id), group_concat(rule_id "
              "|| char(31) || result || char(31) || coalesce(reason, char(29)), char(30)) FROM ("
              "SELECT machine_id, rule_id, result, unit_id, reason FROM rule_results "
              "WHERE machine_id > :lo {upper} ORDER BY machine_id, rule_id) GROUP BY machine_id",
    "postgresql": "SELECT machine_id, min(unit_id), max(unit_id), string_agg(rule_id "
                  "|| chr(31) || result || chr(31) || coalesce(reason, chr(29)), chr(30) "
                  "ORDER BY rule_id COLLATE \"C\") FROM rule_results "
                  "WHERE machine_id > :lo {upper} GROUP BY machine_id",
}


def _signature_query(dialect: str, bounded: bool) -> Any:
    sql = _SIGNATURE_SQL.get(dialect, _SIGNATURE_SQL["sqlite"])
    return text(sql.format(upper="AND machine_id <= :hi" if bounded else ""))


def _batch_query(dialect: str) -> Any:
    # Raw text on SQLite: one json.loads per machine instead of SQLAlchemy's JSON layers.
    facts = type_coerce(machines.c.facts, String) if dialect == "sqlite" else machines.c.facts
    query = (select(machines.c.machine_id, machines.c.unit_id, machines.c.last_seen,
                    facts.label("facts"))
             .where(machines.c.machine_id > bindparam("lo"))
             .order_by(machines.c.machine_id).limit(bindparam("n")))
    if dialect == "postgresql":
        # Ingest of one of these machines waits for this batch (row locks).
        query = query.with_for_update(of=machines)
    return query


class BulkEvaluator:
    """One full pass over every machine's stored facts; see the module docstring."""

    def __init__(self, ruleset: RuleSet, lang: str, now: datetime, *,
                 unit_inputs: Sequence[str] = (), cutoff: datetime | None = None) -> None:
        self.ruleset = ruleset
        self.lang = lang
        self.now = now
        rules = ruleset.machine_rules
        self.memo = ReasonMemo(rules, lang)
        # Rule positions in rule-id order (the order of the stored signature).
        self.order = sorted(range(len(rules)), key=lambda i: rules[i].id)
        self.ids = [r.id for r in rules]
        self._parts: dict[tuple[int, str, str | None], str] = {}
        self._no_reasons: dict[tuple[str, ...], str] = {}
        self.machines = 0
        self.written = 0
        # The unit rules' inputs of every active machine, gathered on the way so that
        # the unit rules need not read every machine's facts again.
        self.unit_inputs = tuple(unit_inputs)
        self.cutoff = cutoff
        self.per_unit: dict[int, list[dict[str, Any]]] = {}

    def signature(self, results: tuple[str, ...], facts: Mapping[str, Any]) -> str:
        """The machine's results as the database builds them (unit ids apart)."""
        if FAIL not in results and UNKNOWN not in results:
            # No reason to render: the string depends on the results alone.
            sig = self._no_reasons.get(results)
            if sig is None:
                sig = self._no_reasons[results] = self._build(results, facts)
            return sig
        return self._build(results, facts)

    def _build(self, results: tuple[str, ...], facts: Mapping[str, Any]) -> str:
        reason, ids, parts = self.memo.reason, self.ids, self._parts
        out = []
        for i in self.order:
            key = (i, results[i], reason(i, results[i], facts))
            part = parts.get(key)
            if part is None:
                why = key[2]
                part = parts[key] = (f"{ids[i]}{FIELD}{key[1]}{FIELD}"
                                     f"{NULL if why is None else why}")
            out.append(part)
        return ROW.join(out)

    def run(self, connect: Callable[[], Any], batch: int) -> None:
        """All batches, each in its own write transaction from `connect()`."""
        last = ""  # machine ids are non-empty: every id sorts after ""
        while True:
            with connect() as conn:
                rows = conn.execute(_batch_query(conn.dialect.name),
                                    {"lo": last, "n": batch}).all()
                # The last batch also owns every result row past the last machine.
                upper = rows[-1].machine_id if len(rows) == batch else None
                self._batch(conn, rows, last, upper)
            if upper is None:
                return
            last = upper

    def _batch(self, conn: Connection, rows: Sequence[Any], lo: str, hi: str | None) -> None:
        dialect = conn.dialect.name
        params = {"lo": lo} if hi is None else {"lo": lo, "hi": hi}
        stored = {mid: (lo_unit, hi_unit, sig) for mid, lo_unit, hi_unit, sig in
                  conn.execute(_signature_query(dialect, hi is not None), params)}
        ids = [r.machine_id for r in rows]
        waived = active_waivers(conn, ids, self.now, contiguous=True) if ids else {}
        evaluate = self.ruleset.machine_results
        differ: list[tuple[str, int, dict[str, Any]]] = []
        inputs, cutoff, per_unit = self.unit_inputs, self.cutoff, self.per_unit
        for mid, unit_id, last_seen, raw in rows:
            self.machines += 1
            if raw is None:
                continue  # neither facts nor a report: nothing to evaluate, keep as is
            data = json.loads(raw) if isinstance(raw, str) else raw
            if inputs and cutoff is not None and last_seen is not None and last_seen >= cutoff:
                per_unit.setdefault(unit_id, []).append({k: data.get(k) for k in inputs})
            facts = facts_from_json(data)
            if mid in waived:
                differ.append((mid, unit_id, facts))  # rare: the full path applies waivers
                continue
            old = stored.get(mid)
            if old is None or old[0] != unit_id or old[1] != unit_id \
                    or old[2] != self.signature(evaluate(facts), facts):
                differ.append((mid, unit_id, facts))
        present = set(ids)
        orphans = [mid for mid in stored if mid not in present]
        if not differ and not orphans:
            return
        old = load_results(conn, [d[0] for d in differ] + orphans)
        writer = ResultWriter(self.now)
        for mid, unit_id, facts in differ:
            new = evaluate_machine(self.ruleset, facts, exemptions=waived.get(mid, {}),
                                   lang=self.lang)
            writer.machine(mid, unit_id, new, old[mid])
        for mid in orphans:  # results of a machine that no longer exists
            writer.machine(mid, 0, {}, old[mid])
        self.written += writer.flush(conn, counts=True)

