"""/metrics keeps rendered families per process: every change that matters shows at once.

The caches are keyed by change versions (rule results by the store, machines and units by
database triggers) and by the stale set read on each scrape. Each test scrapes once to
fill the caches, changes the database the way the collector does, and scrapes again.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from compliance_helpers import (
    DISTRICT_A,
    DISTRICT_B,
    OFFICE,
    OS_FAIL,
    OS_PASS,
    ROOT,
    RULE,
    build_tree,
    by_labels,
    make_app,
    metric_samples,
    path,
    recent,
    report_at,
)
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from kiemke.collector.changes import COMPLIANCE, MACHINES, UNITS, versions
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import machines
from kiemke.collector.metrics import RowsFamily, render_metrics
from kiemke.collector.units import move_unit, rename_unit

OFFICE_PATH = path(ROOT, DISTRICT_A, OFFICE)


def scrape(app) -> str:
    resp = app.test_client().get("/metrics")
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


def failing(text: str) -> dict[tuple[str, ...], float]:
    """(hostname, machine_id, reason_code, severity, unit) -> since, for the os rule."""
    return by_labels(metric_samples(text, "kiemke_machine_rule_failing"), rule=RULE)


@pytest.fixture
def fleet(db_url, tmp_path, monkeypatch):
    app = make_app(db_url, tmp_path, monkeypatch)
    ids = build_tree(app)
    now = recent()
    hosts = {"PC-TANAN-01": report_at(app, ids[OFFICE], "PC-TANAN-01", now, **OS_FAIL),
             "PC-TANAN-02": report_at(app, ids[OFFICE], "PC-TANAN-02", now, **OS_PASS)}
    yield app, ids, hosts
    app.extensions["kiemke"].engine.dispose()


def test_result_change_shows_on_next_scrape(fleet):
    app, ids, hosts = fleet
    before = failing(scrape(app))
    assert [k[0] for k in before] == ["PC-TANAN-01"]
    # PC-TANAN-02 reports an unsupported OS: its result changes in the ingest transaction.
    report_at(app, ids[OFFICE], "PC-TANAN-02", recent(1), machine_id=hosts["PC-TANAN-02"],
              **OS_FAIL)
    after = failing(scrape(app))
    assert sorted(k[0] for k in after) == ["PC-TANAN-01", "PC-TANAN-02"]
    machines_ = by_labels(metric_samples(scrape(app), "kiemke_rule_machines"), rule=RULE,
                          unit=OFFICE_PATH)
    assert machines_[("fail",)] == 2
    assert machines_[("pass",)] == 0


def test_hostname_change_relabels_failing_series(fleet):
    app, ids, hosts = fleet
    assert [k[0] for k in failing(scrape(app))] == ["PC-TANAN-01"]
    engine = app.extensions["kiemke"].engine
    with engine.connect() as conn:
        before = versions(conn)
    # Same machine, same facts, renamed: no rule result changes, only machines.hostname.
    report_at(app, ids[OFFICE], "MÁY-TẦNG-2", recent(1), machine_id=hosts["PC-TANAN-01"],
              **OS_FAIL)
    with engine.connect() as conn:
        after = versions(conn)
    assert after[MACHINES] == before[MACHINES] + 1  # the trigger fired, once
    assert [k[0] for k in failing(scrape(app))] == ["MÁY-TẦNG-2"]


def test_usual_report_bumps_nothing(fleet):
    app, ids, hosts = fleet
    scrape(app)
    engine = app.extensions["kiemke"].engine
    with engine.connect() as conn:
        before = versions(conn)
    report_at(app, ids[OFFICE], "PC-TANAN-01", recent(1), machine_id=hosts["PC-TANAN-01"],
              **OS_FAIL)
    with engine.connect() as conn:
        assert versions(conn) == before  # last_seen moved only: caches stay valid


def test_machine_turning_stale_by_time_alone(fleet):
    app, ids, hosts = fleet
    text = scrape(app)
    assert [k[0] for k in failing(text)] == ["PC-TANAN-01"]
    assert metric_samples(text, "kiemke_machine_stale") == []
    ext = app.extensions["kiemke"]
    old = recent() - ext.config.stale_after - timedelta(hours=1)
    with ext.engine.connect() as conn:
        before = versions(conn)
    # As if the clock had moved on: no write the collector would mark as a change.
    with write_transaction(ext.engine) as conn:
        conn.execute(update(machines).where(machines.c.machine_id == hosts["PC-TANAN-01"])
                     .values(last_seen=old))
    with ext.engine.connect() as conn:
        assert versions(conn) == before
    text = scrape(app)
    assert failing(text) == {}
    stale = metric_samples(text, "kiemke_machine_stale")
    assert stale == [({"machine_id": hosts["PC-TANAN-01"], "hostname": "PC-TANAN-01",
                       "unit": OFFICE_PATH}, old.timestamp())]
    status = by_labels(metric_samples(text, "kiemke_machines"), unit=OFFICE_PATH)
    assert status[("stale",)] == 1
    assert status[("active",)] == 1
    ratio = by_labels(metric_samples(text, "kiemke_rule_compliance_ratio"), rule=RULE,
                      unit=OFFICE_PATH)
    assert ratio == {(): 1.0}


def series(text: str, unit_id: int) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """The series (name, labels) of one unit, kiemke_unit_info aside."""
    return {(s.name, tuple(sorted(s.labels.items())))
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.labels.get("unit_id") == str(unit_id) and s.name != "kiemke_unit_info"}


def test_unit_rename_and_move_keep_every_series(fleet):
    """Renaming or moving a unit changes kiemke_unit_info only: every other series keeps
    its labels (unit_id), so a trend goes on as one series."""
    app, ids, _hosts = fleet
    before = scrape(app)
    assert {k[-1] for k in failing(before)} == {OFFICE_PATH}  # the joined path
    engine = app.extensions["kiemke"].engine
    with write_transaction(engine) as conn:
        rename_unit(conn, ids[OFFICE], "Công đoàn phường Tân An")
        move_unit(conn, ids[OFFICE], ids[DISTRICT_B])
    after = scrape(app)
    families = {name for name, _ in series(before, ids[OFFICE])}
    assert {"kiemke_machines", "kiemke_rule_machines", "kiemke_rule_compliance_ratio",
            "kiemke_machine_rule_failing", "kiemke_depreciation_machines"} <= families
    # (its new ancestors' figures change, as they now include it)
    assert series(after, ids[OFFICE]) == series(before, ids[OFFICE])
    moved = path(ROOT, DISTRICT_B, "Công đoàn phường Tân An")
    info = {lab["unit_id"]: lab for lab, _ in
            metric_samples(after, "kiemke_unit_info", join_units=False)}
    assert info[str(ids[OFFICE])] == {"unit_id": str(ids[OFFICE]),
                                      "name": "Công đoàn phường Tân An", "path": moved,
                                      "parent_id": str(ids[DISTRICT_B]), "level": "2"}
    assert {k[-1] for k in failing(after)} == {moved}
    with engine.connect() as conn:
        assert versions(conn)[UNITS] >= 1


def test_fast_path_equals_prometheus_client_path(fleet):
    app, _ids, _hosts = fleet
    ext = app.extensions["kiemke"]
    scrape(app)
    fast = render_metrics(ext).decode("utf-8")
    slow = generate_latest(ext.registry).decode("utf-8")

    def stable(text: str) -> list[str]:
        return [line for line in text.splitlines()
                if not line.startswith(("kiemke_scrape_duration_seconds ",
                                        "kiemke_metrics_provider_duration_seconds{"))]

    assert stable(fast) == stable(slow)
    assert "kiemke_machine_rule_failing{" in fast and "Liên đoàn Lao động" in fast
    with ext.engine.connect() as conn:
        assert versions(conn)[COMPLIANCE] >= 1


def test_rows_family_renders_like_prometheus_client():
    tricky = ['Liên đoàn "Bắc Giang"', "C:\\Windows\\", "dòng 1\ndòng 2", ""]
    rows = RowsFamily("kiemke_test", 'help with \\ and\nnewline', ["b", "a", "c", "d"])
    reference = GaugeMetricFamily("kiemke_test", 'help with \\ and\nnewline',
                                  labels=["b", "a", "c", "d"])
    for value in (0, 1.5, 1718000000.123456, float("nan"), 12345678.0):
        rows.add(tricky, value)
        reference.add_metric(tricky, value)

    class One:
        def __init__(self, family):
            self.family = family

        def collect(self):
            return [self.family]

    assert rows.text() == generate_latest(One(reference))
    assert generate_latest(One(rows)) == generate_latest(One(reference))
