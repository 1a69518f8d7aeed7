"""Period report figures from the history (no rendering here: see render.py).

Everything is read from closed days only (history_days, compliance_daily,
history_units, history_rulesets, history_intervals, history_presence and the waivers'
own dates), with the unit tree, names and rules as they were at the end of the period,
so a closed period gives the same figures whenever it is generated. docs/reports.md
defines each figure.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from kiemke.collector.db.compliance_tables import waivers
from kiemke.collector.db.history_tables import (
    history_days,
    history_intervals,
    history_presence,
    history_rulesets,
    history_units,
)
from kiemke.collector.reports.aggregates import (
    RuleStats,
    coverage_means,
    rows_on,
    rule_stats,
    stats_for,
)
from kiemke.collector.reports.history import in_force_at as _at
from kiemke.collector.reports.periods import Period, day_end, day_start
from kiemke.collector.timeutil import iso_z
from kiemke.collector.units import UnitError, find_unit
from kiemke.compliance import RESULTS, gap

EPS = 1e-9


class ReportError(ValueError):
    """A report that cannot be built; `field` names the parameter to fix."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class RuleDef:
    id: str
    kind: str
    title: str
    severity: str
    target: float
    source: str


@dataclass
class RuleFigure:
    rule_id: str
    title: str
    severity: str
    target: float
    end_value: float | None  # ratio on the last day
    mean: float | None  # mean of the daily ratios
    worst: float | None  # lowest daily ratio
    worst_day: date | None
    previous_mean: float | None
    change: float | None  # mean - previous mean (a fraction: 0.05 = 5 points)
    gap: int | None  # machines (offices) still to bring into compliance at period end
    meets_target: bool | None
    counts: dict[str, int]  # at period end: pass, fail, unknown, not_applicable, exempt, stale
    days: int  # days with a ratio


@dataclass
class UnitFigures:
    unit_id: int
    name: str
    path: str
    rules: list[RuleFigure]
    coverage: Coverage
    depreciated_in_service: int
    replace_next_year: int


@dataclass
class Coverage:
    machines: int
    active: int
    stale: int
    end_value: float | None  # active / machines at period end
    mean: float | None


@dataclass
class FailingMachine:
    machine_id: str
    hostname: str
    unit_path: str
    rule_id: str
    rule_title: str
    reason: str | None
    since: datetime
    days_in_period: int


@dataclass
class WaiverRow:
    id: int
    machine_id: str
    hostname: str
    unit_path: str
    rule_id: str
    reason: str
    author: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None  # revoked or expired within the period


@dataclass
class UnitAtEnd:
    id: int
    name: str
    path: str
    level: int
    parent_name: str | None


@dataclass
class PeriodReport:
    unit: UnitAtEnd
    period: Period
    lang: str
    timezone: str
    first_day: date
    last_day: date  # the last closed day used
    complete: bool  # False: the period has not ended, figures to last_day
    days_reported: int
    ruleset: str  # fingerprint in force on last_day
    ruleset_since: date
    rulesets_in_period: list[str]
    rules: list[RuleFigure]
    children: list[UnitFigures]
    coverage: Coverage
    depreciated_in_service: int
    replace_next_year: int
    next_year: int
    failing: list[FailingMachine]
    waivers: list[WaiverRow]
    generated_at: datetime
    place: str = ""
    previous_period: str = ""
    sources: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return to_json(asdict(self))


def to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Period):
        return {"kind": value.kind, "text": value.text, "first": value.first.isoformat(),
                "last": value.last.isoformat()}
    return value


# ------------------------------------------------------------------ reading history

def resolve_unit(conn: Connection, ref: str | int, field: str) -> int:
    try:
        return find_unit(conn, ref).id
    except UnitError as exc:
        raise ReportError(f"{field}: {exc}", field) from None


def closed_days(conn: Connection, first: date, last: date) -> list[tuple[date, str]]:
    return [(d, fp) for d, fp in conn.execute(
        select(history_days.c.day, history_days.c.fingerprint)
        .where(history_days.c.day.between(first, last)).order_by(history_days.c.day))]


def no_days_error(conn: Connection, period: Period) -> ReportError:
    first = conn.execute(select(func.min(history_days.c.day))).scalar()
    since = (f"the history starts on {first.isoformat()}" if first else
             "no day has been closed yet (the daily job closes each day after local midnight)")
    return ReportError(f"period {period.text}: no closed day in it; {since}", "period")


def rule_defs(conn: Connection, fingerprint: str, lang: str) -> list[RuleDef]:
    rules = conn.execute(select(history_rulesets.c.rules)
                         .where(history_rulesets.c.fingerprint == fingerprint)).scalar() or []
    return [RuleDef(r["id"], r["kind"], r["title"].get(lang) or r["title"].get("vi", r["id"]),
                    r["severity"], float(r["target"]),
                    r["source"].get("document") or r["source"].get("plan", ""))
            for r in rules]


def tree_at(conn: Connection, day: date) -> dict[int, Any]:
    return {r.unit_id: r for r in conn.execute(
        select(history_units).where(history_units.c.day == day))}


def subtree(tree: Mapping[int, Any], root: int) -> set[int]:
    children: dict[int | None, list[int]] = defaultdict(list)
    for uid, row in tree.items():
        children[row.parent_id].append(uid)
    out, stack = set(), [root]
    while stack:
        uid = stack.pop()
        if uid in out:
            continue
        out.add(uid)
        stack.extend(children.get(uid, []))
    return out


def mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


def rule_figure(rule: RuleDef, end: Any, stats: RuleStats, previous: RuleStats) -> RuleFigure:
    """One rule's figures from its row on the last day and the period's aggregates."""
    counts = {r: 0 for r in (*RESULTS, "stale")}
    if end is not None:
        counts = {r: getattr(end, r) for r in (*RESULTS, "stale")}
    target = end.target if end is not None and end.target is not None else rule.target
    the_mean, prev_mean = stats.mean, previous.mean
    end_value = None if end is None else end.ratio
    denominator = counts["pass"] + counts["fail"] + counts["unknown"]
    return RuleFigure(
        rule_id=rule.id, title=rule.title, severity=rule.severity, target=target,
        end_value=end_value, mean=the_mean, worst=stats.worst, worst_day=stats.worst_day,
        previous_mean=prev_mean,
        change=None if the_mean is None or prev_mean is None else round(the_mean - prev_mean, 6),
        gap=gap(counts, target) if denominator else None,
        meets_target=None if end_value is None else end_value + EPS >= target,
        counts=counts, days=stats.days)


def coverage_of(end: Any, daily_mean: float | None) -> Coverage:
    if end is None:
        return Coverage(0, 0, 0, None, daily_mean)
    return Coverage(end.machines, end.active, end.stale,
                    round(end.active / end.machines, 6) if end.machines else None, daily_mean)


def failing_machines(conn: Connection, rules: Sequence[RuleDef], units_: set[int],
                     tree: Mapping[int, Any], days: Sequence[date], timezone: str
                     ) -> list[FailingMachine]:
    """Machines failing a critical machine rule at period end (stale ones excluded, as
    in the ratios), since when (contiguous fail intervals joined) and the days of the
    period on which they were failing at the end of the day."""
    critical = {r.id: r for r in rules if r.severity == "critical" and r.kind == "machine"}
    if not critical:
        return []
    end = day_end(days[-1], timezone)
    hi, hp = history_intervals.c, history_presence.c
    # One indexed query (ix_history_intervals_rule_result_end): the failing intervals in
    # force at the end, with the machine's presence then (active only).
    query = (select(hi.subject, hi.rule_id, hi.unit_id, hi.reason, hp.hostname)
             .join(history_presence, and_(hp.machine_id == hi.subject, _at(history_presence, end),
                                          hp.status == "active"))
             .where(hi.rule_id.in_(sorted(critical)), hi.result == "fail",
                    _at(history_intervals, end)))
    if len(units_) <= 500:
        query = query.where(hi.unit_id.in_(sorted(units_)))
    now_failing = [(s, r, u, why, host) for s, r, u, why, host in conn.execute(query)
                   if u in units_]
    if not now_failing:
        return []
    subjects = sorted({s for s, *_ in now_failing})
    spans: dict[tuple[str, str], list[tuple[datetime, datetime | None]]] = defaultdict(list)
    for start in range(0, len(subjects), 1000):
        # By the primary key (subject, rule): the result is tested here, as a condition
        # on it would lead the database to the rule's index and every machine's intervals.
        for s, r, st, en, result in conn.execute(
                select(hi.subject, hi.rule_id, hi.start_at, hi.end_at, hi.result)
                .where(hi.subject.in_(subjects[start:start + 1000]),
                       hi.rule_id.in_(sorted(critical)), hi.start_at < end)):
            if result == "fail":
                spans[(s, r)].append((st, en))
    ends = [day_end(d, timezone) for d in days]
    out = []
    for subject, rule_id, unit_id, reason, hostname in now_failing:
        mine = sorted(spans[(subject, rule_id)])
        # Since: walk back over fail intervals that touch (a move splits an interval).
        since = mine[-1][0]
        for st, en in reversed(mine[:-1]):
            if en is not None and en >= since:
                since = min(since, st)
        # The intervals of one machine x rule never overlap: count the day ends each
        # covers (start < end of day <= end), by bisection.
        failing_days = sum(
            (len(ends) if en is None else bisect.bisect_right(ends, en))
            - bisect.bisect_right(ends, st) for st, en in mine)
        unit = tree.get(unit_id)
        out.append(FailingMachine(subject, hostname,
                                  unit.path if unit is not None else str(unit_id), rule_id,
                                  critical[rule_id].title, reason, since, failing_days))
    out.sort(key=lambda f: (f.unit_path, f.hostname, f.rule_id))
    return out


def waivers_in_period(conn: Connection, units_: set[int], tree: Mapping[int, Any],
                      days: Sequence[date], timezone: str) -> list[WaiverRow]:
    """Waivers in force at some time of the period, by their own dates (a later revocation
    does not change a closed period)."""
    start, end = day_start(days[0], timezone), day_end(days[-1], timezone)
    rows = list(conn.execute(select(waivers).where(
        waivers.c.created_at < end, waivers.c.expires_at > start,
        or_(waivers.c.revoked_at.is_(None), waivers.c.revoked_at > start))
        .order_by(waivers.c.id)))
    if not rows:
        return []
    ids = sorted({r.machine_id for r in rows})
    where: dict[str, tuple[int, str]] = {}
    for m, u, h in conn.execute(select(history_presence.c.machine_id, history_presence.c.unit_id,
                                       history_presence.c.hostname)
                                .where(history_presence.c.machine_id.in_(ids),
                                       history_presence.c.start_at < end)
                                .order_by(history_presence.c.start_at)):
        where[m] = (u, h)  # the last row before the period end
    out = []
    for w in rows:
        unit_id, hostname = where.get(w.machine_id, (None, w.machine_id))
        if unit_id not in units_:
            continue
        ended = min(w.expires_at, w.revoked_at or w.expires_at)
        out.append(WaiverRow(w.id, w.machine_id, hostname, tree[unit_id].path, w.rule_id,
                             w.reason, w.author, w.created_at, w.expires_at,
                             ended if ended <= end else None))
    return out


# ------------------------------------------------------------------ the report

def build_period_report(conn: Connection, unit: str | int, period: Period, lang: str = "vi",
                        *, timezone: str, now: datetime, place: str = "") -> PeriodReport:
    """The report of `unit` (id, code or path) and its subtree for `period`."""
    if lang not in ("vi", "en"):
        raise ReportError(f"lang {lang!r}: use vi or en", "lang")
    unit_id = resolve_unit(conn, unit, "unit")
    closed = closed_days(conn, period.first, period.last)
    if not closed:
        raise no_days_error(conn, period)
    days = [d for d, _ in closed]
    last = days[-1]
    tree = tree_at(conn, last)
    if unit_id not in tree:
        raise ReportError(f"unit {unit!r} did not exist on {last.isoformat()}, the last day "
                          f"of period {period.text} in the history", "unit")
    fingerprint = closed[-1][1]
    rules = rule_defs(conn, fingerprint, lang)
    me = tree[unit_id]
    children = sorted((u for u in tree.values() if u.parent_id == unit_id),
                      key=lambda u: u.name)
    ids = [unit_id, *(c.unit_id for c in children)]
    prev = period.previous()
    # One row per unit x rule from the database (aggregates.py), not one per day.
    stats = rule_stats(conn, ids, period.first, last)
    # The previous period's mean has always been over every stored row of it.
    prev_stats = rule_stats(conn, ids, prev.first, prev.last, closed_only=False,
                            worst_day=False)
    end_rows = rows_on(conn, ids, last)
    coverage_mean = coverage_means(conn, ids, period.first, last)

    def figures_of(uid: int) -> list[RuleFigure]:
        return [rule_figure(r, end_rows.get((uid, r.id)), stats_for(stats, uid, r.id),
                            stats_for(prev_stats, uid, r.id)) for r in rules]

    def at_end(uid: int, name: str) -> int:
        row = tree.get(uid)
        return int(getattr(row, name)) if row is not None else 0

    child_figures = [UnitFigures(c.unit_id, c.name, c.path, figures_of(c.unit_id),
                                 coverage_of(c, coverage_mean.get(c.unit_id)),
                                 at_end(c.unit_id, "depreciated_in_service"),
                                 at_end(c.unit_id, "replace_next_year"))
                     for c in children]
    members = subtree(tree, unit_id)
    parent = tree.get(me.parent_id) if me.parent_id is not None else None
    ruleset_since = conn.execute(select(func.min(history_days.c.day)).where(
        history_days.c.fingerprint == fingerprint)).scalar()
    return PeriodReport(
        unit=UnitAtEnd(unit_id, me.name, me.path, me.level,
                       parent.name if parent is not None else None),
        period=period, lang=lang, timezone=timezone, first_day=days[0], last_day=last,
        complete=last >= period.last, days_reported=len(days), ruleset=fingerprint,
        ruleset_since=ruleset_since or last,
        rulesets_in_period=sorted({fp for _, fp in closed}), rules=figures_of(unit_id),
        children=child_figures, coverage=coverage_of(me, coverage_mean.get(unit_id)),
        depreciated_in_service=at_end(unit_id, "depreciated_in_service"),
        replace_next_year=at_end(unit_id, "replace_next_year"),
        next_year=last.year + 1,
        failing=failing_machines(conn, rules, members, tree, days, timezone),
        waivers=waivers_in_period(conn, members, tree, days, timezone),
        generated_at=now, place=place, previous_period=prev.text,
        sources=cited_documents(r.source for r in rules))


def cited_documents(sources: Iterable[str | None]) -> list[str]:
    """Each document once, sorted: a rule's source may cite several, separated by ';'."""
    return sorted({part.strip() for source in sources if source
                   for part in source.split(";") if part.strip()})


def last_closed_day(conn: Connection) -> date | None:
    return conn.execute(select(func.max(history_days.c.day))).scalar()


def period_days(period: Period) -> list[date]:
    return [period.first + timedelta(days=i) for i in range(period.days)]
