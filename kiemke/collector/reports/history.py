"""The daily history job: state intervals synced from the live tables, then each local
day that ended is closed from those intervals (per unit x rule counts in
compliance_daily, the unit tree and its machine counts in history_units, the rule set
in history_days / history_rulesets).

Closing a day always replays the intervals at the instant the day ended, whether the
job runs just after midnight or days later (catch-up after downtime): one code path, so
no gap and no double count. Each day is closed once, in one transaction, and the job
holds the `daily` lock across collector instances (kiemke.collector.db.job_locks: an
advisory lock on PostgreSQL, a lock row on SQLite). Running it again does nothing.
"""

from __future__ import annotations

import bisect
import logging
import threading
import weakref
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, case, delete, func, or_, select, update

from kiemke.collector.db.asset_tables import machine_depreciation
from kiemke.collector.db.compliance_tables import compliance_daily, rule_results, unit_rule_results
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.history_tables import (
    history_days,
    history_intervals,
    history_lock,
    history_presence,
    history_rulesets,
    history_units,
)
from kiemke.collector.db.job_locks import exclusive
from kiemke.collector.db.tables import machines, reports, units
from kiemke.collector.reports.periods import day_end, local_day
from kiemke.collector.timeutil import utcnow
from kiemke.compliance import RESULTS, RuleSet, ratio

log = logging.getLogger(__name__)

LOCK_NAME = "daily"  # its lock (kiemke.collector.db.job_locks) and its history_lock row
# Results evaluated this long before the last sync are looked at again: a transaction
# that began before the sync may commit after it.
SYNC_MARGIN = timedelta(minutes=10)
BATCH = 2000
UNIT_PREFIX = "unit:"


# ------------------------------------------------------------------ rule sets

def ruleset_definitions(ruleset: RuleSet) -> list[dict[str, Any]]:
    """What a report needs of each rule, kept per rule-set fingerprint."""
    return [{"id": r.id, "kind": r.kind, "title": dict(r.title), "severity": r.severity,
             "target": r.target,
             "source": {"plan": r.source.plan, "document": r.source.document,
                        "seed": r.source.seed}}
            for r in ruleset.rules]


def register_ruleset(conn: Connection, ruleset: RuleSet, day: date, now: datetime) -> None:
    known = conn.execute(select(history_rulesets.c.fingerprint).where(
        history_rulesets.c.fingerprint == ruleset.fingerprint)).first()
    if known is None:
        conn.execute(history_rulesets.insert().values(
            fingerprint=ruleset.fingerprint, rules=ruleset_definitions(ruleset),
            first_day=day, created_at=now))


# ------------------------------------------------------------------ interval sync

def _chunks(items: Sequence[str], size: int = BATCH) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def sync_intervals(conn: Connection, now: datetime, stale_after: timedelta,
                   last_sync: datetime | None) -> dict[str, int]:
    """Bring the open intervals in line with the live tables; return what changed.

    Results are rewritten (evaluated_at) only when they change, so the rows evaluated
    since the last sync are a day's changes; the database compares each with its open
    interval (one join on the interval's key) and only the differences come to Python.
    A first sync compares every row."""
    presence_changed, _moved = sync_presence(conn, now, stale_after)
    rr, hi = rule_results.c, history_intervals.c
    recent = [] if last_sync is None else [rr.evaluated_at >= last_sync - SYNC_MARGIN]
    current: dict[tuple[str, str], tuple[int, str, str | None, datetime]] = {}
    open_: dict[tuple[str, str], tuple[datetime, int, str]] = {}
    for m, r, u, res, why, since, st, p_unit, p_res in conn.execute(
            select(rr.machine_id, rr.rule_id, rr.unit_id, rr.result, rr.reason, rr.since,
                   hi.start_at, hi.unit_id, hi.result)
            .select_from(rule_results.outerjoin(history_intervals, and_(
                hi.subject == rr.machine_id, hi.rule_id == rr.rule_id, hi.end_at.is_(None))))
            .where(*recent,
                   or_(hi.subject.is_(None), hi.unit_id != rr.unit_id, hi.result != rr.result))):
        current[(m, r)] = (u, res, why, since)
        if st is not None:
            open_[(m, r)] = (st, p_unit, p_res)
    opened, closed = _write(conn, *_diff(current, open_, now))
    # Results gone (a machine deleted, a rule removed): their open intervals end now.
    # Every result has one open interval now, so there are some only when the open
    # intervals outnumber the results (two counts instead of a million-row anti-join).
    gone = 0
    open_count = conn.execute(select(func.count()).select_from(history_intervals).where(
        hi.end_at.is_(None), ~_unit_subjects())).scalar() or 0
    if open_count > (conn.execute(select(func.count()).select_from(rule_results)).scalar()
                     or 0):
        gone = conn.execute(update(history_intervals).where(
            hi.end_at.is_(None), ~_unit_subjects(),
            ~select(rr.machine_id).where(rr.machine_id == hi.subject,
                                         rr.rule_id == hi.rule_id).exists()
        ).values(end_at=now)).rowcount
    o, c = _sync_unit_rules(conn, now)
    return {"presence_changed": presence_changed, "opened": opened + o,
            "closed": closed + c + gone, "candidates": len({m for m, _r in current})}


def _unit_subjects() -> Any:
    """Subjects "unit:<id>" as a range of the primary key (a LIKE would scan)."""
    subject = history_intervals.c.subject
    return and_(subject >= UNIT_PREFIX, subject < "unit;")  # ";" follows ":"


def _diff(current: Mapping[tuple[str, str], tuple[int, str, str | None, datetime]],
          open_: Mapping[tuple[str, str], tuple[datetime, int, str]], now: datetime
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(inserts, closes) turning the open intervals into the current state."""
    inserts: list[dict[str, Any]] = []
    closes: list[dict[str, Any]] = []
    for key, (unit_id, result, reason, since) in current.items():
        prev = open_.get(key)
        if prev is not None and prev[1] == unit_id and prev[2] == result:
            continue
        start = since
        if prev is not None:
            # The result changed at `since`; a move alone keeps `since`: it happened by now.
            start = since if since > prev[0] else now
            if start <= prev[0]:
                continue  # the same instant twice: nothing to split
            closes.append({"s": key[0], "r": key[1], "st": prev[0], "e": start})
        inserts.append({"subject": key[0], "rule_id": key[1], "start_at": start,
                        "end_at": None, "unit_id": unit_id, "result": result,
                        "reason": reason})
    return inserts, closes


_CLOSE = (update(history_intervals).where(
    history_intervals.c.subject == bindparam("s"), history_intervals.c.rule_id == bindparam("r"),
    history_intervals.c.start_at == bindparam("st")).values(end_at=bindparam("e")))


def _write(conn: Connection, inserts: list[dict[str, Any]], closes: list[dict[str, Any]]
           ) -> tuple[int, int]:
    if closes:
        conn.execute(_CLOSE, closes)
    if inserts:
        conn.execute(history_intervals.insert(), inserts)
    return len(inserts), len(closes)


def _sync_unit_rules(conn: Connection, now: datetime) -> tuple[int, int]:
    current = {(f"{UNIT_PREFIX}{u}", r): (u, res, why, since) for u, r, res, why, since in
               conn.execute(select(unit_rule_results.c.unit_id, unit_rule_results.c.rule_id,
                                   unit_rule_results.c.result, unit_rule_results.c.reason,
                                   unit_rule_results.c.since))}
    # The unit intervals are few: read them by the key range and keep the open ones here
    # (with "end_at IS NULL" the database would walk every open machine interval).
    open_ = {(sub, r): (st, u, res) for sub, r, st, en, u, res in conn.execute(
        select(history_intervals.c.subject, history_intervals.c.rule_id,
               history_intervals.c.start_at, history_intervals.c.end_at,
               history_intervals.c.unit_id, history_intervals.c.result)
        .where(_unit_subjects())) if en is None}
    inserts, closes = _diff(current, open_, now)
    for key, prev in open_.items():
        if key not in current:  # the unit was deleted or the rule removed
            closes.append({"s": key[0], "r": key[1], "st": prev[0], "e": now})
    return _write(conn, inserts, closes)


def sync_presence(conn: Connection, now: datetime, stale_after: timedelta
                  ) -> tuple[int, set[str]]:
    """history_presence follows machines: unit, hostname, active or stale. Returns the
    rows written and the machines that changed unit (their rule intervals split too)."""
    cutoff = now - stale_after
    m, p = machines.c, history_presence.c
    status_now = case((m.last_seen < cutoff, "stale"), else_="active")
    inserts: list[dict[str, Any]] = []
    closes: list[dict[str, Any]] = []
    moved: set[str] = set()
    # Only the machines whose open presence row differs come to Python (one join).
    for mid, unit_id, hostname, first_seen, last_seen, *open_row in conn.execute(
            select(m.machine_id, m.unit_id, m.hostname, m.first_seen, m.last_seen,
                   p.start_at, p.unit_id, p.hostname, p.status)
            .select_from(machines.outerjoin(history_presence, and_(
                p.machine_id == m.machine_id, p.end_at.is_(None))))
            .where(or_(p.machine_id.is_(None), p.unit_id != m.unit_id,
                       p.hostname != m.hostname, p.status != status_now))):
        status = "stale" if last_seen < cutoff else "active"
        prev = None if open_row[0] is None else tuple(open_row)
        row = {"machine_id": mid, "end_at": None, "unit_id": unit_id, "hostname": hostname,
               "status": status, "last_seen": last_seen}
        if prev is None:
            if status == "stale" and last_seen + stale_after > first_seen:
                inserts.append({**row, "start_at": first_seen, "status": "active",
                                "end_at": last_seen + stale_after})
                inserts.append({**row, "start_at": last_seen + stale_after})
            else:
                inserts.append({**row, "start_at": first_seen})
            continue
        start, p_unit, p_host, p_status = prev
        if (p_unit, p_host, p_status) == (unit_id, hostname, status):
            continue
        if p_unit != unit_id:
            moved.add(mid)
        boundary = now
        if p_status == "active" and status == "stale":
            boundary = last_seen + stale_after
        elif p_status == "stale" and status == "active":
            # Back at its first report after the stale interval began.
            first_back = conn.execute(select(func.min(reports.c.received_at)).where(
                reports.c.machine_id == mid,
                reports.c.received_at > start - stale_after)).scalar()
            boundary = first_back or last_seen
        if boundary <= start:
            boundary = now if now > start else start + timedelta(microseconds=1)
        closes.append({"m": mid, "st": start, "e": boundary})
        inserts.append({**row, "start_at": boundary})
    # Machines deleted: their open row ends now.
    for mid, start in conn.execute(select(p.machine_id, p.start_at).where(
            p.end_at.is_(None),
            ~select(m.machine_id).where(m.machine_id == p.machine_id).exists())):
        closes.append({"m": mid, "st": start, "e": max(now, start)})
    if closes:
        conn.execute(update(history_presence).where(
            history_presence.c.machine_id == bindparam("m"),
            history_presence.c.start_at == bindparam("st")).values(end_at=bindparam("e")),
            closes)
    if inserts:
        conn.execute(history_presence.insert(), inserts)
    return len(closes) + len(inserts), moved


# ------------------------------------------------------------------ closing a day

def in_force_at(table: Any, instant: datetime) -> Any:
    """Rows of an interval table in force just before `instant` (the day's end)."""
    return and_(table.c.start_at < instant,
                or_(table.c.end_at.is_(None), table.c.end_at >= instant))


def _tree(conn: Connection) -> list[Any]:
    return list(conn.execute(select(units.c.id, units.c.parent_id, units.c.name, units.c.code,
                                    units.c.path, units.c.level).order_by(units.c.path)))


def ancestors(parents: Mapping[int, int | None], unit_id: int) -> list[int]:
    chain, seen = [], set()
    current: int | None = unit_id
    while current is not None and current not in seen and current in parents:
        chain.append(current)
        seen.add(current)
        current = parents[current]
    return chain


def rollup(parents: Mapping[int, int | None], direct: Mapping[tuple[int, Any], int]
           ) -> dict[tuple[int, Any], int]:
    chains: dict[int, list[int]] = {}
    total: dict[tuple[int, Any], int] = defaultdict(int)
    for (unit_id, key), n in direct.items():
        chain = chains.get(unit_id)
        if chain is None:
            chain = chains[unit_id] = ancestors(parents, unit_id)
        for ancestor in chain:
            total[(ancestor, key)] += n
    return total


def day_figures(conn: Connection, day: date, timezone: str, rules: Sequence[Mapping[str, Any]],
                tree: Sequence[Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(compliance_daily rows, history_units rows) for one day, from the intervals."""
    end = day_end(day, timezone)
    hp = history_presence.c
    present_now = in_force_at(history_presence, end)
    # Machines present at the day's end, counted by the database per unit and status.
    machine_counts: dict[tuple[int, Any], int] = defaultdict(int)
    for unit_id, status, n in conn.execute(
            select(hp.unit_id, hp.status, func.count()).where(present_now)
            .group_by(hp.unit_id, hp.status)):
        machine_counts[(unit_id, status)] += n
    machine_cond = and_(in_force_at(history_intervals, end),
                        ~history_intervals.c.subject.startswith(UNIT_PREFIX))
    direct: dict[tuple[int, Any], int] = {}
    for unit_id, rule_id, result, n in conn.execute(
            select(history_intervals.c.unit_id, history_intervals.c.rule_id,
                   history_intervals.c.result, func.count())
            .where(machine_cond)
            .group_by(history_intervals.c.unit_id, history_intervals.c.rule_id,
                      history_intervals.c.result)):
        direct[(unit_id, (rule_id, result))] = n
    # Stale machines are few: their results are taken out of the counts, counted apart.
    stale_ids = sorted(conn.execute(select(hp.machine_id).where(
        present_now, hp.status == "stale")).scalars())
    stale_direct: dict[tuple[int, Any], int] = defaultdict(int)
    for chunk in _chunks(stale_ids):
        for unit_id, rule_id, result in conn.execute(
                select(history_intervals.c.unit_id, history_intervals.c.rule_id,
                       history_intervals.c.result)
                .where(machine_cond, history_intervals.c.subject.in_(chunk))):
            direct[(unit_id, (rule_id, result))] -= 1
            stale_direct[(unit_id, rule_id)] += 1
    unit_direct: dict[tuple[int, Any], int] = defaultdict(int)
    # The unit intervals are few: by the key range, in force at the end tested here.
    for unit_id, rule_id, result, st, en in conn.execute(
            select(history_intervals.c.unit_id, history_intervals.c.rule_id,
                   history_intervals.c.result, history_intervals.c.start_at,
                   history_intervals.c.end_at).where(_unit_subjects())):
        if st < end and (en is None or en >= end):
            unit_direct[(unit_id, (rule_id, result))] += 1
    # Depreciation of the machines present that day, from the register's dates.
    next_first, next_last = date(day.year + 1, 1, 1), date(day.year + 1, 12, 31)
    done = machine_depreciation.c.fully_depreciated_on
    for unit_id, depreciated, next_year in conn.execute(
            select(hp.unit_id,
                   func.sum(case((and_(done <= day, hp.status == "active"), 1), else_=0)),
                   func.sum(case((done >= next_first, 1), else_=0)))
            .join(machine_depreciation, machine_depreciation.c.machine_id == hp.machine_id)
            .where(present_now, done <= next_last).group_by(hp.unit_id)):
        if depreciated:
            machine_counts[(unit_id, "depreciated")] += int(depreciated)
        if next_year:
            machine_counts[(unit_id, "next_year")] += int(next_year)
    return assemble(day, rules, tree, direct, stale_direct, unit_direct, machine_counts)


Counts = Mapping[tuple[int, Any], int]


def assemble(day: date, rules: Sequence[Mapping[str, Any]], tree: Sequence[Any],
             direct: Counts, stale_direct: Counts, unit_direct: Counts, machine_counts: Counts
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Direct (per unit) counts of one day -> the rolled-up rows to store."""
    parents = {u.id: u.parent_id for u in tree}
    rolled = rollup(parents, direct)
    stale = rollup(parents, stale_direct)
    unit_rolled = rollup(parents, unit_direct)
    counts_rolled = rollup(parents, machine_counts)
    daily: list[dict[str, Any]] = []
    for unit in tree:
        for rule in rules:
            rid = rule["id"]
            source = unit_rolled if rule["kind"] == "unit" else rolled
            counts = {r: source.get((unit.id, (rid, r)), 0) for r in RESULTS}
            n_stale = 0 if rule["kind"] == "unit" else stale.get((unit.id, rid), 0)
            if not any(counts.values()) and not n_stale:
                continue  # nothing to count: no row (a report reads "no data")
            value = ratio(counts)
            daily.append({"day": day, "unit_id": unit.id, "rule_id": rid, **counts,
                          "stale": n_stale, "ratio": None if value is None else round(value, 6),
                          "target": rule["target"]})
    unit_rows = []
    for unit in tree:
        active = counts_rolled.get((unit.id, "active"), 0)
        n_stale = counts_rolled.get((unit.id, "stale"), 0)
        unit_rows.append({"day": day, "unit_id": unit.id, "parent_id": unit.parent_id,
                          "name": unit.name, "code": unit.code, "path": unit.path,
                          "level": unit.level, "machines": active + n_stale, "active": active,
                          "stale": n_stale,
                          "depreciated_in_service": counts_rolled.get((unit.id, "depreciated"), 0),
                          "replace_next_year": counts_rolled.get((unit.id, "next_year"), 0)})
    return daily, unit_rows


class _Spans:
    """Counts per key over a run of days, added as ranges (difference arrays): adding an
    interval costs O(1) whatever its length; `at(i)` gives the counts of day i."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.diff: dict[Any, list[int]] = {}

    def add(self, key: Any, days: range, n: int = 1) -> None:
        if days.start >= days.stop:
            return
        row = self.diff.get(key)
        if row is None:
            row = self.diff[key] = [0] * (self.n + 1)
        row[days.start] += n
        row[days.stop] -= n

    def days(self) -> list[dict[Any, int]]:
        out: list[dict[Any, int]] = [{} for _ in range(self.n)]
        for key, row in self.diff.items():
            running = 0
            for i in range(self.n):
                running += row[i]
                if running:
                    out[i][key] = running
        return out


def figures_for_days(conn: Connection, days: Sequence[date], timezone: str,
                     rules: Sequence[Mapping[str, Any]], tree: Sequence[Any]
                     ) -> dict[date, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """day_figures for a run of consecutive days in one pass over the intervals (catch-up
    and the simulation): each interval counts on the days whose end it covers, by the
    same rule as in_force_at (start < end of day <= end)."""
    ends = [day_end(d, timezone) for d in days]
    if not ends:
        return {}
    first, last = ends[0], ends[-1]
    n = len(days)

    def covered(start: datetime, end: datetime | None) -> range:
        return range(bisect.bisect_right(ends, start),
                     n if end is None else bisect.bisect_right(ends, end))

    def overlaps(table: Any) -> Any:
        return and_(table.c.start_at < last,
                    or_(table.c.end_at.is_(None), table.c.end_at >= first))

    done_on = dict(conn.execute(
        select(machine_depreciation.c.machine_id, machine_depreciation.c.fully_depreciated_on)
        .where(machine_depreciation.c.fully_depreciated_on.is_not(None))).all())
    machine_counts = _Spans(n)
    stale_days: dict[str, list[tuple[range, int]]] = defaultdict(list)  # machine -> spans
    for mid, unit_id, status, start, end in conn.execute(
            select(history_presence.c.machine_id, history_presence.c.unit_id,
                   history_presence.c.status, history_presence.c.start_at,
                   history_presence.c.end_at).where(overlaps(history_presence))):
        span = covered(start, end)
        machine_counts.add((unit_id, status), span)
        if status == "stale":
            stale_days[mid].append((span, unit_id))
        done = done_on.get(mid)
        if done is not None:
            if status == "active":  # fully depreciated from the day `done` on
                k = bisect.bisect_left(days, done)
                machine_counts.add((unit_id, "depreciated"), range(max(span.start, k), span.stop))
            # Replacement next year: the days of the year before `done`'s year.
            lo = bisect.bisect_left(days, date(done.year - 1, 1, 1))
            hi = bisect.bisect_left(days, date(done.year, 1, 1))
            machine_counts.add((unit_id, "next_year"),
                               range(max(span.start, lo), min(span.stop, hi)))
    direct, unit_direct = _Spans(n), _Spans(n)
    stale_fix: list[dict[tuple[int, Any], int]] = [defaultdict(int) for _ in days]
    stale_direct: list[dict[tuple[int, Any], int]] = [defaultdict(int) for _ in days]
    for subject, unit_id, rule_id, result, start, end in conn.execute(
            select(history_intervals.c.subject, history_intervals.c.unit_id,
                   history_intervals.c.rule_id, history_intervals.c.result,
                   history_intervals.c.start_at, history_intervals.c.end_at)
            .where(overlaps(history_intervals))):
        span = covered(start, end)
        if subject.startswith(UNIT_PREFIX):
            unit_direct.add((unit_id, (rule_id, result)), span)
            continue
        direct.add((unit_id, (rule_id, result)), span)
        for stale_span, _unit in stale_days.get(subject, ()):
            # Stale machines leave the counts and are counted apart (as day_figures does).
            for i in range(max(span.start, stale_span.start), min(span.stop, stale_span.stop)):
                stale_fix[i][(unit_id, (rule_id, result))] -= 1
                stale_direct[i][(unit_id, rule_id)] += 1
    per_day, unit_per_day, counts_per_day = direct.days(), unit_direct.days(), \
        machine_counts.days()
    out = {}
    for i, day in enumerate(days):
        today = per_day[i]
        for key, delta in stale_fix[i].items():
            today[key] = today.get(key, 0) + delta
        out[day] = assemble(day, rules, tree, today, stale_direct[i], unit_per_day[i],
                            counts_per_day[i])
    return out


def store_days(conn: Connection, figures: Mapping[date, tuple[list[dict[str, Any]],
                                                            list[dict[str, Any]]]],
               fingerprint: str, timezone: str, now: datetime, source: str) -> None:
    """Write closed days (their figures replace the provisional rows of the maintenance
    pass) and mark them closed."""
    days = sorted(figures)
    conn.execute(delete(compliance_daily).where(compliance_daily.c.day.in_(days)))
    conn.execute(delete(history_units).where(history_units.c.day.in_(days)))
    daily = [{**r, "updated_at": now} for d in days for r in figures[d][0]]
    unit_rows = [r for d in days for r in figures[d][1]]
    for start in range(0, len(daily), 5000):
        conn.execute(compliance_daily.insert(), daily[start:start + 5000])
    for start in range(0, len(unit_rows), 5000):
        conn.execute(history_units.insert(), unit_rows[start:start + 5000])
    conn.execute(history_days.insert(), [
        {"day": d, "fingerprint": fingerprint, "timezone": timezone, "source": source,
         "closed_at": now} for d in days])


def close_days(conn: Connection, days: Sequence[date], ruleset: RuleSet, timezone: str,
               now: datetime, source: str) -> list[date]:
    """Close several days in one pass (the caller's transaction); skip closed ones."""
    closed = set(conn.execute(select(history_days.c.day).where(
        history_days.c.day.in_(list(days)))).scalars())
    todo = [d for d in days if d not in closed]
    if not todo:
        return []
    register_ruleset(conn, ruleset, todo[0], now)
    figures = figures_for_days(conn, todo, timezone, ruleset_definitions(ruleset), _tree(conn))
    store_days(conn, figures, ruleset.fingerprint, timezone, now, source)
    return todo


def close_day(conn: Connection, day: date, ruleset: RuleSet, timezone: str, now: datetime,
              source: str) -> bool:
    """Write one day's history; False when it was closed already (idempotent)."""
    if conn.execute(select(history_days.c.day).where(history_days.c.day == day)).first():
        return False
    register_ruleset(conn, ruleset, day, now)
    daily, unit_rows = day_figures(conn, day, timezone, ruleset_definitions(ruleset),
                                   _tree(conn))
    store_days(conn, {day: (daily, unit_rows)}, ruleset.fingerprint, timezone, now, source)
    return True


# ------------------------------------------------------------------ the job

def days_to_close(conn: Connection, now: datetime, timezone: str,
                  first_sync: datetime | None) -> list[date]:
    """Local days that ended and are not closed: from the day after the last closed one
    (or the day of the first sync on a new installation) to yesterday."""
    yesterday = local_day(now, timezone) - timedelta(days=1)
    last = conn.execute(select(func.max(history_days.c.day))).scalar()
    start = local_day(first_sync or now, timezone) if last is None else last + timedelta(days=1)
    return [start + timedelta(days=i) for i in range((yesterday - start).days + 1)]


def run_daily_job(engine: Engine, ruleset: RuleSet, *, timezone: str,
                  stale_after: timedelta, now: datetime | None = None) -> dict[str, Any]:
    """Sync the intervals and close every local day that ended; see the module doc."""
    now = now or utcnow()
    with exclusive(engine, LOCK_NAME, now) as got:
        if not got:
            return {"skipped": "another collector instance is running the daily job"}
        with write_transaction(engine) as conn:
            if conn.execute(select(history_lock.c.name)
                            .where(history_lock.c.name == LOCK_NAME)).first() is None:
                conn.execute(history_lock.insert().values(name=LOCK_NAME))
            last_sync = conn.execute(select(history_lock.c.synced_at)
                                     .where(history_lock.c.name == LOCK_NAME)).scalar()
            stats: dict[str, Any] = sync_intervals(conn, now, stale_after, last_sync)
            conn.execute(update(history_lock).where(history_lock.c.name == LOCK_NAME)
                         .values(synced_at=now))
        with engine.connect() as conn:
            days = days_to_close(conn, now, timezone, last_sync)
        yesterday = local_day(now, timezone) - timedelta(days=1)
        closed: list[str] = []
        missed = [d for d in days if d != yesterday]
        # Missed days (after downtime): one pass over the intervals per month of them.
        for start in range(0, len(missed), 31):
            with write_transaction(engine) as conn:
                closed += [d.isoformat() for d in close_days(
                    conn, missed[start:start + 31], ruleset, timezone, now, "catch-up")]
        if yesterday in days:
            with write_transaction(engine) as conn:
                if close_day(conn, yesterday, ruleset, timezone, now, "live"):
                    closed.append(yesterday.isoformat())
        stats["closed_days"] = closed
        if len(closed) > 1:
            log.info("history: caught up %d days (%s .. %s) from the intervals",
                     len(closed), closed[0], closed[-1])
        return stats


def next_run(now: datetime, timezone: str) -> datetime:
    """The next local midnight (plus a minute, so the day has surely ended everywhere)."""
    return day_end(local_day(now, timezone), timezone) + timedelta(minutes=1)


class DailyJobThread(threading.Thread):
    """Runs `owner.run_job()` at start-up (catch-up) and after each local midnight.

    Holds its owner weakly (as the maintenance thread does): a discarded app ends it."""

    def __init__(self, owner: Any, timezone: str) -> None:
        super().__init__(name="kiemke-history", daemon=True)
        self._ref = weakref.ref(owner)
        self.timezone = timezone
        self.stop_event = threading.Event()

    def run(self) -> None:
        wait = 5.0  # let the app finish starting
        while not self.stop_event.wait(wait):
            owner = self._ref()
            if owner is None:
                return
            try:
                owner.run_job()
                wait = max(1.0, (next_run(utcnow(), self.timezone) - utcnow()).total_seconds())
            except Exception as exc:  # noqa: BLE001 - keep the thread; retry soon
                log.warning("history job failed (retrying in 5 minutes): %s", exc)
                wait = 300.0
            del owner

    def stop(self) -> None:
        self.stop_event.set()
