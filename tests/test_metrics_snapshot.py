"""A new process starts /metrics from the state an earlier process saved
(kiemke.collector.metrics_snapshot) and serves, byte for byte, what a fresh build from
the database serves, changes made after the save included; a snapshot of another key or
a damaged one is not used. Real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

from compliance_helpers import (
    DISTRICT_A,
    DISTRICT_B,
    OFFICE,
    OS_FAIL,
    OS_PASS,
    OS_UNKNOWN,
    build_tree,
    database_text,
    make_app,
    recent,
    report_at,
)
from compliance_helpers import (
    stable_lines as lines,
)
from sqlalchemy import update

from kiemke.collector import metrics_snapshot
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import machines
from kiemke.collector.evaluation import metrics as rule_metrics
from kiemke.collector.evaluation.store import ResultWriter, load_results
from kiemke.collector.timeutil import utcnow


def fresh_body(db_url, tmp_path, monkeypatch) -> bytes:
    """What a new process with no saved state serves for the same database."""
    other = make_app(db_url, tmp_path / "fresh", monkeypatch)
    try:
        return database_text(other)
    finally:
        other.extensions["kiemke"].engine.dispose()


def wait_saved() -> None:
    for thread in threading.enumerate():
        if thread.name == "kiemke-metrics-snapshot":
            thread.join(30)


def count_full_builds(monkeypatch) -> list[str]:
    """Names of the states built from scratch (every block read from the database)."""
    builds: list[str] = []
    for cls in (rule_metrics._FiguresState, rule_metrics._FailingState):
        original = cls._read

        def counted(self, conn, cutoff, *args, _original=original, _name=cls.__name__):
            if args[-1] is None:  # unit_ids None: every unit
                builds.append(_name)
            return _original(self, conn, cutoff, *args)

        monkeypatch.setattr(cls, "_read", counted)
    return builds


def count_reads(monkeypatch) -> dict[str, list]:
    """What the rule families read from the database: the machines whose results they
    re-read, the blocks whose counts they re-read and the blocks they read whole
    (`_read` with unit ids, or None for every unit)."""
    reads: dict[str, list] = {"machines": [], "counts": [], "whole": []}
    failing_of = rule_metrics._FailingState._failing_of

    def machines_read(self, conn, cutoff, machines_of):
        reads["machines"].extend((m, r) for r, found in machines_of.items() for m in found)
        return failing_of(self, conn, cutoff, machines_of)

    counts = rule_metrics.block_counts

    def counts_read(conn, ruleset, dirty, stale):
        reads["counts"].extend(dirty)
        return counts(conn, ruleset, dirty, stale)

    for cls in (rule_metrics._FiguresState, rule_metrics._FailingState):
        original = cls._read

        def whole(self, conn, cutoff, *args, _original=original):
            reads["whole"].append(args[-1])
            return _original(self, conn, cutoff, *args)

        monkeypatch.setattr(cls, "_read", whole)
    monkeypatch.setattr(rule_metrics._FailingState, "_failing_of", machines_read)
    monkeypatch.setattr(rule_metrics, "block_counts", counts_read)
    return reads


def flip_results(app, machine_ids) -> set[tuple[str, str, int]]:
    """Flip one stored result of each machine, each in its own transaction, as the
    store writes them (ResultWriter: it names the machines it changed); returns the
    (machine_id, rule_id, unit_id) flipped."""
    flipped = set()
    for mid in machine_ids:
        with write_transaction(app.extensions["kiemke"].engine) as conn:
            old = load_results(conn, [mid])[mid]
            rule_id = sorted(r for r, v in old.items() if v.result in ("pass", "fail"))[0]
            new = {r: (v.result, v.reason) for r, v in old.items()}
            result = "pass" if new[rule_id][0] == "fail" else "fail"
            new[rule_id] = (result, "đổi (test)" if result == "fail" else None)
            writer = ResultWriter(utcnow())
            writer.machine(mid, old[rule_id].unit_id, new, old)
            writer.flush(conn)
        flipped.add((mid, rule_id, old[rule_id].unit_id))
    return flipped


def _fleet(app) -> tuple[dict[str, int], dict[str, str]]:
    ids = build_tree(app)
    now = recent()
    hosts = {
        "PC-TANAN-01": report_at(app, ids[OFFICE], "PC-TANAN-01", now, **OS_FAIL),
        "PC-TANAN-02": report_at(app, ids[OFFICE], "PC-TANAN-02", now, **OS_PASS),
        "PC-YENDUNG-01": report_at(app, ids[DISTRICT_A], "PC-YENDUNG-01", now, **OS_FAIL),
        "PC-LUCNAM-01": report_at(app, ids[DISTRICT_B], "PC-LUCNAM-01", now, **OS_UNKNOWN),
    }
    return ids, hosts


def test_new_process_starts_from_the_saved_state(db_url, tmp_path, monkeypatch):
    monkeypatch.setattr(metrics_snapshot, "SAVE_EVERY", 0)
    app = make_app(db_url, tmp_path, monkeypatch)
    ids, hosts = _fleet(app)
    ext = app.extensions["kiemke"]
    saved_body = database_text(app)  # built from the database, then saved
    wait_saved()
    state_dir = ext.config.data_dir / "metrics-state"
    assert {p.name for p in state_dir.iterdir()} == {"rule_compliance.pickle",
                                                     "machine_series.pickle"}
    # After the save: a result changes, a new machine, a machine turns stale.
    report_at(app, ids[OFFICE], "PC-TANAN-02", recent(2), machine_id=hosts["PC-TANAN-02"],
              **OS_FAIL)
    report_at(app, ids[DISTRICT_B], "MÁY-LỤC-NAM-02", recent(2), **OS_FAIL)
    old = recent() - ext.config.stale_after - timedelta(hours=1)
    with write_transaction(ext.engine) as conn:
        conn.execute(update(machines).where(machines.c.machine_id == hosts["PC-YENDUNG-01"])
                     .values(last_seen=old))
    builds = count_full_builds(monkeypatch)
    restarted = make_app(db_url, tmp_path, monkeypatch)  # the same data dir
    body = database_text(restarted)
    assert builds == []  # started from the saved state: only the changed blocks read
    expected = fresh_body(db_url, tmp_path, monkeypatch)
    assert set(builds) == {"_FailingState", "_FiguresState"}  # the fresh one built
    assert lines(body) == lines(expected)
    assert lines(body) != lines(saved_body)  # the changes after the save are in it
    for other in (app, restarted):
        other.extensions["kiemke"].engine.dispose()


def test_saved_state_of_another_key_or_damaged_is_not_used(db_url, tmp_path, monkeypatch):
    monkeypatch.setattr(metrics_snapshot, "SAVE_EVERY", 0)
    app = make_app(db_url, tmp_path, monkeypatch)
    _fleet(app)
    database_text(app)
    wait_saved()
    builds = count_full_builds(monkeypatch)
    # Another stale window: the saved state does not describe these families.
    other = make_app(db_url, tmp_path, monkeypatch, stale_after=timedelta(hours=1))
    body = database_text(other)
    assert set(builds) == {"_FailingState", "_FiguresState"}
    fresh = make_app(db_url, tmp_path / "fresh", monkeypatch, stale_after=timedelta(hours=1))
    assert lines(body) == lines(database_text(fresh))
    # A damaged file: a fresh build, and a warning.
    state = app.extensions["kiemke"].config.data_dir / "metrics-state"
    for saved in state.iterdir():
        saved.write_bytes(b"not a pickle")
    builds.clear()
    damaged = make_app(db_url, tmp_path, monkeypatch)
    assert lines(database_text(damaged)) == lines(database_text(app))
    assert set(builds) == {"_FailingState", "_FiguresState"}
    for each in (app, other, fresh, damaged):
        each.extensions["kiemke"].engine.dispose()


def test_new_process_reads_only_what_changed_since_the_save(db_url, tmp_path, monkeypatch):
    """Changes after the save, one version each: the new process reads the changed
    machines' results and their blocks' counts, nothing whole (the 2026-12-03 report of
    a first scrape from the saved state as slow as a cold build)."""
    monkeypatch.setattr(metrics_snapshot, "SAVE_EVERY", 0)
    app = make_app(db_url, tmp_path, monkeypatch)
    ids, hosts = _fleet(app)
    for n in range(4):
        hosts[f"PC-THEM-{n}"] = report_at(app, ids[DISTRICT_B], f"PC-THEM-{n}", recent(),
                                          **(OS_FAIL if n % 2 else OS_PASS))
    database_text(app)
    wait_saved()
    flipped = flip_results(app, sorted(hosts.values()))
    reads = count_reads(monkeypatch)
    restarted = make_app(db_url, tmp_path, monkeypatch)
    body = database_text(restarted)
    assert reads["whole"] == []  # neither a full build nor a block read whole
    failing_rules = {r.id for r in restarted.extensions["kiemke"].compliance.ruleset
                     .machine_rules}
    assert set(reads["machines"]) == {(m, r) for m, r, _ in flipped if r in failing_rules}
    assert set(reads["counts"]) <= {(u, r) for _, r, u in flipped}
    assert {(u, r) for _, r, u in flipped} <= set(reads["counts"])
    reads["whole"].clear()
    assert lines(body) == lines(fresh_body(db_url, tmp_path, monkeypatch))
    assert reads["whole"]  # the counting sees a fresh build's reads
    for other in (app, restarted):
        other.extensions["kiemke"].engine.dispose()
