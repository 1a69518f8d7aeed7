"""Full re-evaluation from stored facts, fast: compare by digest, write only changes.

A re-evaluation after a rule change usually changes few results, so the cost is in
reading and comparing, not writing. Per batch of machines (consecutive machine ids):
- the facts and each machine's `results_digest` are read once, in one row per machine
  (raw JSON text on SQLite, decoded once);
- results are computed without reasons, and reasons come from a ReasonMemo (a fleet
  has a handful of distinct reason texts);
- the digest of those results (rule, result and reason in rule order, plus the unit
  id: kiemke.collector.evaluation.digest) is compared with the stored one, which ResultWriter keeps
  in the same transaction as the rows: only machines whose digests differ (or is NULL,
  e.g. right after the migration that added it) are read in full and go through
  ResultWriter (which keeps `since`, writes changed rows and rule_counts deltas, and
  the right digest);
- result rows of machine ids inside the batch's id range that have no machine any more
  are deleted (with their count deltas), so no separate orphan scan is needed;
- the unit rules' inputs of active machines are kept for the unit pass that follows.
A digest that differs for any other reason only sends the machine down the full path:
never a wrong result. Rows edited behind ResultWriter's back (by hand in SQL) are not
seen unless the machine's digest is set to NULL with them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, String, bindparam, select, text, type_coerce

from kiemke.collector.db.tables import machines
from kiemke.collector.evaluation.digest import digest, result_part, signature
from kiemke.collector.evaluation.store import ResultWriter, active_waivers, load_results
from kiemke.compliance import RuleSet, evaluate_machine, facts_from_json
from kiemke.compliance.evaluate import ReasonMemo
from kiemke.compliance.rules import FAIL, NOT_APPLICABLE, PASS, UNKNOWN

# Machine ids that have result rows in the batch's id range (walks the primary key).
_RESULT_IDS = ("SELECT DISTINCT machine_id FROM rule_results WHERE machine_id > :lo {upper}")
# Distinct digests a pass remembers: a fleet has few distinct (unit, results) pairs,
# and past this many the memo stops growing (it only saves hashing).
_DIGEST_MEMO_MAX = 200_000


def _result_ids_query(bounded: bool) -> Any:
    return text(_RESULT_IDS.format(upper="AND machine_id <= :hi" if bounded else ""))


def _batch_query(dialect: str) -> Any:
    # Raw text on SQLite: one json.loads per machine instead of SQLAlchemy's JSON layers.
    facts = type_coerce(machines.c.facts, String) if dialect == "sqlite" else machines.c.facts
    query = (select(machines.c.machine_id, machines.c.unit_id, machines.c.last_seen,
                    facts.label("facts"), machines.c.results_digest)
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
        # Rule positions in rule-id order (the order of digest.results_digest).
        self.order = sorted(range(len(rules)), key=lambda i: rules[i].id)
        self.ids = [r.id for r in rules]
        # Parts of results without a reason, per rule position; the others by ReasonMemo key.
        # (not_applicable has a reason: the scope that puts the machine out.)
        self._plain = [{PASS: result_part(r.id, PASS, None)} for r in rules]
        self._parts: dict[tuple[Any, ...], str] = {}
        self._no_reasons: dict[tuple[str, ...], str] = {}
        self._digests: dict[tuple[int, str], str] = {}
        self.machines = 0
        self.written = 0
        # The unit rules' inputs of every active machine, gathered on the way so that
        # the unit rules need not read every machine's facts again.
        self.unit_inputs = tuple(unit_inputs)
        self.cutoff = cutoff
        self.per_unit: dict[int, list[dict[str, Any]]] = {}

    def signature(self, results: tuple[str, ...], facts: Mapping[str, Any]) -> str:
        """The machine's results as digest.signature joins them (unit id apart)."""
        if FAIL not in results and UNKNOWN not in results and NOT_APPLICABLE not in results:
            # No reason to render: the string depends on the results alone.
            sig = self._no_reasons.get(results)
            if sig is None:
                sig = self._no_reasons[results] = self._build(results, facts)
            return sig
        return self._build(results, facts)

    def digest(self, unit_id: int, results: tuple[str, ...], facts: Mapping[str, Any]) -> str:
        """digest.results_digest of these results, each distinct one hashed once."""
        key = (unit_id, self.signature(results, facts))
        found = self._digests.get(key)
        if found is None:
            found = digest(*key)
            if len(self._digests) < _DIGEST_MEMO_MAX:
                self._digests[key] = found
        return found

    def _build(self, results: tuple[str, ...], facts: Mapping[str, Any]) -> str:
        plain, parts, key_of = self._plain, self._parts, self.memo.key
        out = []
        for i in self.order:
            result = results[i]
            part = plain[i].get(result)
            if part is None:  # fail, unknown, n/a: the text depends on a few facts
                key = key_of(i, result, facts)
                try:
                    part = parts.get(key)
                except TypeError:  # an unhashable fact value: render it directly
                    part = result_part(self.ids[i], result, self.memo.reason(i, result, facts))
                else:
                    if part is None:
                        part = parts[key] = result_part(self.ids[i], result,
                                                        self.memo.reason(i, result, facts))
            out.append(part)
        return signature(out)

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
        ids = [r.machine_id for r in rows]
        waived = active_waivers(conn, ids, self.now, contiguous=True) if ids else {}
        evaluate, digest = self.ruleset.machine_results, self.digest
        differ: list[tuple[str, int, dict[str, Any], str | None]] = []
        inputs, cutoff, per_unit = self.unit_inputs, self.cutoff, self.per_unit
        for mid, unit_id, last_seen, raw, stored in rows:
            self.machines += 1
            if raw is None:
                continue  # neither facts nor a report: nothing to evaluate, keep as is
            data = json.loads(raw) if isinstance(raw, str) else raw
            if inputs and cutoff is not None and last_seen is not None and last_seen >= cutoff:
                per_unit.setdefault(unit_id, []).append({k: data.get(k) for k in inputs})
            facts = facts_from_json(data)
            if mid in waived:
                differ.append((mid, unit_id, facts, stored))  # the full path applies waivers
            elif stored is None or stored != digest(unit_id, evaluate(facts), facts):
                differ.append((mid, unit_id, facts, stored))
        params = {"lo": lo} if hi is None else {"lo": lo, "hi": hi}
        present = set(ids)
        orphans = [mid for mid in conn.execute(_result_ids_query(hi is not None), params)
                   .scalars() if mid not in present]
        if not differ and not orphans:
            return
        old = load_results(conn, [d[0] for d in differ] + orphans)
        writer = ResultWriter(self.now)
        for mid, unit_id, facts, stored in differ:
            new = evaluate_machine(self.ruleset, facts, exemptions=waived.get(mid, {}),
                                   lang=self.lang)
            writer.machine(mid, unit_id, new, old[mid], digest=stored, digest_known=True)
        for mid in orphans:  # results of a machine that no longer exists
            writer.machine(mid, 0, {}, old[mid])
        self.written += writer.flush(conn, counts=True)
