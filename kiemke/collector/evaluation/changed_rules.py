"""Re-evaluation of some machine rules only: those whose definition changed.

The pass of kiemke.collector.evaluation.bulk (same batches, parts over every core, write
transactions), with a cheaper compare: per machine it reads only the facts the changed
rules read (extracted by the database: a small JSON array instead of every fact) and
the changed rules' stored rows (one outer join per rule on the primary key), and
evaluates only those rules. A machine goes to the write path when a changed rule's
result, reason or unit differs from its stored row (or the row is missing, or the
machine has a waiver); there, as in the full pass, the machine's facts are read again
and every rule evaluated, so its rows, counts and results digest are what a full pass
writes.

Why that is the full pass's outcome: the other rules, the facts configuration and the
engine are those the stored results were computed with (kiemke.collector.evaluation.
rulestate decides that), and results are a function of the stored facts, so for the
other rules a full pass would find nothing to change. It starts from the results every
writer keeps; it does not repair rows edited by hand, nor delete results of machines
that no longer exist, nor expire waivers of other rules (the forced full pass and the
maintenance pass do).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    select,
    type_coerce,
)

from kiemke.collector.db.compliance_tables import rule_results
from kiemke.collector.db.tables import machines
from kiemke.collector.evaluation.bulk import BulkEvaluator, Pending
from kiemke.collector.evaluation.store import active_waivers
from kiemke.compliance import RuleSet
from kiemke.compliance.evaluate import ReasonMemo
from kiemke.compliance.facts import decode_stored_facts
from kiemke.compliance.rules import compile_rules


def _extracted(dialect: str, names: Sequence[str]) -> Any:
    """The facts `names` of a machine as one JSON array text (NULL without facts)."""
    if dialect == "postgresql":
        array = func.jsonb_build_array(*(machines.c.facts.op("->")(literal(n))
                                         for n in names))
        return case((machines.c.facts.is_(None), None), else_=cast(array, Text))
    # json_extract with two paths or more gives one JSON array (true stays true); with
    # one it would give the SQL value: a single name is asked twice.
    paths = [f'$."{n}"' for n in names] or ['$."now"']  # none: any path, ignored
    return type_coerce(func.json_extract(machines.c.facts, *(paths * 2)[:max(2, len(paths))]),
                       String)


def _changed_query(dialect: str, bounded: bool, rule_ids: Sequence[str],
                   names: Sequence[str]) -> Any:
    # The batch of machines first, in a subquery, then the joins: a planner without
    # statistics (a table just filled) would otherwise join the whole id range and sort.
    batch = select(machines.c.machine_id, machines.c.unit_id,
                   _extracted(dialect, names).label("facts")).where(
        machines.c.machine_id > bindparam("lo"))
    if bounded:
        batch = batch.where(machines.c.machine_id <= bindparam("hi"))
    m = batch.order_by(machines.c.machine_id).limit(bindparam("n")).subquery("m")
    columns: list[Any] = [m.c.machine_id, m.c.unit_id, m.c.facts]
    source: Any = m
    for j, rule_id in enumerate(rule_ids):
        stored = rule_results.alias(f"r{j}")
        source = source.outerjoin(stored, and_(stored.c.machine_id == m.c.machine_id,
                                               stored.c.rule_id == literal(rule_id)))
        columns += [stored.c.result.label(f"result{j}"), stored.c.reason.label(f"reason{j}"),
                    stored.c.unit_id.label(f"unit{j}")]
    return select(*columns).select_from(source).order_by(m.c.machine_id)


class ChangedRulesEvaluator(BulkEvaluator):
    """The pass for the machine rules `rule_ids` only; see the module docstring."""

    def __init__(self, ruleset: RuleSet, lang: str, now: datetime,
                 rule_ids: Sequence[str]) -> None:
        super().__init__(ruleset, lang, now)
        wanted = set(rule_ids)
        self.changed = [r for r in ruleset.machine_rules if r.id in wanted]
        self.rule_ids = tuple(r.id for r in self.changed)
        self.names = tuple(dict.fromkeys(name for rule in self.changed
                                         for name in rule.facts_read(lang)))
        self._results = compile_rules(self.changed)
        self._changed_memo = ReasonMemo(self.changed, lang)

    def _query(self, dialect: str, bounded: bool) -> Any:
        return _changed_query(dialect, bounded, self.rule_ids, self.names)

    def _compare(self, conn: Connection, rows: Sequence[Any], lo: str, hi: str | None
                 ) -> tuple[dict[str, Pending], list[str]] | None:
        ids = [r[0] for r in rows]
        waived = active_waivers(conn, ids, self.now, contiguous=True) if ids else {}
        evaluate, reason, names = self._results, self._changed_memo.reason, self.names
        loads = json.loads
        columns = [(3 + 3 * j, 4 + 3 * j, 5 + 3 * j) for j in range(len(self.rule_ids))]
        differ: dict[str, Pending] = {}
        for row in rows:
            mid, unit_id, extracted = row[0], row[1], row[2]
            if extracted is None:
                continue  # no facts: nothing to evaluate (as in the full pass)
            if mid in waived:
                differ[mid] = (unit_id, None, None, None)
                continue
            facts = decode_stored_facts(dict(zip(names, loads(extracted), strict=False)))
            results = evaluate(facts)
            for j, (res, why, unit) in enumerate(columns):
                result = results[j]
                if row[res] != result or row[unit] != unit_id or \
                        row[why] != reason(j, result, facts):
                    differ[mid] = (unit_id, None, None, None)
                    break
        self.machines += len(rows)
        return (differ, []) if differ else None

    def part(self) -> ChangedRulesEvaluator:
        part = ChangedRulesEvaluator(self.ruleset, self.lang, self.now, self.rule_ids)
        part.counts = self.counts
        return part
