"""The ingest pipeline (kiemke.collector.pipeline): the declared steps, each on its own,
on a real app and database (SQLite, and PostgreSQL where the transaction matters)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from collector_helpers import enroll_agent, enrollment_token
from compliance_helpers import OFFICE, OS_FAIL, build_tree, make_app, recent
from reports import make_report, new_machine_id
from sqlalchemy import func, select

from kiemke.collector import changes
from kiemke.collector.db.asset_tables import machine_depreciation
from kiemke.collector.db.compliance_tables import rule_results
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import machines, reports
from kiemke.collector.ingest import AgentCredential, load_agent
from kiemke.collector.pipeline import (
    ChangesStep,
    EvaluateStep,
    Ingest,
    Pipeline,
    Rejected,
    StoreStep,
    ValidateStep,
    build_pipeline,
)


@pytest.fixture
def app(sqlite_url, tmp_path, monkeypatch):
    return make_app(sqlite_url, tmp_path, monkeypatch)


def enrolled(app, hostname: str = "PC-TANAN-01") -> tuple[AgentCredential, dict[str, Any]]:
    """An agent of the office and a valid report of its machine."""
    unit_id = build_tree(app)[OFFICE]
    machine_id = new_machine_id()
    headers = enroll_agent(app.test_client(), enrollment_token(app, unit_id), machine_id,
                           hostname)
    ext = app.extensions["kiemke"]
    agent = load_agent(ext.engine, headers["Authorization"].split()[1].split(".")[0])
    assert agent is not None
    return agent, make_report(machine_id, hostname=hostname, **OS_FAIL)


def count(app, table) -> int:
    with app.extensions["kiemke"].engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


class Recorder:
    """A step appended for the test: what the pipeline handed it."""

    name: ClassVar[str] = "recorder"
    in_transaction: ClassVar[bool] = True

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def run(self, ingest: Ingest) -> None:
        self.seen.append(dict(ingest.machine))


def test_the_app_runs_the_declared_steps_in_order(app):
    pipeline = app.extensions["kiemke"].pipeline
    assert pipeline.names == ["validate", "unchanged", "store", "assets", "evaluate", "changes"]


def test_pipeline_refuses_misordered_or_repeated_steps(app):
    engine = app.extensions["kiemke"].engine
    with pytest.raises(ValueError, match="outside the transaction must come first"):
        config = app.extensions["kiemke"].config
        Pipeline(engine, [StoreStep(), ValidateStep(app.extensions["kiemke"].validate,
                                                    config.max_clock_skew,
                                                    config.max_report_age)])
    with pytest.raises(ValueError, match="repeat"):
        Pipeline(engine, [StoreStep(), StoreStep()])


def test_adding_a_step_is_one_object_in_the_list(app):
    ext = app.extensions["kiemke"]
    agent, report = enrolled(app)
    recorder = Recorder()
    steps = [*build_pipeline(ext).steps, recorder]
    assert Pipeline(ext.engine, steps).ingest(agent, report, now=recent())
    assert [m["machine_id"] for m in recorder.seen] == [report["identity"]["machine_id"]]
    assert recorder.seen[0]["current"] is True


def test_validate_rejects_before_anything_is_written(app):
    ext = app.extensions["kiemke"]
    agent, report = enrolled(app)
    step = ValidateStep(ext.validate, ext.config.max_clock_skew, ext.config.max_report_age)
    bad = {**report, "kind": "weekly"}
    with pytest.raises(Rejected) as info:
        step.run(Ingest(agent=agent, report=bad, now=recent()))
    assert info.value.status == 400 and info.value.field == "kind"
    other = {**report, "identity": {**report["identity"], "machine_id": new_machine_id()}}
    with pytest.raises(Rejected) as info:
        ext.pipeline.ingest(agent, other)
    assert info.value.status == 403 and info.value.error == "machine_mismatch"
    assert count(app, reports) == 0 and count(app, machines) == 0


def test_store_writes_once_and_a_replay_ends_the_pipeline(app):
    ext = app.extensions["kiemke"]
    agent, report = enrolled(app)
    recorder = Recorder()
    pipeline = Pipeline(ext.engine, [StoreStep(), recorder])
    assert pipeline.ingest(agent, report, now=recent()) is True
    assert pipeline.ingest(agent, report, now=recent()) is False  # same report_id
    assert len(recorder.seen) == 1
    assert count(app, reports) == 1 and count(app, machines) == 1


def test_assets_step_gives_the_machine_its_depreciation_row(app):
    ext = app.extensions["kiemke"]
    agent, report = enrolled(app)
    Pipeline(ext.engine, [StoreStep()]).ingest(agent, report, now=recent())
    assert count(app, machine_depreciation) == 0
    report2 = make_report(report["identity"]["machine_id"], hostname="PC-TANAN-01")
    assert ext.pipeline.ingest(agent, report2, now=recent(1))
    with ext.engine.connect() as conn:
        row = conn.execute(select(machine_depreciation.c.unit_id, machine_depreciation.c.estimated)
                           ).one()
    assert row.unit_id == agent.unit_id and row.estimated is True  # no register: firmware


def test_evaluate_step_writes_results_in_the_transaction(app):
    ext = app.extensions["kiemke"]
    agent, report = enrolled(app)
    Pipeline(ext.engine, [StoreStep(), EvaluateStep(ext.compliance)]).ingest(
        agent, report, now=recent())
    with ext.engine.connect() as conn:
        results = dict(conn.execute(select(rule_results.c.rule_id, rule_results.c.result)
                                    .where(rule_results.c.machine_id ==
                                           report["identity"]["machine_id"])).all())
    assert results["os-supported"] == "fail"  # OS_FAIL: Windows 10 past its end of support
    assert len(results) == len(ext.compliance.ruleset.machine_rules)


def test_changes_step_bumps_once_for_everything_recorded(db_url, tmp_path, monkeypatch):
    app = make_app(db_url, tmp_path, monkeypatch)
    engine = app.extensions["kiemke"].engine
    with engine.connect() as conn:
        before = changes.versions(conn)[changes.COMPLIANCE]
    agent, report = enrolled(app)
    with write_transaction(engine) as conn:
        changes.record_compliance(conn, [(agent.unit_id, "os-supported")])
        changes.record_compliance(conn, [(agent.unit_id, "av-approved-active")])
        ingest = Ingest(agent=agent, report=report, now=recent(), conn=conn)
        ChangesStep().run(ingest)
        ChangesStep().run(ingest)  # nothing left to bump
        assert changes.versions(conn)[changes.COMPLIANCE] == before + 1
        logged = changes.compliance_log_after(conn, before, before + 1)
    assert logged is not None
    assert logged.blocks == {(agent.unit_id, "os-supported"), (agent.unit_id, "av-approved-active")}


def test_recorded_changes_are_bumped_at_commit_and_dropped_on_rollback(sqlite_url, tmp_path,
                                                                        monkeypatch):
    app = make_app(sqlite_url, tmp_path, monkeypatch)
    engine = app.extensions["kiemke"].engine

    def version() -> int:
        with engine.connect() as conn:
            return changes.versions(conn)[changes.COMPLIANCE]

    start = version()
    with write_transaction(engine) as conn:  # no explicit flush: write_transaction does it
        changes.record_compliance(conn, [(1, "os-supported")])
    assert version() == start + 1
    with pytest.raises(RuntimeError), write_transaction(engine) as conn:
        changes.record_compliance(conn, [(1, "os-supported")])
        raise RuntimeError("rolled back")
    with write_transaction(engine):
        pass  # the same pooled connection: the rolled-back record must not leak here
    assert version() == start + 1


def test_a_full_report_goes_through_every_step(app):
    ext = app.extensions["kiemke"]
    agent, report = enrolled(app)
    with ext.engine.connect() as conn:
        before = changes.versions(conn)[changes.COMPLIANCE]
    assert ext.pipeline.ingest(agent, report, now=recent())
    mid = report["identity"]["machine_id"]
    with ext.engine.connect() as conn:
        assert conn.execute(select(machines.c.facts).where(machines.c.machine_id == mid)
                            ).scalar_one()["os.supported"] is False
        assert conn.execute(select(func.count()).select_from(machine_depreciation)
                            ).scalar_one() == 1
        assert changes.versions(conn)[changes.COMPLIANCE] == before + 1  # one bump
