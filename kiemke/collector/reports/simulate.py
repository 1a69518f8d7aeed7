"""A SIMULATED fleet with a replayable history, for the demo, the golden tests and the
benchmarks. Every unit it creates carries "(mô phỏng)" in its name and its code starts
with "SIM-", so nobody mistakes it for real machines.

Each district's first "office" is the district unit itself (its own machines); the
others are units below it: a three-level tree. The daily facts are known exactly
(`Simulation.result(m, rule, day)`, `stale(m, day)`, `office_of(m, day)`): each
machine x machine rule changes state on random days (about once a month), the new
state drawn with a pass probability that drifts over the window per district (one
improves, one slips, one stays flat); machines go silent for spells of days (stale),
a few move between offices, a few rules are waived for a while, and depreciation
dates come from purchase years 2016-2025. Changes happen at 10:00 local time, so the
state at the end of day d is the state drawn for day d.

`load(engine, ruleset)` writes the units, the machines with their current results, the
state intervals and waivers, then closes every simulated day with the daily job's own
code (history.close_days, as in a catch-up): the figures of a report are what the
collector computes, and a test can compute them again by hand from the known facts.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, insert, select, update

from kiemke.collector.changes import COMPLIANCE, bump
from kiemke.collector.db.asset_tables import machine_depreciation
from kiemke.collector.db.compliance_tables import (
    rule_counts,
    rule_results,
    ruleset_state,
    unit_rule_results,
    waivers,
)
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.history_tables import history_intervals, history_presence
from kiemke.collector.db.tables import machines, units
from kiemke.collector.evaluation.rulestate import state_values
from kiemke.collector.reports.history import UNIT_PREFIX, close_days
from kiemke.compliance import RuleSet, evaluate_unit, unit_facts

LABEL = "(mô phỏng)"
ROOT = f"Liên đoàn Lao động tỉnh Bắc Giang {LABEL}"
DISTRICTS = ("LĐLĐ huyện Yên Dũng", "LĐLĐ huyện Lục Ngạn", "LĐLĐ thành phố Bắc Giang",
             "LĐLĐ huyện Hiệp Hòa", "LĐLĐ huyện Tân Yên")
OFFICES = ("Văn phòng", "Ban Tổ chức", "Ban Chính sách - Pháp luật", "Ban Tài chính",
           "Ủy ban Kiểm tra", "Ban Tuyên giáo")
# Pass probability at the start and at the end of the window, per district in turn.
DRIFTS = ((0.70, 0.95), (0.90, 0.72), (0.85, 0.86))
STATES = ("pass", "fail", "unknown")
CHANGE_AT = time(10, 0)
STALE_AFTER = timedelta(days=3)


@dataclass
class SimMachine:
    machine_id: str
    hostname: str
    district: int
    offices: list[tuple[int, int]]  # (from day index, office index), a move adds one
    stale_spells: list[tuple[int, int]]  # [first, last] day indexes stale at day end
    done_on: date | None  # fully depreciated on


@dataclass
class Simulation:
    rules: Sequence[Any]  # the machine rules (kiemke.compliance.Rule)
    start: date
    days: int
    seed: int = 9
    districts: int = 3
    offices_per_district: int = 4
    machines_per_office: tuple[int, int] = (15, 35)
    tz: str = "Asia/Ho_Chi_Minh"
    change_every: float = 30.0  # mean days between state draws per machine x rule
    machines: list[SimMachine] = field(default_factory=list)
    # (machine index, rule id) -> sorted change day indexes and the state from each
    changes: dict[tuple[int, str], tuple[list[int], list[str]]] = field(default_factory=dict)
    # (machine index, rule id) -> [first, last] day indexes exempt (a waiver)
    exempt: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)
    not_applicable: set[tuple[int, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        n_offices = self.districts * self.offices_per_district
        for d in range(self.districts):
            for o in range(self.offices_per_district):
                office = d * self.offices_per_district + o
                for k in range(rng.randint(*self.machines_per_office)):
                    index = len(self.machines)
                    mid = hashlib.blake2b(f"sim-{self.seed}-{index}".encode(),
                                          digest_size=16).hexdigest()
                    offices = [(0, office)]
                    if rng.random() < 0.03 and self.offices_per_district > 1:
                        other = d * self.offices_per_district + (o + 1) % self.offices_per_district
                        offices.append((rng.randrange(1, self.days), other))
                    spells = []
                    day = int(rng.expovariate(1 / 150))
                    while day < self.days:
                        length = rng.randint(4, 15)
                        spells.append((day, min(day + length - 1, self.days - 1)))
                        day += length + int(rng.expovariate(1 / 150)) + 1
                    year = rng.choice(range(2016, 2026))
                    done = date(year + 5, rng.randint(1, 12), rng.randint(1, 28))
                    self.machines.append(SimMachine(
                        mid, f"SIM-{office + 1:02d}-PC{k + 1:02d}", d, offices, spells,
                        done if rng.random() < 0.9 else None))
        del n_offices
        for i, m in enumerate(self.machines):
            lo, hi = DRIFTS[m.district % len(DRIFTS)]
            for rule in self.rules:
                key = (i, rule.id)
                if rule.id.startswith("equipment") and rng.random() < 0.05:
                    self.not_applicable.add(key)
                    continue
                days_: list[int] = []
                states: list[str] = []
                day = 0
                while day < self.days:
                    p = lo + (hi - lo) * day / max(self.days - 1, 1)
                    draw = rng.random()
                    state = "pass" if draw < p else ("unknown" if draw > 0.97 else "fail")
                    if not states or states[-1] != state:
                        days_.append(day)
                        states.append(state)
                    day += 1 + int(rng.expovariate(1 / self.change_every))
                self.changes[key] = (days_, states)
                if rng.random() < 0.01:
                    first = rng.randrange(self.days)
                    self.exempt[key] = (first, min(self.days - 1, first + rng.randint(20, 90)))

    # ------------------------------------------------------------------ known facts

    def day(self, index: int) -> date:
        return self.start + timedelta(days=index)

    def index(self, day: date) -> int:
        return (day - self.start).days

    def result(self, m: int, rule_id: str, day: int) -> str:
        key = (m, rule_id)
        if key in self.not_applicable:
            return "not_applicable"
        span = self.exempt.get(key)
        if span and span[0] <= day <= span[1]:
            return "exempt"
        days_, states = self.changes[key]
        return states[bisect.bisect_right(days_, day) - 1]

    def stale(self, m: int, day: int) -> bool:
        return any(a <= day <= b for a, b in self.machines[m].stale_spells)

    def office_of(self, m: int, day: int) -> int:
        office = self.machines[m].offices[0][1]
        for first, o in self.machines[m].offices:
            if day >= first:
                office = o
        return office

    def at(self, day: int) -> datetime:
        """When a change of day `day` happens (10:00 local), in UTC."""
        return datetime.combine(self.day(day), CHANGE_AT, ZoneInfo(self.tz)).astimezone(
            dt_timezone.utc)

    def boundaries(self, m: int, rule_id: str) -> list[int]:
        """Days on which machine m's interval for the rule starts."""
        key = (m, rule_id)
        points = {0} | {first for first, _ in self.machines[m].offices}
        if key not in self.not_applicable:
            points |= set(self.changes[key][0])
            span = self.exempt.get(key)
            if span:
                points |= {span[0]} | ({span[1] + 1} if span[1] + 1 < self.days else set())
        return sorted(p for p in points if p < self.days)


# ------------------------------------------------------------------ loading


def _unit(conn: Connection, name: str, parent: Any, code: str) -> Any:
    path = f"{parent.path} / {name}" if parent is not None else name
    level = parent.level + 1 if parent is not None else 0
    uid = conn.execute(units.insert().values(
        parent_id=parent.id if parent is not None else None, name=name, code=code,
        path=path, level=level, created_at=datetime.now(dt_timezone.utc))
        .returning(units.c.id)).scalar_one()
    return conn.execute(select(units).where(units.c.id == uid)).one()


def load(engine: Engine, ruleset: RuleSet, sim: Simulation, *, now: datetime | None = None,
         close: bool = True) -> dict[str, Any]:
    """Write the simulated fleet and its history; close its days (see module doc)."""
    now = now or datetime.now(dt_timezone.utc)
    start_at = datetime.combine(sim.start, time(8, 0), ZoneInfo(sim.tz)).astimezone(
        dt_timezone.utc)
    last = sim.days - 1
    with write_transaction(engine) as conn:
        root = _unit(conn, ROOT, None, f"SIM-{sim.seed}")
        offices: list[Any] = []
        for d in range(sim.districts):
            district = _unit(conn, f"{DISTRICTS[d % len(DISTRICTS)]} {LABEL}", root,
                             f"SIM-{sim.seed}-{d + 1}")
            offices.append(district)  # the district federation's own office
            for o in range(1, sim.offices_per_district):
                offices.append(_unit(conn, OFFICES[o % len(OFFICES)], district,
                                     f"SIM-{sim.seed}-{d + 1}-{o}"))
        office_ids = [u.id for u in offices]
        machine_rows, presence, intervals, current, waiver_rows, dep = [], [], [], [], [], []
        for i, m in enumerate(sim.machines):
            stale_now = sim.stale(i, last)
            spells = [(a, b) for a, b in m.stale_spells]
            last_report = now - timedelta(hours=1)
            if stale_now:
                last_report = sim.at(spells[-1][0]) - STALE_AFTER
            machine_rows.append({
                "machine_id": m.machine_id, "unit_id": office_ids[sim.office_of(i, last)],
                "hostname": m.hostname, "platform": "windows", "agent_version": "simulated",
                "first_seen": start_at, "last_seen": last_report,
                "facts": {"printers.names": [] if sim.office_of(i, last) % 4 == 3
                          else [f"HP LaserJet {sim.office_of(i, last)}"],
                          "network.internet_ok": True, "network.networked": True,
                          "network.subnets": [f"10.{sim.office_of(i, last)}.0.0/24"],
                          "network.gateway": f"10.{sim.office_of(i, last)}.0.1"}})
            # Presence: active / stale intervals, split by moves.
            points = sorted({0} | {f for f, _ in m.offices} | {a for a, _ in spells}
                            | {b + 1 for _, b in spells if b + 1 <= last})
            for k, p in enumerate(points):
                end = sim.at(points[k + 1]) if k + 1 < len(points) else None
                presence.append({"machine_id": m.machine_id,
                                 "start_at": start_at if p == 0 else sim.at(p), "end_at": end,
                                 "unit_id": office_ids[sim.office_of(i, p)],
                                 "hostname": m.hostname,
                                 "status": "stale" if sim.stale(i, p) else "active",
                                 "last_seen": None})
            for rule in sim.rules:
                bounds = sim.boundaries(i, rule.id)
                for k, p in enumerate(bounds):
                    end = sim.at(bounds[k + 1]) if k + 1 < len(bounds) else None
                    result = sim.result(i, rule.id, p)
                    intervals.append({"subject": m.machine_id, "rule_id": rule.id,
                                      "start_at": start_at if p == 0 else sim.at(p),
                                      "end_at": end, "unit_id": office_ids[sim.office_of(i, p)],
                                      "result": result, "reason": _reason(rule, result)})
                final = intervals[-1]
                since = final["start_at"]
                current.append({"machine_id": m.machine_id, "rule_id": rule.id,
                                "unit_id": final["unit_id"], "result": final["result"],
                                "reason": final["reason"], "since": since, "evaluated_at": now})
                span = sim.exempt.get((i, rule.id))
                if span:
                    waiver_rows.append({
                        "machine_id": m.machine_id, "rule_id": rule.id,
                        "reason": "Máy dùng phần mềm chuyên dụng, đang chờ thay thế (mô phỏng)",
                        "author": "demo", "created_at": sim.at(span[0]),
                        "expires_at": sim.at(span[1] + 1) if span[1] < last
                        else now + timedelta(days=30)})
            if m.done_on is not None:
                bought = date(m.done_on.year - 5, m.done_on.month, m.done_on.day)
                dep.append({"machine_id": m.machine_id,
                            "unit_id": office_ids[sim.office_of(i, last)],
                            "category": "desktop", "estimated": False, "start_date": bought,
                            "useful_life_years": 5, "fully_depreciated_on": m.done_on,
                            "reason": "simulated", "updated_at": now})
        conn.execute(insert(machines), machine_rows)
        for chunk in range(0, len(intervals), 5000):
            conn.execute(insert(history_intervals), intervals[chunk:chunk + 5000])
        conn.execute(insert(history_presence), presence)
        conn.execute(insert(rule_results), current)
        if waiver_rows:
            conn.execute(insert(waivers), waiver_rows)
        if dep:
            conn.execute(insert(machine_depreciation), dep)
        _unit_rules(conn, ruleset, sim, offices, machine_rows, start_at, now)
        _count(conn, current)
        # A fresh database: the results above are those of this rule set, so the first
        # start of the collector need not re-evaluate (it would read the fleet's partial
        # facts). A database that has applied rules keeps its state.
        conn.execute(update(ruleset_state).where(ruleset_state.c.id == 1,
                                                 ruleset_state.c.fingerprint.is_(None))
                     .values(**state_values(ruleset, "vi"), applied_at=now))
    closed = 0
    if close:
        # One pass over the intervals for all days: the catch-up code path of the job.
        days = [sim.day(k) for k in range(sim.days)]
        for start in range(0, len(days), 100):
            with write_transaction(engine) as conn:
                closed += len(close_days(conn, days[start:start + 100], ruleset, sim.tz, now,
                                         "simulated"))
    return {"root_id": root.id, "root": root.path, "offices": office_ids,
            "machines": len(sim.machines), "intervals": len(intervals), "closed_days": closed}


def _reason(rule: Any, result: str) -> str | None:
    if result == "fail":
        return f"{rule.title.get('vi', rule.id)}: chưa đạt (mô phỏng)"
    return None


def _unit_rules(conn: Connection, ruleset: RuleSet, sim: Simulation, offices: list[Any],
                machine_rows: list[dict[str, Any]], start_at: datetime, now: datetime) -> None:
    """Unit rules of each office from its machines' facts, constant over the window (the
    live evaluation of the same facts gives the same results)."""
    per_office: dict[int, list[dict[str, Any]]] = {u.id: [] for u in offices}
    for row in machine_rows:
        if row["last_seen"] >= now - STALE_AFTER:
            per_office[row["unit_id"]].append(row["facts"])
    rows, intervals = [], []
    for unit in offices:
        results = evaluate_unit(ruleset, unit_facts(per_office[unit.id], level=unit.level))
        for rule_id, (result, reason) in sorted(results.items()):
            rows.append({"unit_id": unit.id, "rule_id": rule_id, "result": result,
                         "reason": reason, "since": start_at, "evaluated_at": now})
            intervals.append({"subject": f"{UNIT_PREFIX}{unit.id}", "rule_id": rule_id,
                              "start_at": start_at, "end_at": None, "unit_id": unit.id,
                              "result": result, "reason": reason})
    if rows:
        conn.execute(insert(unit_rule_results), rows)
        conn.execute(insert(history_intervals), intervals)


def _count(conn: Connection, current: list[dict[str, Any]]) -> None:
    """rule_counts of the new units (the live figures and /metrics include the fleet)."""
    counts = Counter((r["unit_id"], r["rule_id"], r["result"]) for r in current)
    conn.execute(insert(rule_counts), [{"unit_id": u, "rule_id": r, "result": res, "n": n}
                                       for (u, r, res), n in sorted(counts.items())])
    bump(conn, COMPLIANCE)
