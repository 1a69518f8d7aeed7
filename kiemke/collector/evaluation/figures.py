"""Per-unit compliance figures, rolled up over the unit tree, from the stored aggregates.

Machine rules: `rule_counts` (per direct unit, every machine) minus the results of
stale machines (a join over the few stale machines), rolled up; ratios therefore cover
active machines only and stale machines are counted apart. Unit rules: the results in
`unit_rule_results` counted over each unit's subtree. Used by /metrics, the API and
the daily history, so all three show the same numbers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, tuple_, union_all

from kiemke.collector.db.compliance_tables import rule_counts, rule_results, unit_rule_results
from kiemke.collector.db.tables import machines, units
from kiemke.collector.scrape import rollup
from kiemke.collector.units import Unit, all_units
from kiemke.compliance import RESULTS, Rule, RuleSet, gap, ratio

EMPTY: Mapping[str, int] = {}


@dataclass
class Figures:
    units: list[Unit]
    machine: dict[tuple[int, str], dict[str, int]]  # (unit, rule) -> counts, active only
    stale: dict[tuple[int, str], int]  # (unit, rule) -> stale machines left out
    unit: dict[tuple[int, str], dict[str, int]]  # (unit, unit rule) -> units per result

    def counts(self, unit_id: int, rule_id: str, kind: str) -> Mapping[str, int]:
        table = self.unit if kind == "unit" else self.machine
        return table.get((unit_id, rule_id), EMPTY)


def nest(flat: dict[tuple[int, Any], float]) -> dict[tuple[int, str], dict[str, int]]:
    out: dict[tuple[int, str], dict[str, int]] = {}
    for (unit_id, (rule_id, result)), n in flat.items():
        if n:
            bucket = out.get((unit_id, rule_id))
            if bucket is None:  # plain dicts: Counter() costs microseconds per unit x rule
                bucket = out[(unit_id, rule_id)] = {}
            bucket[result] = bucket.get(result, 0) + int(n)
    return out


Direct = dict[tuple[int, Any], float]  # (unit_id, (rule_id, result)) -> n, one unit


def direct_counts(conn: Connection, ruleset: RuleSet, cutoff: datetime,
                  unit_ids: Collection[int] | None = None) -> tuple[Direct, Direct, Direct]:
    """Direct (not rolled up) counts: active machines per machine-rule result, stale
    machines left out per machine rule (result ""), offices per unit-rule result.

    `unit_ids`: only these units (what /metrics re-reads after a change), else all.
    """
    machine_rules = {r.id for r in ruleset.machine_rules}
    direct: Direct = {}
    counts_query = select(rule_counts.c.unit_id, rule_counts.c.rule_id, rule_counts.c.result,
                          rule_counts.c.n).where(rule_counts.c.n != 0)
    # Stale machines first (few), then their results by primary key; unit_id IN (...)
    # lets the (unit_id, last_seen) index answer this.
    stale_units = select(units.c.id) if unit_ids is None else sorted(unit_ids)
    stale_query = (
        select(rule_results.c.unit_id, rule_results.c.rule_id, rule_results.c.result,
               func.count())
        .where(rule_results.c.machine_id.in_(select(machines.c.machine_id).where(
            machines.c.unit_id.in_(stale_units), machines.c.last_seen < cutoff)))
        .group_by(rule_results.c.unit_id, rule_results.c.rule_id, rule_results.c.result))
    unit_query = select(unit_rule_results.c.unit_id, unit_rule_results.c.rule_id,
                        unit_rule_results.c.result)
    if unit_ids is not None:
        wanted = sorted(unit_ids)
        counts_query = counts_query.where(rule_counts.c.unit_id.in_(wanted))
        stale_query = stale_query.where(rule_results.c.unit_id.in_(wanted))
        unit_query = unit_query.where(unit_rule_results.c.unit_id.in_(wanted))
    for unit_id, rule_id, result, n in conn.execute(counts_query):
        if rule_id in machine_rules:
            direct[(unit_id, (rule_id, result))] = n
    stale_direct: Direct = {}
    for unit_id, rule_id, result, n in conn.execute(stale_query):
        if rule_id in machine_rules:
            key = (unit_id, (rule_id, result))
            direct[key] = direct.get(key, 0) - n
            stale_direct[(unit_id, (rule_id, ""))] = stale_direct.get(
                (unit_id, (rule_id, "")), 0) + n
    unit_rules = {r.id for r in ruleset.unit_rules}
    unit_direct: Direct = {}
    for unit_id, rule_id, result in conn.execute(unit_query):
        if rule_id in unit_rules:
            unit_direct[(unit_id, (rule_id, result))] = 1
    return direct, stale_direct, unit_direct


def block_counts(conn: Connection, ruleset: RuleSet, blocks: Collection[tuple[int, str]],
                 stale: Mapping[str, int]) -> dict[tuple[int, str], dict[str, int]]:
    """direct_counts() of the given (unit_id, rule_id) blocks only, nested: active
    machines per result for machine rules, offices per result for unit rules.

    `stale`: the stale machines (machine_id -> unit_id) read in this transaction with the
    same cutoff; their results are subtracted as direct_counts() subtracts them, read by
    machine id rather than through the machines table. What /metrics re-reads after a
    change: a few hundred rows, not every rule of every changed unit."""
    kinds = {r.id: r.kind for r in ruleset.rules}
    machine_blocks = sorted((u, r) for u, r in blocks if kinds.get(r) == "machine")
    unit_blocks = sorted((u, r) for u, r in blocks if kinds.get(r) == "unit")
    direct: Direct = {}
    for start in range(0, len(machine_blocks), 500):
        part = machine_blocks[start:start + 500]
        units_ = {u for u, _ in part}
        stale_ids = sorted(m for m, u in stale.items() if u in units_)
        # One statement (one round trip): the counts, then the stale machines' results
        # with a negative sign.
        parts = [select(rule_counts.c.unit_id, rule_counts.c.rule_id, rule_counts.c.result,
                        rule_counts.c.n)
                 .where(tuple_(rule_counts.c.unit_id, rule_counts.c.rule_id).in_(part),
                        rule_counts.c.n != 0)]
        parts += [select(rule_results.c.unit_id, rule_results.c.rule_id,
                         rule_results.c.result, -func.count())
                  .where(rule_results.c.machine_id.in_(stale_ids[at:at + 500]),
                         tuple_(rule_results.c.unit_id, rule_results.c.rule_id).in_(part))
                  .group_by(rule_results.c.unit_id, rule_results.c.rule_id,
                            rule_results.c.result)
                  for at in range(0, len(stale_ids), 500)]
        for unit_id, rule_id, result, n in conn.execute(union_all(*parts)):
            key = (unit_id, (rule_id, result))
            direct[key] = direct.get(key, 0) + n
    for start in range(0, len(unit_blocks), 500):
        for unit_id, rule_id, result in conn.execute(
                select(unit_rule_results.c.unit_id, unit_rule_results.c.rule_id,
                       unit_rule_results.c.result)
                .where(tuple_(unit_rule_results.c.unit_id, unit_rule_results.c.rule_id)
                       .in_(unit_blocks[start:start + 500]))):
            direct[(unit_id, (rule_id, result))] = 1
    return nest(direct)


def compute(conn: Connection, ruleset: RuleSet, now: datetime, stale_after: timedelta,
            units_: list[Unit] | None = None) -> Figures:
    units_ = all_units(conn) if units_ is None else units_
    direct, stale_direct, unit_direct = direct_counts(conn, ruleset, now - stale_after)
    stale = {(u, r): int(n) for (u, (r, _)), n in rollup(units_, stale_direct).items() if n}
    return Figures(units_, nest(rollup(units_, direct)), stale,
                   nest(rollup(units_, unit_direct)))


def summary(counts: Mapping[str, int], target: float) -> dict[str, Any]:
    """The JSON shape of one unit x rule figure."""
    value = ratio(counts)
    return {"counts": {r: counts.get(r, 0) for r in RESULTS},
            "ratio": None if value is None else round(value, 6),
            "target": target, "gap": gap(counts, target),
            "meets_target": None if value is None else value + 1e-9 >= target}


def rule_figure(figures: Figures, unit_ids: list[int], rule: Rule) -> dict[str, Any]:
    """One rule's figures summed over `unit_ids` (one unit, or the roots for everything):
    the shape the compliance API and the console pages show."""
    total: Counter[str] = Counter()
    stale = 0
    for uid in unit_ids:
        total.update(figures.counts(uid, rule.id, rule.kind))
        stale += figures.stale.get((uid, rule.id), 0)
    return {**summary(total, rule.target), "stale": stale}
