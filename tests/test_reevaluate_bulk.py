"""The fast full re-evaluation (kiemke.collector.evaluation.bulk) repairs exactly what
differs: wrong results, wrong units, missing rows, results of deleted machines, and keeps
rule_counts equal to a fresh count; every writer keeps machines.results_digest equal to
the digest of the machine's rows, and a NULL or wrong digest is repaired. Real SQLite and
PostgreSQL."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from compliance_helpers import (
    DISTRICT_A,
    DISTRICT_B,
    ROOT,
    build_tree,
    make_app,
    populate_fleet,
    recent,
)
from sqlalchemy import delete, func, insert, select, update

from kiemke.collector.db.compliance_tables import rule_counts, rule_results, unit_rule_results
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import machines
from kiemke.collector.evaluation.admin import add_waiver, move_machine
from kiemke.collector.evaluation.store import recount, results_digest
from kiemke.compliance import default_rules_dir, evaluate_machine, load_rules
from kiemke.compliance.evaluate import ReasonMemo

RULE = "os-supported"


def _results(conn) -> dict[tuple[str, str], tuple]:
    return {(r.machine_id, r.rule_id): (r.unit_id, r.result, r.reason, r.since)
            for r in conn.execute(select(rule_results))}


def _counts(conn) -> dict[tuple, int]:
    return {(r.unit_id, r.rule_id, r.result): r.n
            for r in conn.execute(select(rule_counts)) if r.n}


def _fresh_counts(conn) -> dict[tuple, int]:
    return {(u, r, res): n for u, r, res, n in conn.execute(
        select(rule_results.c.unit_id, rule_results.c.rule_id, rule_results.c.result,
               func.count()).group_by(rule_results.c.unit_id, rule_results.c.rule_id,
                                      rule_results.c.result))}


def _forget_digests(conn, *machine_ids: str) -> None:
    """Rows edited by hand: their digests no longer describe them (as an operator who
    edits results in SQL is told to do)."""
    conn.execute(update(machines).where(machines.c.machine_id.in_(machine_ids))
                 .values(results_digest=None))


def _digests(conn) -> dict[str, tuple[str | None, str]]:
    """{machine_id: (stored digest, digest of its rows)} of every machine with results."""
    rows: dict[str, dict[str, tuple[str, str | None]]] = {}
    unit_of: dict[str, set[int]] = {}
    for r in conn.execute(select(rule_results)):
        rows.setdefault(r.machine_id, {})[r.rule_id] = (r.result, r.reason)
        unit_of.setdefault(r.machine_id, set()).add(r.unit_id)
    stored = dict(conn.execute(select(machines.c.machine_id, machines.c.results_digest)).all())
    out = {}
    for mid, results in rows.items():
        assert len(unit_of[mid]) == 1, mid  # one machine's rows are in one unit
        out[mid] = (stored.get(mid), results_digest(unit_of[mid].pop(), results))
    return out


def _assert_digests_right(engine, n: int) -> None:
    with engine.connect() as conn:
        digests = _digests(conn)
    assert len(digests) == n
    for mid, (stored, expected) in digests.items():
        assert stored == expected, mid


def test_full_reevaluation_repairs_only_what_differs(db_url, tmp_path, monkeypatch):
    app = make_app(db_url, tmp_path, monkeypatch)
    units = build_tree(app)
    fleet = populate_fleet(app, units)
    ev = app.extensions["kiemke"].compliance
    engine = app.extensions["kiemke"].engine
    # Machine results are current after ingest (nothing to write); unit results are as of
    # each report's time, so the first pass brings them to now.
    assert ev.reevaluate_all()["written"] == 0
    with engine.connect() as conn:
        good = _results(conn)
        good_counts = _counts(conn)
        good_units = set(conn.execute(select(unit_rule_results.c.unit_id,
                                             unit_rule_results.c.rule_id,
                                             unit_rule_results.c.result)))
    with engine.connect() as conn:
        assert good_counts == _fresh_counts(conn)

    passing, failing = fleet["PC-VANPHONG-01"], fleet["PC-YENDUNG-02"]
    ghost = "f" * 32  # results of a machine that no longer exists (sorts after every id)
    with write_transaction(engine) as conn:
        conn.execute(update(rule_results).where(rule_results.c.machine_id == passing,
                                                rule_results.c.rule_id == RULE)
                     .values(result="fail", reason="sai"))
        conn.execute(update(rule_results).where(rule_results.c.machine_id == failing,
                                                rule_results.c.rule_id == RULE)
                     .values(reason="lý do cũ"))
        conn.execute(delete(rule_results).where(
            rule_results.c.machine_id == fleet["PC-TANAN-01"], rule_results.c.rule_id == RULE))
        conn.execute(insert(rule_results).values(
            machine_id=ghost, rule_id=RULE, unit_id=units[ROOT], result="fail", reason=None,
            since=recent(), evaluated_at=recent()))
        _forget_digests(conn, passing, failing, fleet["PC-TANAN-01"])
        conn.execute(delete(rule_counts))
    stats = ev.reevaluate_all()
    assert stats["machines"] == len(fleet)
    assert stats["written"] == 4  # the wrong result, the wrong reason, the missing row, the ghost

    with engine.connect() as conn:
        repaired = _results(conn)
        assert set(repaired) == set(good)
        for key, (unit_id, result, reason, since) in good.items():
            assert repaired[key][:3] == (unit_id, result, reason), key
            if key not in ((passing, RULE), (fleet["PC-TANAN-01"], RULE)):
                assert repaired[key][3] == since, key  # unchanged rows keep their since
        # rule_counts was emptied above: deltas alone cannot rebuild it...
        assert _counts(conn) != good_counts
        units_now = set(conn.execute(select(unit_rule_results.c.unit_id,
                                            unit_rule_results.c.rule_id,
                                            unit_rule_results.c.result)))
        assert units_now == good_units
    # ...but the deltas of what it repairs are exact: rebuild, then store one wrong result
    # with counts that agree with it, and let the pass put both right.
    pass_key = (good[(passing, RULE)][0], RULE, "pass")
    with write_transaction(engine) as conn:
        recount(conn)
        conn.execute(update(rule_results).where(rule_results.c.machine_id == passing,
                                                rule_results.c.rule_id == RULE)
                     .values(result="unknown"))
        _forget_digests(conn, passing)
        recount(conn)
        assert _counts(conn).get(pass_key, 0) == good_counts[pass_key] - 1
    assert ev.reevaluate_all()["written"] == 1
    with engine.connect() as conn:
        assert _results(conn)[(passing, RULE)][1] == "pass"
        assert _counts(conn) == _fresh_counts(conn) == good_counts
    engine.dispose()


def test_bulk_reevaluation_in_batches_moves_results_with_the_machine(db_url, tmp_path,
                                                                      monkeypatch):
    app = make_app(db_url, tmp_path, monkeypatch)
    units = build_tree(app)
    fleet = populate_fleet(app, units)
    ev = app.extensions["kiemke"].compliance
    engine = app.extensions["kiemke"].engine
    moved = fleet["PC-LUCNAM-01"]
    with write_transaction(engine) as conn:
        # Results left in the old unit (e.g. a crash between the two writes).
        conn.execute(update(rule_results).where(rule_results.c.machine_id == moved)
                     .values(unit_id=units[ROOT]))
        _forget_digests(conn, moved)
        recount(conn)  # counts that agree with the misplaced rows
        n_rules = conn.execute(select(func.count()).select_from(rule_results)
                               .where(rule_results.c.machine_id == moved)).scalar()
    stats = ev.reevaluate_all(batch=3)  # several batches, the last one partial
    assert stats["machines"] == len(fleet)
    with engine.connect() as conn:
        unit_of_machine = conn.execute(select(func.min(rule_results.c.unit_id),
                                              func.max(rule_results.c.unit_id))
                                       .where(rule_results.c.machine_id == moved)).one()
        expected = conn.execute(select(machines.c.unit_id)
                                .where(machines.c.machine_id == moved)).scalar()
        assert tuple(unit_of_machine) == (expected, expected)
        assert _counts(conn) == _fresh_counts(conn)
    assert expected == units[DISTRICT_B] != units[ROOT]
    assert stats["written"] == n_rules
    engine.dispose()


def _between(a: str, b: str) -> str | None:
    """A 32-digit hex id strictly between the hex ids a < b, if there is one."""
    mid = (int(a, 16) + int(b, 16)) // 2
    return f"{mid:032x}" if int(a, 16) < mid < int(b, 16) else None


@pytest.mark.parametrize("batch", [1, 2, 3, 1000])
def test_pass_finds_results_of_missing_machines_anywhere_in_a_batch(db_url, tmp_path,
                                                                    monkeypatch, batch):
    """Results of machine ids that have no machine, before the first machine, between
    two machines (each gap of the fleet in turn lies inside some batch) and after the
    last, are deleted by a pass with nothing else to write, whatever the batch size (the
    scan of each batch's id range, bulk._orphans); a machine without results is not
    taken for one."""
    app = make_app(db_url, tmp_path, monkeypatch)
    units = build_tree(app)
    fleet = populate_fleet(app, units)
    ev = app.extensions["kiemke"].compliance
    engine = app.extensions["kiemke"].engine
    assert ev.reevaluate_all(workers=1)["written"] == 0
    ids = sorted(fleet.values())
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    inner = [g for a, b in zip(ids[:-1], ids[1:], strict=True)
             if (g := _between(a, b)) is not None]
    assert len(inner) == len(ids) - 1
    bare = ids[len(ids) // 2]  # a machine whose results are gone (none to delete)
    when = recent()
    with write_transaction(engine) as conn:
        conn.execute(delete(rule_results).where(rule_results.c.machine_id == bare))
        _forget_digests(conn, bare)
        for ghost in ("0" * 32, *inner, "f" * 32):
            conn.execute(insert(rule_results).values(
                machine_id=ghost, rule_id=RULE, unit_id=units[DISTRICT_B], result="fail",
                reason=None, since=when, evaluated_at=when))
        recount(conn)
    stats = ev.reevaluate_all(batch=batch, workers=1)
    with engine.connect() as conn:
        left = set(conn.execute(select(rule_results.c.machine_id).distinct()).scalars())
        assert left == set(ids)
        assert _counts(conn) == _fresh_counts(conn)
    # Rows written: one per ghost, and the bare machine's rows.
    assert stats["written"] == len(inner) + 2 + len(ev.ruleset.machine_rules)
    engine.dispose()


def test_results_digest_follows_every_writer(db_url, tmp_path, monkeypatch):
    app = make_app(db_url, tmp_path, monkeypatch)
    units = build_tree(app)
    fleet = populate_fleet(app, units)
    ev = app.extensions["kiemke"].compliance
    engine = app.extensions["kiemke"].engine
    _assert_digests_right(engine, len(fleet))  # ingest wrote them with the rows
    with engine.connect() as conn:
        after_ingest = {mid: d for mid, (d, _) in _digests(conn).items()}
    assert len(set(after_ingest.values())) > 3  # they really depend on the results

    # A waiver: the machine's rows change outside ingest and the bulk pass.
    failing = fleet["PC-YENDUNG-02"]
    with write_transaction(engine) as conn:
        add_waiver(conn, ev, machine_id=failing, rule_id=RULE,
                   reason="Máy kế toán chờ nâng cấp Windows 11", author="Nguyễn Văn Tâm",
                   expires_at=recent() + timedelta(days=30), now=recent(1))
    _assert_digests_right(engine, len(fleet))
    with engine.connect() as conn:
        assert _digests(conn)[failing][0] != after_ingest[failing]

    # A move: same results, another unit, so another digest.
    moved = fleet["PC-LUCNAM-01"]
    with write_transaction(engine) as conn:
        move_machine(conn, ev, moved, units[DISTRICT_A], recent(1))
    _assert_digests_right(engine, len(fleet))
    with engine.connect() as conn:
        assert _digests(conn)[moved][0] != after_ingest[moved]

    # Digests lost (the migration that added the column leaves them NULL) or wrong: the
    # pass writes no result row, only the digests.
    passing = fleet["PC-VANPHONG-01"]
    with write_transaction(engine) as conn:
        conn.execute(update(machines).values(results_digest=None))
        conn.execute(update(machines).where(machines.c.machine_id == passing)
                     .values(results_digest="0" * 32))
    assert ev.reevaluate_all(batch=3)["written"] == 0
    _assert_digests_right(engine, len(fleet))
    assert ev.reevaluate_all()["written"] == 0  # and the next pass has nothing to do

    # A deleted machine: its rows go, and the others' digests stay right.
    with write_transaction(engine) as conn:
        conn.execute(delete(machines).where(machines.c.machine_id == passing))
    assert ev.reevaluate_all()["written"] == len(ev.ruleset.machine_rules)  # its rows
    _assert_digests_right(engine, len(fleet) - 1)
    with engine.connect() as conn:
        assert _counts(conn) == _fresh_counts(conn)
    engine.dispose()


def test_reason_memo_gives_the_texts_of_evaluate_machine():
    ruleset = load_rules([default_rules_dir()])
    memo = ReasonMemo(ruleset.machine_rules, "vi")
    rng = random.Random(3)
    checked = 0
    for _ in range(400):
        facts = {"os.supported": rng.choice([True, False, None]),
                 "os.name": rng.choice(["Microsoft Windows 7 Professional",
                                        "Microsoft Windows 10 Pro", None]),
                 "antivirus.approved_active": rng.choice([True, False, None]),
                 "antivirus.names": rng.choice([["Bkav Pro"], [], None]),
                 "monitoring.running": rng.choice([True, False, None]),
                 "network.internet_ok": rng.choice([True, False, None]),
                 "network.networked": rng.choice([True, False, None]),
                 "hardware.memory_gb": rng.choice([2.0, 8, None]),
                 "hardware.meets_min_spec": rng.choice([True, False, None]),
                 "hardware.below_spec": rng.choice([["RAM 2 GB < 4 GB"], []]),
                 "depreciation.status": rng.choice(["in_service", "fully_depreciated",
                                                    "overdue_for_replacement", None]),
                 "hardware.age_years": rng.choice([3.5, 9.0, None])}
        facts = {k: v for k, v in facts.items() if v is not None}
        expected = evaluate_machine(ruleset, facts, lang="vi")
        results = ruleset.machine_results(facts)
        for i, rule in enumerate(ruleset.machine_rules):
            assert memo.reason(i, results[i], facts) == expected[rule.id][1], (rule.id, facts)
            checked += expected[rule.id][1] is not None
    assert checked > 400  # fail and unknown texts were really compared


def _damage(engine, fleet: dict[str, str], units: dict[str, int]) -> None:
    """The same wrong rows every time: a wrong result, a wrong reason, a missing row,
    results in the wrong unit, orphans before the first and after the last machine id,
    and counts that agree with none of it."""
    when = recent() - timedelta(hours=1)
    with write_transaction(engine) as conn:
        conn.execute(update(rule_results).where(
            rule_results.c.machine_id == fleet["PC-VANPHONG-01"], rule_results.c.rule_id == RULE)
            .values(result="fail", reason="sai"))
        conn.execute(update(rule_results).where(
            rule_results.c.machine_id == fleet["PC-YENDUNG-02"], rule_results.c.rule_id == RULE)
            .values(reason="lý do cũ"))
        conn.execute(delete(rule_results).where(
            rule_results.c.machine_id == fleet["PC-TANAN-01"], rule_results.c.rule_id == RULE))
        conn.execute(update(rule_results).where(
            rule_results.c.machine_id == fleet["PC-LUCNAM-01"]).values(unit_id=units[ROOT]))
        for ghost in ("0" * 32, "f" * 32):
            conn.execute(delete(rule_results).where(rule_results.c.machine_id == ghost))
            conn.execute(insert(rule_results).values(
                machine_id=ghost, rule_id=RULE, unit_id=units[DISTRICT_B], result="fail",
                reason=None, since=when, evaluated_at=when))
        _forget_digests(conn, *fleet.values())
        recount(conn)


def _everything(conn) -> tuple:
    return (_results(conn), _counts(conn), dict(conn.execute(
        select(machines.c.machine_id, machines.c.results_digest)).all()),
        set(conn.execute(select(unit_rule_results))))


# The pass forks only from a process running one thread; in make test's parallel phase a
# worker also runs other modules' tests, whose threads may still be alive: these two run
# in the exclusive phase (one process, this module's tests first).
@pytest.mark.exclusive
def test_parallel_pass_gives_the_serial_pass_rows_and_counts(db_url, tmp_path, monkeypatch):
    """The pass split over two forked processes (two id ranges, several batches each,
    one machine per write transaction, on SQLite taking turns for the write lock) writes
    exactly what one process writes: rows, since, counts, digests, unit results."""
    from kiemke.collector.evaluation import bulk

    monkeypatch.setattr(bulk, "PARALLEL_MIN", 0)  # split even this small fleet
    monkeypatch.setattr(bulk, "WRITE_CHUNK", 1)  # and write one machine per transaction
    app = make_app(db_url, tmp_path, monkeypatch)
    units = build_tree(app)
    fleet = populate_fleet(app, units)
    # The reports went through group commit, which runs on the request threads: it
    # leaves no thread behind that would keep the pass from forking.
    ev = app.extensions["kiemke"].compliance
    engine = app.extensions["kiemke"].engine
    now = recent()
    _damage(engine, fleet, units)
    serial = ev.reevaluate_all(now, batch=2, workers=1)
    with engine.connect() as conn:
        after_serial = _everything(conn)
        assert after_serial[1] == _fresh_counts(conn)
    _damage(engine, fleet, units)
    with engine.connect() as conn:
        assert _everything(conn) != after_serial
    parallel = ev.reevaluate_all(now, batch=2, workers=2)
    with engine.connect() as conn:
        assert _everything(conn) == after_serial
    assert (serial["processes"], parallel["processes"]) == (1, 2)
    assert parallel["machines"] == serial["machines"] == len(fleet)
    # The wrong result, reason and missing row; the misplaced machine's rows; 2 orphans.
    assert parallel["written"] == serial["written"] > 5
    engine.dispose()


def test_pass_sees_a_report_that_came_between_its_read_and_its_write(db_url, tmp_path,
                                                                     monkeypatch):
    """A batch is compared without locks and written after: facts that changed meanwhile
    are evaluated again in the write transaction, so the stored results follow them."""
    from kiemke.collector.evaluation import bulk

    app = make_app(db_url, tmp_path, monkeypatch)
    units = build_tree(app)
    fleet = populate_fleet(app, units)
    ev = app.extensions["kiemke"].compliance
    engine = app.extensions["kiemke"].engine
    mid = fleet["PC-YENDUNG-02"]  # fails os-supported
    with write_transaction(engine) as conn:
        _forget_digests(conn, mid)
        facts = conn.execute(select(machines.c.facts).where(machines.c.machine_id == mid)
                             ).scalar()
    newer = {**facts, "os.supported": True, "os.end_of_support": "2031-10-14",
             "os.name": "Microsoft Windows 11 Pro"}
    original = bulk.BulkEvaluator._write

    def write_after_a_report(self, conn, differ, orphans):
        conn.execute(update(machines).where(machines.c.machine_id == mid)
                     .values(facts=newer))
        return original(self, conn, differ, orphans)

    monkeypatch.setattr(bulk.BulkEvaluator, "_write", write_after_a_report)
    ev.reevaluate_all(workers=1)
    with engine.connect() as conn:
        assert _results(conn)[(mid, RULE)][1] == "pass"
        stored, expected = _digests(conn)[mid]
        assert stored == expected
        assert _counts(conn) == _fresh_counts(conn)
    engine.dispose()


def test_compiled_digest_is_the_digest_of_evaluate_machine():
    """bulk's generated digest function == digest.results_digest of evaluate_machine's
    results, memo hits included: True and 1 (equal keys, different texts), lists,
    nested lists (unhashable), missing facts; in several units; and with no rule."""
    from kiemke.collector.evaluation.signatures import compile_digest, unit_prefix

    ruleset = load_rules([default_rules_dir()])
    memo = ReasonMemo(ruleset.machine_rules, "vi")
    digest = compile_digest(memo)
    rng = random.Random(5)
    seen_reasons = set()
    for _ in range(600):
        facts = {"os.supported": rng.choice([True, False, None]),
                 "os.name": rng.choice(["Microsoft Windows 7 Professional", None]),
                 "antivirus.approved_active": rng.choice([True, False, None]),
                 "antivirus.names": rng.choice([["Bkav Pro"], [], [["lồng"]], None]),
                 "antivirus.enabled": rng.choice([True, 1, False, 0, None]),
                 "monitoring.running": rng.choice([True, False, None]),
                 "network.networked": rng.choice([True, False, 1, None]),
                 "hardware.meets_min_spec": rng.choice([True, False, None]),
                 "hardware.below_spec": rng.choice([["RAM 2 GB < 4 GB"], [], None]),
                 "hardware.chassis": rng.choice(["desktop", "server", None]),
                 "hardware.age_years": rng.choice([3.5, 9.0, 9, None])}
        facts = {k: v for k, v in facts.items() if v is not None}
        unit_id = rng.choice([1, 7, 631])
        expected = evaluate_machine(ruleset, facts, lang="vi")
        seen_reasons.update(reason for _, reason in expected.values())
        assert digest(facts, unit_prefix(unit_id)) == results_digest(unit_id, expected), facts
    assert len(seen_reasons) > 30  # many distinct texts were really compared
    none = compile_digest(ReasonMemo([], "vi"))
    assert none({}, unit_prefix(3)) == results_digest(3, {})


def test_batch_decode_gives_json_loads_of_each_text():
    """bulk.decode_all: one json.loads of the joined texts, the same values as each
    text's json.loads; texts that are not one JSON value each fail as json.loads does."""
    import json

    from kiemke.collector.evaluation.bulk import decode_all

    texts = ['{"a": 1, "b": [true, null]}', '{"a": 2}', "{}", '{"x": "lồng, ]"}']
    assert decode_all(texts) == [json.loads(t) for t in texts]
    assert decode_all([]) == []
    with pytest.raises(ValueError):
        decode_all(['{"a": 1}', '1, 2'])  # two values in one text: not one JSON value
    with pytest.raises(ValueError):
        decode_all(['{"a": 1', '"b": 2}'])  # halves that only join into one


def test_compiled_values_are_the_facts_lists_as_tuples():
    from kiemke.collector.evaluation.signatures import compile_values

    values = compile_values(("a", "b", "c"))
    assert values({"a": [1, 2], "c": "x"}) == ((1, 2), None, "x")
    assert compile_values(())({"a": 1}) == ()


# The pass forks only from a process running one thread; in make test's parallel phase a
# worker also runs other modules' tests, whose threads may still be alive: these two run
# in the exclusive phase (one process, this module's tests first).
@pytest.mark.exclusive
def test_pass_stays_in_one_process_while_other_threads_run(db_url, tmp_path, monkeypatch):
    """A serving worker (request threads, the maintenance thread) does not fork: a child
    would finalize the other threads' database connections on the parent's sockets."""
    import threading

    from kiemke.collector.evaluation import bulk

    monkeypatch.setattr(bulk, "PARALLEL_MIN", 0)
    app = make_app(db_url, tmp_path, monkeypatch)
    units = build_tree(app)
    fleet = populate_fleet(app, units)
    ev = app.extensions["kiemke"].compliance
    engine = app.extensions["kiemke"].engine
    _damage(engine, fleet, units)
    release = threading.Event()
    other = threading.Thread(target=release.wait, name="a request thread")
    other.start()
    try:
        stats = ev.reevaluate_all(batch=2, workers=2)
    finally:
        release.set()
        other.join()
    assert stats["processes"] == 1
    assert stats["written"] > 5
    with engine.connect() as conn:
        assert _counts(conn) == _fresh_counts(conn)
    assert ev.reevaluate_all(batch=2, workers=2)["processes"] == 2
    engine.dispose()
