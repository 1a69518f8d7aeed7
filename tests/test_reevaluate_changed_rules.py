"""A rule change re-evaluates only the rules whose definition changed
(kiemke.collector.evaluation.changed_rules, rulestate): the same rows, counts, digests
and unit results as a full pass, in one process or two; a change of the facts
configuration or of the engine, a removed rule, unknown fingerprints (a database before
migration 0012) or `force` still re-evaluate everything. Real SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

import pytest
from compliance_helpers import (
    DISTRICT_A,
    RULE,
    build_tree,
    make_app,
    populate_fleet,
    recent,
    report_at,
)
from sqlalchemy import bindparam, delete, insert, select, text, update

from kiemke.collector.config import DEFAULT_RULES_DIR
from kiemke.collector.db.compliance_tables import (
    rule_counts,
    rule_results,
    ruleset_state,
    unit_rule_results,
)
from kiemke.collector.db.engine import make_engine, write_transaction
from kiemke.collector.db.migrate import upgrade
from kiemke.collector.db.tables import machines
from kiemke.collector.evaluation import rulestate
from kiemke.collector.evaluation.admin import add_waiver
from kiemke.collector.evaluation.evaluator import Evaluator
from kiemke.collector.evaluation.rulestate import plan, state_values
from kiemke.collector.evaluation.store import recount
from kiemke.compliance import load_rules

MONITORING = "security-monitoring-running"
TABLES = (rule_results, rule_counts, unit_rule_results)


def _change_rules(rules) -> None:
    """Two machine rules (a condition and a reason, a reason alone) and one unit rule."""
    edits = {
        "os.yml": [("condition: os.supported\n",
                    'condition: os.supported or os.family == "windows"\n'),
                   ('vi: "{os.name} đã hết hỗ trợ từ {os.end_of_support}"',
                    'vi: "{os.name} hết hỗ trợ ({os.end_of_support}, {os.family})"')],
        "monitoring.yml": [('vi: "Không có phần mềm giám sát an ninh được phê duyệt đang chạy"',
                            'vi: "Chưa chạy phần mềm giám sát an ninh được phê duyệt"')],
        "units.yml": [("condition: unit.reporting_machines >= 1\n",
                       "condition: unit.reporting_machines >= 2\n")],
    }
    for name, pairs in edits.items():
        path = rules / name
        text = path.read_text("utf-8")
        for old, new in pairs:
            assert old in text, (name, old)
            text = text.replace(old, new)
        path.write_text(text, "utf-8")


def _snapshot(engine) -> dict:
    with engine.connect() as conn:
        out = {t.name: [dict(r._mapping) for r in conn.execute(select(t))] for t in TABLES}
        out["digests"] = [{"m": m, "d": d} for m, d in conn.execute(
            select(machines.c.machine_id, machines.c.results_digest))]
    return out


def _restore(engine, snap: dict) -> None:
    with write_transaction(engine) as conn:
        for table in TABLES:
            conn.execute(delete(table))
            if snap[table.name]:
                conn.execute(insert(table), snap[table.name])
        conn.execute(update(machines).where(machines.c.machine_id == bindparam("m"))
                     .values(results_digest=bindparam("d")), snap["digests"])


def _everything(engine) -> dict:
    snap = _snapshot(engine)
    return {"results": sorted(map(repr, snap["rule_results"])),
            "counts": sorted(repr(r) for r in snap["rule_counts"] if r["n"]),
            "units": sorted(map(repr, snap["unit_rule_results"])),
            "digests": sorted(map(repr, snap["digests"]))}


# Two processes fork only from a process running one thread (see test_reevaluate_bulk).
@pytest.mark.exclusive
def test_changed_rules_pass_gives_the_full_pass_rows_and_counts(db_url, tmp_path,
                                                                 monkeypatch):
    """From the same stored state, after two machine rules and one unit rule changed:
    the full pass, and the pass of the changed rules in one process and in two (several
    batches each, one machine per write transaction), write the same rows (since and
    evaluated_at included), counts, digests and unit results; a waived machine keeps its
    exemption."""
    from kiemke.collector.evaluation import bulk

    monkeypatch.setattr(bulk, "PARALLEL_MIN", 0)
    monkeypatch.setattr(bulk, "WRITE_CHUNK", 1)
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    app = make_app(db_url, tmp_path, monkeypatch, rules_dir=str(rules))
    units = build_tree(app)
    fleet = populate_fleet(app, units)
    now = recent()
    stopped = {"agents": [{"name": "Wazuh Agent", "vendor": "Wazuh", "running": False,
                           "detected_by": "service"}]}
    for host in ("PC-YENDUNG-03", "PC-YENDUNG-04"):  # fail the rule whose reason changes
        fleet[host] = report_at(app, units[DISTRICT_A], host, now,
                                security_monitoring=stopped)
    ev = app.extensions["kiemke"].compliance
    engine = app.extensions["kiemke"].engine
    with write_transaction(engine) as conn:
        add_waiver(conn, ev, machine_id=fleet["PC-LUCNAM-01"], rule_id=RULE,
                   reason="máy chờ thay", author="test", expires_at=now + timedelta(days=30),
                   now=now)
    ev.reevaluate_all(now, workers=1)  # every result, unit result and count current at now
    before = _snapshot(engine)
    old_state = state_values(ev.ruleset, ev.lang)

    _change_rules(rules)
    new = Evaluator(engine, ev.config, load_rules([rules]), lang=ev.lang)
    todo = plan(old_state, new.ruleset, new.lang)
    assert (todo.full, todo.recompute) == (False, False)
    assert sorted(todo.machine_rules) == sorted([RULE, MONITORING]) and todo.unit_rules
    later = now + timedelta(minutes=1)
    runs = {
        "full": lambda: new.reevaluate_all(later, batch=2, workers=1),
        "changed rules, one process": lambda: new.reevaluate_rules(
            todo.machine_rules, later, unit_rules=True, batch=2, workers=1),
        "changed rules, two processes": lambda: new.reevaluate_rules(
            todo.machine_rules, later, unit_rules=True, batch=2, workers=2),
    }
    start = _everything(engine)
    after, stats = {}, {}
    for name, run in runs.items():
        _restore(engine, before)
        assert _everything(engine) == start  # each pass starts from the same state
        stats[name] = run()
        after[name] = _everything(engine)
    assert after["full"]["results"] != start["results"]
    assert after["full"]["units"] != start["units"]
    for name in runs:
        assert after[name] == after["full"], name
    written = {name: s["written"] for name, s in stats.items()}
    # Failing Windows machines pass now, the monitoring rule's failures have a new reason.
    assert len(set(written.values())) == 1 and written["full"] >= 4, written
    assert stats["changed rules, two processes"]["processes"] == 2
    assert stats["changed rules, one process"]["unit_results_written"] > 0
    with engine.connect() as conn:
        exempt = conn.execute(select(rule_results.c.result).where(
            rule_results.c.machine_id == fleet["PC-LUCNAM-01"],
            rule_results.c.rule_id == RULE)).scalar()
        assert exempt == "exempt"
        fresh = _everything(engine)["counts"]
        recount(conn)
        assert _everything(engine)["counts"] == fresh  # counts kept by deltas are exact
    engine.dispose()


def test_ensure_current_reevaluates_only_the_changed_rule(db_url, tmp_path, monkeypatch):
    """On restart with one rule changed only that rule is re-evaluated and the new
    fingerprints recorded; an engine change or `force` re-evaluates everything."""
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    app = make_app(db_url, tmp_path, monkeypatch, rules_dir=str(rules))
    units = build_tree(app)
    fleet = populate_fleet(app, units)
    ev = app.extensions["kiemke"].compliance
    engine = app.extensions["kiemke"].engine
    os_yml = rules / "os.yml"
    os_yml.write_text(os_yml.read_text("utf-8").replace(
        "condition: os.supported\n", 'condition: os.supported or os.family == "windows"\n'),
        "utf-8")
    new = Evaluator(engine, ev.config, load_rules([rules]), lang=ev.lang)
    stats = new.ensure_current()
    assert stats is not None and stats["rules"] == [RULE]
    assert stats["machines"] == len(fleet) and stats["written"] > 0
    with engine.connect() as conn:
        state = conn.execute(select(ruleset_state)).one()
        results = dict(conn.execute(select(rule_results.c.machine_id, rule_results.c.result)
                                    .where(rule_results.c.rule_id == RULE)).all())
    assert state.fingerprint == new.ruleset.fingerprint
    assert json.loads(state.rule_fingerprints) == {r.id: r.fingerprint for r in new.ruleset.rules}
    assert state.engine_fingerprint == rulestate.engine_fingerprint(new.lang)
    assert results[fleet["PC-YENDUNG-02"]] == "pass"  # the failing Windows machine
    assert new.ensure_current() is None  # recorded: nothing left to do
    assert new.ensure_current(force=True)["rules"] == "all"

    # Another engine (its code changed): the next rule change re-evaluates everything.
    monkeypatch.setattr(rulestate, "engine_fingerprint", lambda lang: "another engine")
    assert ev.ensure_current()["rules"] == "all"  # back to the default rules
    engine.dispose()


def test_plan_re_evaluates_everything_unless_only_rule_definitions_changed():
    ruleset = load_rules([DEFAULT_RULES_DIR])
    state = state_values(ruleset, "vi")
    assert plan(state, ruleset, "vi").nothing
    assert plan(state, ruleset, "vi", force=True).full
    assert plan({**state, "config_fingerprint": "other"}, ruleset, "vi").recompute
    assert plan({**state, "engine_fingerprint": "other"}, ruleset, "vi").full
    assert plan(state, ruleset, "en").full  # reasons in another language
    assert plan({**state, "rule_fingerprints": None}, ruleset, "vi").full  # before 0012
    stored = json.loads(state["rule_fingerprints"])
    removed = {**stored, "a-rule-since-removed": "x" * 64}
    assert plan({**state, "rule_fingerprints": json.dumps(removed)}, ruleset, "vi").full
    unit_id = ruleset.unit_rules[0].id
    changed = {**stored, RULE: "x" * 64, unit_id: "y" * 64}
    todo = plan({**state, "rule_fingerprints": json.dumps(changed)}, ruleset, "vi")
    assert (todo.full, todo.machine_rules, todo.unit_rules) == (False, (RULE,), True)
    added = {k: v for k, v in stored.items() if k != RULE}  # a new (or enabled) rule
    todo = plan({**state, "rule_fingerprints": json.dumps(added)}, ruleset, "vi")
    assert (todo.full, todo.machine_rules, todo.unit_rules) == (False, (RULE,), False)


def test_migration_0012_leaves_the_fingerprints_unknown(db_url):
    """A database of 0011 keeps its state row; the fingerprints it did not record are
    NULL, so the next rule change re-evaluates everything."""
    upgrade(db_url, "0011")
    engine = make_engine(db_url)
    try:
        ruleset = load_rules([DEFAULT_RULES_DIR])
        with write_transaction(engine) as conn:
            # The table as 0011 left it (the code's table has the new columns).
            conn.execute(text("UPDATE ruleset_state SET fingerprint = 'f', "
                              "config_fingerprint = :c WHERE id = 1"),
                         {"c": ruleset.config.fingerprint})
        upgrade(db_url)
        with engine.connect() as conn:
            state = conn.execute(select(ruleset_state)).one()
        assert (state.fingerprint, state.rule_fingerprints, state.engine_fingerprint) == \
            ("f", None, None)
        todo = plan(dict(state._mapping), ruleset, "vi")
        assert todo.full and not todo.recompute
    finally:
        engine.dispose()
