"""Evaluating rules in the collector: on every report, after a rule change, on a timer.

- `on_report` runs inside the ingest transaction: facts from the report, results of
  the machine rules (with its waivers), deltas to the per-unit counts, and the unit
  rules of the machine's unit when a fact they read changed.
- `ensure_current` re-evaluates when the rule set's fingerprint differs from the one
  the stored results were computed with (claimed by one worker only): only the rules
  whose definition changed when that is enough (kiemke.collector.evaluation.rulestate),
  otherwise every machine.
- `maintain` is the periodic pass: rule-set check, waiver expiry, unit rules of every
  unit (machines turning stale change them) and today's history snapshot.
Every step is idempotent, so any number of workers and instances may run it.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    String,
    and_,
    bindparam,
    exists,
    func,
    not_,
    or_,
    select,
    type_coerce,
    update,
)

from kiemke.collector.config import CollectorConfig
from kiemke.collector.db.compliance_tables import rule_results, ruleset_state, waivers
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import machines, units
from kiemke.collector.evaluation.bulk import BulkEvaluator, run_parallel
from kiemke.collector.evaluation.changed_rules import ChangedRulesEvaluator
from kiemke.collector.evaluation.history import snapshot_day
from kiemke.collector.evaluation.rulestate import plan, state_values
from kiemke.collector.evaluation.store import (
    ResultWriter,
    active_waivers,
    load_results,
    load_unit_results,
    move_machine_results,
    recount,
    write_unit_results,
)
from kiemke.collector.timeutil import utcnow
from kiemke.compliance import (
    RuleSet,
    evaluate_machine,
    evaluate_unit,
    facts_from_json,
    facts_from_report,
    facts_to_json,
    unit_facts,
)

log = logging.getLogger(__name__)

# Machine facts that unit rules read (kiemke.compliance.units): only a change in one of
# them (or a new or moved machine) re-evaluates the unit's rules on ingest.
UNIT_INPUTS = ("printers.names", "network.internet_ok", "network.networked",
               "network.subnets", "network.gateway")
# Larger units are left to the periodic pass: reading hundreds of machines' facts on
# every report would cost more than the report itself.
UNIT_INLINE_MAX = 200
BATCH = 2000
# A re-evaluation claim older than this is taken over (its worker died).
CLAIM_TIMEOUT = timedelta(minutes=15)

AssetLookup = Callable[[Connection, str], "dict[str, Any] | None"]


def _no_asset(_conn: Connection, _machine_id: str) -> None:
    return None


# Ingest statements built once (building costs more than running them).
_FACTS_OF = select(machines.c.facts).where(machines.c.machine_id == bindparam("m"))
_SET_FACTS = (update(machines).where(machines.c.machine_id == bindparam("m"))
              .values(facts=bindparam("facts")))


def _unit_inputs(conn: Connection, unit_ids: list[int], cutoff: datetime
                 ) -> Iterable[tuple[int, list[Any]]]:
    """(unit_id, [UNIT_INPUTS values]) per active machine of the units.

    The inputs come back as one small JSON array per machine, built by the database:
    decoding one array is much cheaper than five JSON values through SQLAlchemy (the
    periodic pass reads every machine of every unit)."""
    where = (machines.c.unit_id.in_(unit_ids), machines.c.last_seen >= cutoff)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        array = func.jsonb_build_array(*(machines.c.facts.op("->")(k) for k in UNIT_INPUTS))
        yield from conn.execute(select(machines.c.unit_id, array).where(*where))
    elif dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 38):
        # `->` keeps JSON types (true stays true; json_extract would give 1).
        array = func.json_array(*(machines.c.facts.op("->")(f'$."{k}"') for k in UNIT_INPUTS))
        query = select(machines.c.unit_id, type_coerce(array, String)).where(*where)
        for unit_id, values in conn.execute(query):
            yield unit_id, json.loads(values)
    else:
        columns = [machines.c.unit_id, *(machines.c.facts[k] for k in UNIT_INPUTS)]
        for row in conn.execute(select(*columns).where(*where)):
            yield row[0], list(row[1:])


class Evaluator:
    def __init__(self, engine: Engine, config: CollectorConfig, ruleset: RuleSet, *,
                 asset_lookup: AssetLookup = _no_asset, lang: str = "vi") -> None:
        self.engine = engine
        self.config = config
        self.ruleset = ruleset
        self.asset_lookup = asset_lookup
        self.lang = lang
        # Processes of a full re-evaluation: the cores this process may use.
        self.workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)

    # ------------------------------------------------------------------ ingest

    def on_report(self, conn: Connection, machine: dict[str, Any], report: dict[str, Any]
                  ) -> None:
        """The evaluate step of the ingest pipeline (kiemke.collector.pipeline.evaluate)."""
        mid, unit_id, now = machine["machine_id"], machine["unit_id"], machine["last_seen"]
        if not machine["current"]:
            # A late report does not change the machine's state; only its unit may have
            # changed (re-enrolled elsewhere): results and counts follow it.
            if move_machine_results(conn, mid, unit_id):
                self.evaluate_units(conn, self._units_of_results(conn, mid) | {unit_id}, now)
            return
        # Given by the ingest upsert (RETURNING); read here for other callers.
        old_facts = machine["stored_facts"] if "stored_facts" in machine else \
            conn.execute(_FACTS_OF, {"m": mid}).scalar()
        facts = facts_from_report(report, now=now, asset=self.asset_lookup(conn, mid),
                                  config=self.ruleset.config,
                                  unit_codes=self._unit_codes(conn, unit_id))
        stored = facts_to_json(facts)
        if stored != old_facts:  # same facts (the usual case within a day): no write
            conn.execute(_SET_FACTS, {"m": mid, "facts": stored})
        new = evaluate_machine(self.ruleset, facts,
                               exemptions=active_waivers(conn, [mid], now).get(mid, {}),
                               lang=self.lang)
        old = load_results(conn, [mid])[mid]
        writer = ResultWriter(now)
        writer.machine(mid, unit_id, new, old)
        writer.flush(conn)
        old_units = {r.unit_id for r in old.values()}
        if (old_facts is None or old_units != {unit_id}
                or any(old_facts.get(k) != stored.get(k) for k in UNIT_INPUTS)):
            self.evaluate_units(conn, old_units | {unit_id}, now, inline=True)

    def _unit_codes(self, conn: Connection, unit_id: int) -> tuple[str, ...]:
        """Codes of the unit and its ancestors, for per-unit settings of the fact builder
        (approved.yml email.units). Read only when such settings exist: the common case
        costs no query."""
        if not self.ruleset.config.unit_domains:
            return ()
        codes: list[str] = []
        current: int | None = unit_id
        while current is not None and len(codes) < 32:
            row = conn.execute(select(units.c.code, units.c.parent_id)
                               .where(units.c.id == current)).first()
            if row is None:
                break
            if row.code:
                codes.append(row.code)
            current = row.parent_id
        return tuple(codes)

    @staticmethod
    def _units_of_results(conn: Connection, machine_id: str) -> set[int]:
        return set(conn.execute(select(rule_results.c.unit_id).distinct()
                                .where(rule_results.c.machine_id == machine_id)).scalars())

    # ------------------------------------------------------------------ unit rules

    def evaluate_units(self, conn: Connection, unit_ids: Iterable[int], now: datetime, *,
                       inline: bool = False,
                       inputs: Mapping[int, list[dict[str, Any]]] | None = None) -> int:
        """Evaluate the unit rules of the given units over their active machines.

        `inputs`: the UNIT_INPUTS facts of every active machine per unit, when the caller
        has read them already (the full re-evaluation); otherwise they are read here."""
        ids = sorted(set(unit_ids))
        if not ids or not self.ruleset.unit_rules:
            return 0
        levels = dict(conn.execute(select(units.c.id, units.c.level)
                                   .where(units.c.id.in_(ids))).all())
        per_unit: dict[int, list[dict[str, Any]]] = {uid: [] for uid in ids}
        if inputs is not None:
            for uid in ids:
                per_unit[uid] = inputs.get(uid, [])
        else:
            for unit_id, values in _unit_inputs(conn, ids, now - self.config.stale_after):
                per_unit[unit_id].append(dict(zip(UNIT_INPUTS, values, strict=True)))
        written = 0
        stored = load_unit_results(conn, ids)  # one read for all, not one per unit
        for uid in ids:
            if uid not in levels:
                continue  # deleted meanwhile
            if inline and len(per_unit[uid]) > UNIT_INLINE_MAX:
                continue  # the periodic pass takes large units
            facts = unit_facts(per_unit[uid], level=levels[uid])
            written += write_unit_results(conn, uid, evaluate_unit(self.ruleset, facts,
                                                                   lang=self.lang), now,
                                          stored[uid])
        return written

    def evaluate_all_units(self, now: datetime) -> int:
        with write_transaction(self.engine) as conn:
            ids = list(conn.execute(select(units.c.id)).scalars())
            return self.evaluate_units(conn, ids, now)

    # ------------------------------------------------------------------ machines

    def _evaluate_rows(self, conn: Connection, rows: Sequence[Any], now: datetime, *,
                       recompute: bool, contiguous: bool, counts: bool) -> int:
        ids = [r.machine_id for r in rows]
        old = load_results(conn, ids, contiguous=contiguous)
        waived = active_waivers(conn, ids, now, contiguous=contiguous)
        writer = ResultWriter(now)
        fact_updates: list[dict[str, Any]] = []
        for row in rows:
            facts = None
            if recompute or row.facts is None:
                report = conn.execute(select(machines.c.report, machines.c.last_seen)
                                      .where(machines.c.machine_id == row.machine_id)).first()
                if report is not None and report.report is not None:
                    facts = facts_from_report(report.report, now=report.last_seen,
                                              asset=self.asset_lookup(conn, row.machine_id),
                                              config=self.ruleset.config,
                                              unit_codes=self._unit_codes(conn, row.unit_id))
                    fact_updates.append({"m": row.machine_id, "facts": facts_to_json(facts)})
            if facts is None:
                if row.facts is None:
                    continue  # neither facts nor a report: nothing to evaluate
                facts = facts_from_json(row.facts)
            new = evaluate_machine(self.ruleset, facts,
                                   exemptions=waived.get(row.machine_id, {}), lang=self.lang)
            writer.machine(row.machine_id, row.unit_id, new, old[row.machine_id])
        if fact_updates:
            conn.execute(update(machines).where(machines.c.machine_id == bindparam("m"))
                         .values(facts=bindparam("facts")), fact_updates)
        return writer.flush(conn, counts=counts)

    def reevaluate_machines(self, conn: Connection, machine_ids: Iterable[str],
                            now: datetime, *, recompute: bool = False) -> int:
        """Re-evaluate some machines inside the caller's transaction (waivers, moves,
        an asset import with recompute=True); return the result rows written."""
        ids = sorted(set(machine_ids))
        written = 0
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            rows = conn.execute(select(machines.c.machine_id, machines.c.unit_id,
                                       machines.c.facts)
                                .where(machines.c.machine_id.in_(chunk))
                                .order_by(machines.c.machine_id)).all()
            written += self._evaluate_rows(conn, rows, now, recompute=recompute,
                                           contiguous=False, counts=True)
        return written

    def reevaluate_all(self, now: datetime | None = None, *, recompute: bool = False,
                       batch: int = BATCH, workers: int | None = None) -> dict[str, Any]:
        """Every machine from its stored facts (or its last report when `recompute`),
        one transaction per batch; then unit rules evaluated.

        From stored facts (a rule change): kiemke.collector.evaluation.bulk compares by
        signature and keeps rule_counts by deltas. With `recompute` (the facts
        configuration changed, rare): facts rebuilt from reports, rule_counts rebuilt.
        From stored facts the pass is split over `workers` processes (default: the
        evaluator's, one per usable core; kiemke.collector.evaluation.bulk.run_parallel)."""
        now = now or utcnow()
        started = time.perf_counter()
        refreshed = self._refresh_facts(batch) if recompute else 0
        bulk = BulkEvaluator(self.ruleset, self.lang, now, unit_inputs=UNIT_INPUTS,
                             cutoff=now - self.config.stale_after, counts=not recompute)
        used = run_parallel(bulk, self.engine, batch, self.workers if workers is None else workers)
        inputs = {uid: [facts for values, n in found.items()
                        for facts in [dict(zip(UNIT_INPUTS, values, strict=True))] * n]
                  for uid, found in bulk.per_unit.items()}
        with write_transaction(self.engine) as conn:
            if recompute:
                # Counts that drifted (a bug, an edit by hand) are rebuilt on this rare path.
                recount(conn)
            unit_ids = list(conn.execute(select(units.c.id)).scalars())
            self.evaluate_units(conn, unit_ids, now, inputs=inputs)
        stats = {"machines": bulk.machines, "written": bulk.written, "processes": used,
                 "seconds": round(time.perf_counter() - started, 3)}
        if recompute:
            stats["facts_rebuilt"] = refreshed
        return stats

    def reevaluate_rules(self, rule_ids: Sequence[str], now: datetime | None = None, *,
                         unit_rules: bool = False, batch: int = BATCH,
                         workers: int | None = None) -> dict[str, Any]:
        """The results of the machine rules `rule_ids` only (rulestate.plan says when
        that is enough; kiemke.collector.evaluation.changed_rules), split over `workers`
        processes as reevaluate_all; then, if `unit_rules`, the unit rules of every
        unit, their inputs read from the machines (the maintenance pass's way)."""
        now = now or utcnow()
        started = time.perf_counter()
        stats: dict[str, Any] = {"machines": 0, "written": 0, "processes": 0}
        if rule_ids:
            bulk = ChangedRulesEvaluator(self.ruleset, self.lang, now, rule_ids)
            stats["processes"] = run_parallel(bulk, self.engine, batch,
                                              self.workers if workers is None else workers)
            stats["machines"], stats["written"] = bulk.machines, bulk.written
        if unit_rules:
            stats["unit_results_written"] = self.evaluate_all_units(now)
        stats["seconds"] = round(time.perf_counter() - started, 3)
        return stats

    def _refresh_facts(self, batch: int) -> int:
        """Stored facts rebuilt from each machine's last report where they differ (the
        facts configuration changed); one transaction per batch; returns how many."""
        last = ""
        changed = 0
        while True:
            with write_transaction(self.engine) as conn:
                query = (select(machines.c.machine_id, machines.c.unit_id, machines.c.last_seen,
                                machines.c.report, machines.c.facts)
                         .where(machines.c.machine_id > last, machines.c.report.is_not(None))
                         .order_by(machines.c.machine_id).limit(batch))
                if conn.dialect.name == "postgresql":
                    # Ingest of one of these machines waits for this batch (row locks).
                    query = query.with_for_update(of=machines)
                rows = conn.execute(query).all()
                updates = []
                for row in rows:
                    if row.report is None:  # a JSON null (SQL NULLs are not read)
                        continue
                    facts = facts_to_json(facts_from_report(
                        row.report, now=row.last_seen,
                        asset=self.asset_lookup(conn, row.machine_id),
                        config=self.ruleset.config,
                        unit_codes=self._unit_codes(conn, row.unit_id)))
                    if facts != row.facts:
                        updates.append({"m": row.machine_id, "facts": facts})
                if updates:
                    conn.execute(_SET_FACTS, updates)
                changed += len(updates)
            if len(rows) < batch:
                return changed
            last = rows[-1].machine_id

    # ------------------------------------------------------------------ rule changes

    def ensure_current(self, now: datetime | None = None, *, force: bool = False
                       ) -> dict[str, Any] | None:
        """Re-evaluate when the rules changed since the stored results: the changed
        rules only, or everything (rulestate.plan; `force`: everything, always).

        Only the worker whose UPDATE claims the new fingerprint does it; the others go
        on serving (their ingest already uses the new rules). Returns the statistics,
        or None when nothing had to be done here.
        """
        now = now or utcnow()
        fingerprint = self.ruleset.fingerprint
        with write_transaction(self.engine) as conn:
            state = conn.execute(select(ruleset_state).where(ruleset_state.c.id == 1)).first()
            if state is None:
                conn.execute(ruleset_state.insert().values(id=1))
                state = conn.execute(select(ruleset_state)
                                     .where(ruleset_state.c.id == 1)).one()
            if state.fingerprint == fingerprint and not force:
                return None
            claim = conn.execute(update(ruleset_state).where(
                ruleset_state.c.id == 1,
                or_(ruleset_state.c.pending_fingerprint.is_(None),
                    ruleset_state.c.pending_fingerprint != fingerprint,
                    ruleset_state.c.claimed_at < now - CLAIM_TIMEOUT)
            ).values(pending_fingerprint=fingerprint, claimed_at=now))
            if claim.rowcount != 1 and not force:
                return None
            todo = plan(dict(state._mapping), self.ruleset, self.lang, force=force)
        try:
            if todo.full:
                log.info("rules changed (fingerprint %s): re-evaluating every machine%s",
                         fingerprint[:12], " from its last report" if todo.recompute else "")
                stats = self.reevaluate_all(now, recompute=todo.recompute)
            else:
                log.info("rules changed (fingerprint %s): re-evaluating the rules %s%s",
                         fingerprint[:12], ", ".join(todo.machine_rules) or "(no machine rule)",
                         " and the unit rules" if todo.unit_rules else "")
                stats = self.reevaluate_rules(todo.machine_rules, now,
                                              unit_rules=todo.unit_rules)
        except BaseException:
            with write_transaction(self.engine) as conn:  # let another worker retry
                conn.execute(update(ruleset_state).where(ruleset_state.c.id == 1)
                             .values(pending_fingerprint=None, claimed_at=None))
            raise
        with write_transaction(self.engine) as conn:
            conn.execute(update(ruleset_state).where(ruleset_state.c.id == 1).values(
                **state_values(self.ruleset, self.lang), applied_at=now,
                pending_fingerprint=None, claimed_at=None))
        log.info("re-evaluated %(machines)d machines in %(seconds)s s "
                 "(%(written)d results changed)", stats)
        return {**stats, "recomputed_facts": todo.recompute,
                "rules": "all" if todo.full else list(todo.machine_rules)}

    # ------------------------------------------------------------------ maintenance

    def expire_waivers(self, now: datetime) -> int:
        """Re-evaluate machines whose exemptions no longer match their waivers (a waiver
        expired or was revoked, or one in force is not applied yet)."""
        in_force = and_(waivers.c.machine_id == rule_results.c.machine_id,
                        waivers.c.rule_id == rule_results.c.rule_id,
                        waivers.c.revoked_at.is_(None), waivers.c.expires_at > now)
        with write_transaction(self.engine) as conn:
            ended = conn.execute(select(rule_results.c.machine_id).distinct().where(
                rule_results.c.result == "exempt", not_(exists().where(in_force)))).scalars()
            missing = conn.execute(select(rule_results.c.machine_id).distinct().where(
                rule_results.c.result.not_in(("exempt", "not_applicable")),
                exists().where(in_force))).scalars()
            ids = set(ended) | set(missing)
            if ids:
                self.reevaluate_machines(conn, ids, now)
        return len(ids)

    def claim_maintenance(self, now: datetime, interval: float) -> bool:
        """True when no other worker or instance ran a pass in the last 90% of `interval`."""
        with write_transaction(self.engine) as conn:
            done = conn.execute(update(ruleset_state).where(
                ruleset_state.c.id == 1,
                or_(ruleset_state.c.maintained_at.is_(None),
                    ruleset_state.c.maintained_at <= now - timedelta(seconds=interval * 0.9))
            ).values(maintained_at=now))
            return done.rowcount == 1

    def maintain(self, now: datetime | None = None) -> dict[str, Any]:
        """One maintenance pass; see the module docstring."""
        now = now or utcnow()
        stats: dict[str, Any] = {"reevaluation": self.ensure_current(now)}
        stats["waivers_changed_machines"] = self.expire_waivers(now)
        stats["unit_results_written"] = self.evaluate_all_units(now)
        stats["daily_rows"] = snapshot_day(self.engine, self.ruleset, self.config, now)
        return stats
