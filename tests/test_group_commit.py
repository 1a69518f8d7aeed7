"""Group commit (kiemke/collector/pipeline/group_commit.py): concurrent reports share
write transactions, each is answered only after its commit, one bad report does not
fail the others, and a worker killed with SIGKILL mid-batch loses no answered report.
Real collectors over HTTP on SQLite and PostgreSQL, and the in-process app."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import pytest
import requests
from collector_helpers import add_units, enroll_agent, enrollment_token
from compliance_helpers import make_app
from reports import UNIT_NAME, make_report, new_machine_id
from sqlalchemy import create_engine, select
from test_fault_suite import _enroll, _worker_pids

from kiemke.collector.db.engine import normalize_url
from kiemke.collector.db.tables import reports
from kiemke.schema.digest import facts_digest, unchanged_form

AGENTS = 12
THREADS = 12


@pytest.fixture
def dbapp(db_url, tmp_path, monkeypatch):
    """The in-process app on SQLite and on PostgreSQL."""
    application = make_app(db_url, tmp_path, monkeypatch)
    yield application
    application.extensions["kiemke"].engine.dispose()


def _stored(db_url: str) -> Counter:
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            return Counter(conn.execute(select(reports.c.report_id)).scalars())
    finally:
        engine.dispose()


def _fleet(server, n: int) -> list[tuple[str, str]]:
    unit = server.create_unit(UNIT_NAME)
    token = server.create_token(unit)
    out = []
    for i in range(n):
        machine_id = new_machine_id()
        out.append((machine_id, _enroll(server.url, token, machine_id, f"PC-GC-{i:02d}")))
    return out


def _post(session: requests.Session, url: str, auth: str, report: dict) -> int:
    resp = session.post(f"{url}/api/v1/reports", json=report, timeout=30,
                        headers={"Authorization": auth})
    return resp.status_code


def test_concurrent_reports_all_stored_once(collector_server):
    """12 threads, 12 agents, 240 reports (every tenth sent twice): every answer 202 or
    200 (the replay), every report stored exactly once."""
    server = collector_server
    fleet = _fleet(server, AGENTS)
    answers: Counter = Counter()
    sent: list[str] = []
    lock = threading.Lock()

    def run(k: int) -> None:
        session = requests.Session()
        for i in range(20):
            machine_id, auth = fleet[(k + i) % AGENTS]
            report = make_report(machine_id, hostname=f"PC-GC-{(k + i) % AGENTS:02d}")
            status = _post(session, server.url, auth, report)
            again = _post(session, server.url, auth, report) if i % 10 == 0 else None
            with lock:
                answers[status] += 1
                if again is not None:
                    answers[f"again {again}"] += 1
                sent.append(report["report_id"])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {202: THREADS * 20, "again 200": THREADS * 2}, answers
    stored = _stored(server.db_url)
    assert set(stored) == set(sent) and max(stored.values()) == 1
    assert "database is locked" not in server.log()


def test_sigkill_mid_batch_loses_no_answered_report(collector_server):
    """Reports posted by 12 threads while one worker is killed with SIGKILL, twice: every
    report answered 2xx is in the database; the ones that got no answer are sent again
    (as an agent does from its spool) and end up stored once."""
    server = collector_server
    fleet = _fleet(server, AGENTS)
    answered: list[str] = []
    unanswered: list[tuple[str, dict]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def run(k: int) -> None:
        session = requests.Session()
        i = 0
        while not stop.is_set():
            machine_id, auth = fleet[(k + i) % AGENTS]
            report = make_report(machine_id, hostname=f"PC-GC-{(k + i) % AGENTS:02d}")
            i += 1
            try:
                status = _post(session, server.url, auth, report)
            except requests.RequestException:
                session = requests.Session()
                status = 0
            with lock:
                if status in (200, 202):
                    answered.append(report["report_id"])
                else:
                    unanswered.append((auth, report))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    assert server.process is not None

    def wait_answered(count: int) -> None:
        deadline = time.monotonic() + 180  # a bound for a stuck collector, not a timing
        while len(answered) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(answered) >= count, f"only {len(answered)} reports answered"

    for kill in (1, 2):  # while reports flow: the kill lands inside a batch or a request
        wait_answered(40 * kill)
        workers = _worker_pids(server.process.pid)
        assert workers, "no gunicorn worker found"
        os.kill(workers[0], signal.SIGKILL)
    wait_answered(120)  # the arbiter started another worker; reports flow again
    stop.set()
    for t in threads:
        t.join()
    stored = _stored(server.db_url)
    missing = [r for r in answered if r not in stored]
    assert not missing, f"{len(missing)} reports answered 2xx are not in the database"
    session = requests.Session()
    for auth, report in unanswered:  # the agent's spool sends them again
        assert _post(session, server.url, auth, report) in (200, 202)
    stored = _stored(server.db_url)
    assert max(stored.values()) == 1
    assert set(answered) | {r["report_id"] for _a, r in unanswered} <= set(stored)


def test_one_bad_report_in_a_batch_fails_alone(dbapp):
    app = dbapp
    """In-process: 16 threads at once, one with an unknown digest (409 raised inside
    the transaction): the others are stored, in shared transactions."""
    ext = app.extensions["kiemke"]
    unit_id = add_units(app, UNIT_NAME)[-1]
    token = enrollment_token(app, unit_id)
    client = app.test_client()
    fleet = []
    for i in range(16):
        machine_id = new_machine_id()
        fleet.append((machine_id, enroll_agent(client, token, machine_id, f"PC-{i}")))
    statuses: dict[int, list[int]] = {}
    start = threading.Barrier(16)

    def run(k: int) -> None:
        local = app.test_client()
        machine_id, headers = fleet[k]
        codes = []
        for _ in range(10):
            report = make_report(machine_id)
            if k == 0:  # never sent in full: the collector does not know the digest
                report["facts_digest"] = facts_digest(report)
                report = unchanged_form(report)
            if not codes:
                start.wait()
            codes.append(local.post("/api/v1/reports", json=report,
                                    headers=headers).status_code)
        statuses[k] = codes

    threads = [threading.Thread(target=run, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses[0] == [409] * 10
    assert all(codes == [202] * 10 for k, codes in statuses.items() if k != 0), statuses
    stored = _stored(ext.engine.url.render_as_string(hide_password=False))
    assert sum(stored.values()) == 150 and max(stored.values()) == 1
    assert ext.pipeline.committer.batches > 0, "no two reports ever shared a transaction"
