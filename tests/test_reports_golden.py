"""Golden tests: a SIMULATED 400-day history of a three-level tree with known daily facts
(kiemke/collector/reports/simulate.py). The collector closes every day from the state
intervals (the daily job's own code); every figure of the period report and of the
ranking is then computed again here, by hand, from the simulation's daily facts.

About 20-40 s: the 400 days are closed once for the module.
"""

from __future__ import annotations

import math
import uuid
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from conftest import PG_ADMIN_URL, _pg_connect, missing_component

from kiemke.collector.db.engine import make_engine
from kiemke.collector.db.migrate import upgrade
from kiemke.collector.reports import simulate
from kiemke.collector.reports.figures import build_period_report
from kiemke.collector.reports.periods import parse_period
from kiemke.collector.reports.ranking import build_ranking, load_ranking_config
from kiemke.compliance import default_rules_dir, load_rules

TZ = "Asia/Ho_Chi_Minh"
START = date(2025, 10, 28)
DAYS = 400  # 2025-10-28 .. 2026-12-01
NOW = datetime(2026, 12, 2, 3, 0, tzinfo=timezone.utc)  # 10:00 on 2 December, local
RESULTS = ("pass", "fail", "unknown", "not_applicable", "exempt")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def golden_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The same fleet on SQLite and on PostgreSQL: the figures are sums made by the
    database (reports/aggregates.py), so both must give the hand-computed ones."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('golden') / 'kiemke.db'}"
        return
    available = request.getfixturevalue("_pg_available")
    if available is not True:
        missing_component(str(available))
    name = f"kiemke_golden_{uuid.uuid4().hex[:12]}"
    with _pg_connect(PG_ADMIN_URL) as conn:
        conn.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with _pg_connect(PG_ADMIN_URL) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def world(golden_url: str):
    url = golden_url
    upgrade(url)
    engine = make_engine(url)
    ruleset = load_rules([default_rules_dir()])
    sim = simulate.Simulation(ruleset.machine_rules, start=START, days=DAYS, seed=4,
                              districts=3, offices_per_district=3, machines_per_office=(5, 9),
                              tz=TZ)
    info = simulate.load(engine, ruleset, sim, now=NOW)
    assert info["closed_days"] == DAYS
    yield {"engine": engine, "ruleset": ruleset, "sim": sim, "info": info}
    engine.dispose()


# ------------------------------------------------------------------ by hand

class Tree:
    """The simulated tree: root -> districts -> offices; office 0 is the district itself."""

    def __init__(self, sim: simulate.Simulation) -> None:
        self.sim = sim
        per = sim.offices_per_district
        self.district_of_office = {o: o // per for o in range(sim.districts * per)}

    def in_unit(self, m: int, day: int, unit: tuple[str, int]) -> bool:
        office = self.sim.office_of(m, day)
        kind, index = unit
        if kind == "root":
            return True
        if kind == "district":
            return self.district_of_office[office] == index
        return office == index


def day_counts(sim: simulate.Simulation, tree: Tree, unit: tuple[str, int], rule_id: str,
               d: int) -> dict[str, int]:
    counts = dict.fromkeys((*RESULTS, "stale"), 0)
    for m in range(len(sim.machines)):
        if not tree.in_unit(m, d, unit):
            continue
        if sim.stale(m, d):
            counts["stale"] += 1
        else:
            counts[sim.result(m, rule_id, d)] += 1
    return counts


def ratio(c: dict[str, int]) -> float | None:
    den = c["pass"] + c["fail"] + c["unknown"]
    return None if den == 0 else c["pass"] / den


def hand_rule(sim, tree, unit, rule, days: list[int], prev_days: list[int]) -> dict:
    ratios = [(d, ratio(day_counts(sim, tree, unit, rule.id, d))) for d in days]
    ratios = [(d, r) for d, r in ratios if r is not None]
    prev = [r for d in prev_days if (r := ratio(day_counts(sim, tree, unit, rule.id, d)))
            is not None]
    end = day_counts(sim, tree, unit, rule.id, days[-1])
    mean = sum(r for _, r in ratios) / len(ratios)
    worst_day, worst = min(ratios, key=lambda dr: (dr[1], dr[0]))
    prev_mean = sum(prev) / len(prev) if prev else None
    den = end["pass"] + end["fail"] + end["unknown"]
    return {"end": ratio(end), "mean": mean, "worst": worst, "worst_day": sim.day(worst_day),
            "change": None if prev_mean is None else mean - prev_mean,
            "gap": max(math.ceil(round(rule.target * den, 9)) - end["pass"], 0),
            "counts": end}


def idx(sim: simulate.Simulation, first: date, last: date) -> list[int]:
    return [sim.index(first + timedelta(days=k)) for k in range((last - first).days + 1)
            if 0 <= sim.index(first + timedelta(days=k)) < sim.days]


def district_path(world, d: int) -> str:
    return (f"{simulate.ROOT} / {simulate.DISTRICTS[d]} {simulate.LABEL}")


# ------------------------------------------------------------------ report figures

@pytest.mark.parametrize(("unit", "period"), [
    (("root", 0), "2026-11"), (("district", 1), "2026-Q3"),
    (("root", 0), "2026-03-05..2026-04-20"),
])
def test_report_figures_match_the_daily_facts(world, unit, period):
    sim, engine = world["sim"], world["engine"]
    tree = Tree(sim)
    ref = simulate.ROOT if unit[0] == "root" else district_path(world, unit[1])
    p = parse_period(period)
    with engine.connect() as conn:
        report = build_period_report(conn, ref, p, "vi", timezone=TZ, now=NOW)
    days = idx(sim, p.first, p.last)
    prev = p.previous()
    prev_days = idx(sim, prev.first, prev.last)
    assert report.days_reported == len(days) and report.complete
    assert report.unit.path == ref
    assert report.ruleset == world["ruleset"].fingerprint
    assert report.previous_period == prev.text
    by_id = {f.rule_id: f for f in report.rules}
    for rule in sim.rules:
        want = hand_rule(sim, tree, unit, rule, days, prev_days)
        got = by_id[rule.id]
        assert got.end_value == pytest.approx(want["end"], abs=1e-6), rule.id
        assert got.mean == pytest.approx(want["mean"], abs=1e-6), rule.id
        assert got.worst == pytest.approx(want["worst"], abs=1e-6), rule.id
        assert got.worst_day == want["worst_day"], rule.id
        assert got.change == pytest.approx(want["change"], abs=2e-6), rule.id
        assert got.gap == want["gap"], rule.id
        assert got.counts == want["counts"], rule.id
        assert got.target == rule.target
    # Coverage and depreciation at period end, by hand.
    last = days[-1]
    members = [m for m in range(len(sim.machines)) if tree.in_unit(m, last, unit)]
    active = [m for m in members if not sim.stale(m, last)]
    assert (report.coverage.machines, report.coverage.active, report.coverage.stale) == \
        (len(members), len(active), len(members) - len(active))
    daily_cov = []
    for d in days:
        ms = [m for m in range(len(sim.machines)) if tree.in_unit(m, d, unit)]
        daily_cov.append(sum(1 for m in ms if not sim.stale(m, d)) / len(ms))
    assert report.coverage.mean == pytest.approx(sum(daily_cov) / len(daily_cov), abs=1e-6)
    end_day = sim.day(last)
    assert report.depreciated_in_service == sum(
        1 for m in active if sim.machines[m].done_on and sim.machines[m].done_on <= end_day)
    assert report.next_year == end_day.year + 1
    assert report.replace_next_year == sum(
        1 for m in members if sim.machines[m].done_on
        and sim.machines[m].done_on.year == end_day.year + 1)
    # Machines failing the critical rule (antivirus) at period end: since, days in period.
    critical = [r for r in sim.rules if r.severity == "critical"]
    want_failing = {}
    for rule in critical:
        for m in active:
            if sim.result(m, rule.id, last) != "fail":
                continue
            first = last
            while first > 0 and sim.result(m, rule.id, first - 1) == "fail":
                first -= 1
            since = (datetime.combine(sim.start, time(8), ZoneInfo(TZ)) if first == 0
                     else datetime.combine(sim.day(first), simulate.CHANGE_AT, ZoneInfo(TZ)))
            want_failing[(sim.machines[m].machine_id, rule.id)] = (
                since.astimezone(timezone.utc),
                sum(1 for d in days if sim.result(m, rule.id, d) == "fail"))
    got_failing = {(f.machine_id, f.rule_id): (f.since, f.days_in_period)
                   for f in report.failing}
    assert got_failing == want_failing
    assert want_failing, "the simulation should leave some machine failing"
    # Waivers in force at some time of the period, for machines of the subtree at its end.
    first_i = days[0]
    want_waivers = {(sim.machines[m].machine_id, rule_id)
                    for (m, rule_id), (a, b) in sim.exempt.items()
                    if a <= last and b + 1 >= first_i and tree.in_unit(m, last, unit)}
    assert {(w.machine_id, w.rule_id) for w in report.waivers} == want_waivers
    # Child units side by side: the same figures for each.
    if unit[0] == "root":
        assert [c.name for c in report.children] == sorted(
            f"{simulate.DISTRICTS[d]} {simulate.LABEL}" for d in range(sim.districts))
        for child in report.children:
            d = next(i for i in range(sim.districts)
                     if child.name.startswith(simulate.DISTRICTS[i]))
            for got in child.rules:
                rule = next((r for r in sim.rules if r.id == got.rule_id), None)
                if rule is None:
                    continue
                want = hand_rule(sim, tree, ("district", d), rule, days, prev_days)
                assert got.mean == pytest.approx(want["mean"], abs=1e-6)
                assert got.end_value == pytest.approx(want["end"], abs=1e-6)
                assert got.gap == want["gap"]


def test_a_period_still_running_is_reported_to_its_last_closed_day(world):
    with world["engine"].connect() as conn:
        report = build_period_report(conn, simulate.ROOT, parse_period("2026"), "en",
                                     timezone=TZ, now=NOW)
    assert not report.complete
    assert report.last_day == date(2026, 12, 1)
    assert report.days_reported == 335
    assert report.rules[0].title.startswith("Networked")  # English titles


# ------------------------------------------------------------------ ranking

def hand_scores(sim, tree, days: list[int], weights: dict[str, float], cov_target: float,
                unit_rules: dict[int, list[tuple[str, str, str]]]) -> dict[int, float]:
    out = {}
    for d_index in range(sim.districts):
        unit = ("district", d_index)
        scores = []
        for d in days:
            num = den = 0.0
            for rule in sim.rules:
                r = ratio(day_counts(sim, tree, unit, rule.id, d))
                if r is None:
                    continue
                num += weights[rule.severity] * min(1.0, r / rule.target)
                den += weights[rule.severity]
            ms = [m for m in range(len(sim.machines)) if tree.in_unit(m, d, unit)]
            cov = sum(1 for m in ms if not sim.stale(m, d)) / len(ms)
            # Unit rules count as well: over the district, only its own office applies
            # (level <= 1), with the result stored for it (constant over the window).
            for _rule_id, severity, result in unit_rules[d_index]:
                if result in ("pass", "fail", "unknown"):
                    num += weights[severity] * (1.0 if result == "pass" else 0.0)
                    den += weights[severity]
            scores.append(100 * min(1.0, cov / cov_target) * num / den)
        out[d_index] = sum(scores) / len(scores)
    return out


def test_ranking_scores_ranks_and_changes(world):
    sim, engine = world["sim"], world["engine"]
    tree = Tree(sim)
    config = load_ranking_config()
    raw = yaml.safe_load(Path(config.path).read_text(encoding="utf-8"))
    assert raw["source"]["document"] == "878/UBDT-TTTT" and raw["source"]["seed"] == "004"
    weights = {k: float(v) for k, v in raw["severity_weights"].items()}
    # The unit rules of each district office, as stored (constant over the window).
    with engine.connect() as conn:
        from sqlalchemy import select

        from kiemke.collector.db.compliance_tables import unit_rule_results
        rows = list(conn.execute(select(unit_rule_results)))
    severities = {r.id: r.severity for r in world["ruleset"].unit_rules}
    own = {world["info"]["offices"][d * sim.offices_per_district]: d
           for d in range(sim.districts)}
    unit_rules: dict[int, list[tuple[str, str, str]]] = {d: [] for d in range(sim.districts)}
    for r in rows:
        if r.unit_id in own:
            unit_rules[own[r.unit_id]].append((r.rule_id, severities[r.rule_id], r.result))
    assert {res for rules in unit_rules.values() for _, _, res in rules} >= {"pass", "fail"}
    for period in ("2026", "2026-11"):
        p = parse_period(period)
        with engine.connect() as conn:
            ranking = build_ranking(conn, simulate.ROOT, p, "vi", timezone=TZ, now=NOW,
                                    config=config)
        days = idx(sim, p.first, min(p.last, date(2026, 12, 1)))
        want = hand_scores(sim, tree, days, weights, raw["coverage"]["target"], unit_rules)
        prev = p.previous()
        want_prev = hand_scores(sim, tree, idx(sim, prev.first, prev.last), weights,
                                raw["coverage"]["target"], unit_rules)
        order = sorted(want, key=lambda d: -want[d])
        prev_order = sorted(want_prev, key=lambda d: -want_prev[d])
        by_name = {r.name: r for r in ranking.rows}
        for d in range(sim.districts):
            row = by_name[f"{simulate.DISTRICTS[d]} {simulate.LABEL}"]
            assert row.score == pytest.approx(want[d], abs=1e-3), (period, d)
            assert row.rank == order.index(d) + 1
            assert row.previous_rank == prev_order.index(d) + 1
            assert row.rank_change == row.previous_rank - row.rank
            assert row.note == ""
        assert [r.rank for r in ranking.rows] == [1, 2, 3]


def test_units_with_too_few_reporting_machines_are_not_ranked(world):
    config = load_ranking_config()
    from dataclasses import replace

    strict = replace(config, min_reporting_machines=1000)
    with world["engine"].connect() as conn:
        ranking = build_ranking(conn, simulate.ROOT, parse_period("2026-11"), "en",
                                timezone=TZ, now=NOW, config=strict)
    assert all(r.rank is None and "fewer than 1000" in r.note for r in ranking.rows)
    assert all(r.score is not None for r in ranking.rows)  # shown, but not ranked


def test_one_night_and_a_catch_up_compute_the_same_day(world):
    """The job closes one day with a GROUP BY in the database and a run of days (catch-up,
    the simulation) in one pass over the intervals: both give the same rows."""
    from kiemke.collector.reports.history import (
        _tree,
        day_figures,
        figures_for_days,
        ruleset_definitions,
    )

    rules = ruleset_definitions(world["ruleset"])
    days = [date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)]
    with world["engine"].connect() as conn:
        tree = _tree(conn)
        swept = figures_for_days(conn, days, TZ, rules, tree)
        for day in days:
            assert day_figures(conn, day, TZ, rules, tree) == swept[day], day
