"""Unchanged reports (docs/report-format.md, "Unchanged reports"): the collector records a
report whose facts_digest it holds without evaluating it, asks for the full report when
it does not, and old agents (no digest) keep working. In-process first, then a real
agent against a real collector over HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from collector_helpers import add_units, enroll_agent, enrollment_token, row_counts
from compliance_helpers import make_app
from reports import UNIT_NAME, make_report, new_machine_id
from sqlalchemy import create_engine, select, update
from test_e2e_agent import _enrolled, agent

from kiemke.collector.db.compliance_tables import rule_results
from kiemke.collector.db.engine import normalize_url
from kiemke.collector.db.tables import machines, reports
from kiemke.collector.ingest import load_agent
from kiemke.collector.timeutil import utcnow
from kiemke.schema.digest import facts_digest, unchanged_form


@pytest.fixture
def dbapp(db_url, tmp_path, monkeypatch):
    """The in-process app on SQLite and on PostgreSQL."""
    application = make_app(db_url, tmp_path, monkeypatch)
    yield application
    application.extensions["kiemke"].engine.dispose()


def _post(client, body, headers):
    return client.post("/api/v1/reports", data=json.dumps(body, ensure_ascii=False).encode(),
                       headers=headers, content_type="application/json")


def _setup(app, client):
    unit_id = add_units(app, UNIT_NAME)[-1]
    machine_id = new_machine_id()
    headers = enroll_agent(client, enrollment_token(app, unit_id), machine_id)
    report = make_report(machine_id)
    report["facts_digest"] = facts_digest(report)
    return machine_id, headers, report


def _again(report, **changes):
    """The next report of the same machine with the same sections."""
    nxt = make_report(report["identity"]["machine_id"])
    nxt.update({k: v for k, v in report.items() if k not in ("report_id", "collected_at")})
    nxt.update(changes)
    return nxt


def _state(app, machine_id):
    with app.extensions["kiemke"].engine.connect() as conn:
        row = conn.execute(select(machines).where(machines.c.machine_id == machine_id)).one()
        results = conn.execute(select(rule_results.c.rule_id, rule_results.c.result,
                                      rule_results.c.since)
                               .where(rule_results.c.machine_id == machine_id)).all()
    return row, sorted(results)


def test_unchanged_report_recorded_without_evaluation(dbapp):
    app, client = dbapp, dbapp.test_client()
    machine_id, headers, report = _setup(app, client)
    first = _post(client, report, headers)
    assert first.status_code == 202
    assert first.get_json()["facts_digest"] == report["facts_digest"]
    before, results_before = _state(app, machine_id)
    assert before.facts_digest.startswith(report["facts_digest"] + ":")
    assert results_before

    slim = unchanged_form(_again(report))
    assert "hardware" not in slim and slim["unchanged"] is True
    resp = _post(client, slim, headers)
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json() == {"status": "accepted", "report_id": slim["report_id"],
                               "facts": "unchanged", "facts_digest": report["facts_digest"]}
    after, results_after = _state(app, machine_id)
    assert after.last_report_id == slim["report_id"]
    assert after.last_seen > before.last_seen
    assert after.report == before.report  # the sections stay those of the full report
    assert after.facts == before.facts and results_after == results_before
    with app.extensions["kiemke"].engine.connect() as conn:
        body = conn.execute(select(reports.c.body)
                            .where(reports.c.report_id == slim["report_id"])).scalar_one()
    assert body == slim  # the report row is what was sent
    # the same unchanged report again is a replay: one row, 200
    again = _post(client, slim, headers)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert row_counts(app)["reports"] == 2


def test_unknown_digest_is_409_and_changes_nothing(dbapp):
    app, client = dbapp, dbapp.test_client()
    machine_id, headers, report = _setup(app, client)
    slim = unchanged_form(_again(report))
    # no machine row yet
    resp = _post(client, slim, headers)
    assert resp.status_code == 409
    assert resp.get_json()["error"] == "facts_digest_unknown"
    assert resp.get_json()["field"] == "facts_digest"
    # ... and the served OpenAPI document names it (schemathesis checks every answer's
    # status against the document: an undocumented 409 failed it once)
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "409" in spec["paths"]["/api/v1/reports"]["post"]["responses"]
    old_agent = {k: v for k, v in report.items() if k != "facts_digest"}
    assert _post(client, old_agent, headers).status_code == 202  # an agent without digests
    counts = row_counts(app)
    row, results = _state(app, machine_id)
    assert row.facts_digest is None
    resp = _post(client, slim, headers)
    assert resp.status_code == 409 and row_counts(app) == counts
    assert _state(app, machine_id) == (row, results)
    # the agent then sends the same report in full: accepted, digest held again
    full = {k: v for k, v in _again(report).items()}
    full["report_id"] = slim["report_id"]
    resp = _post(client, full, headers)
    assert resp.status_code == 202 and resp.get_json()["facts_digest"] == report["facts_digest"]


def test_facts_changed_meanwhile_is_409(dbapp):
    app, client = dbapp, dbapp.test_client()
    machine_id, headers, report = _setup(app, client)
    assert _post(client, report, headers).status_code == 202
    changed = _again(report)
    changed["os"] = {**changed["os"], "build": "99999"}
    changed["facts_digest"] = facts_digest(changed)
    assert changed["facts_digest"] != report["facts_digest"]
    assert _post(client, changed, headers).status_code == 202
    stale = unchanged_form(_again(report))  # claims the first digest
    resp = _post(client, stale, headers)
    assert resp.status_code == 409 and resp.get_json()["error"] == "facts_digest_unknown"


def test_unchanged_report_with_sections_is_refused(dbapp):
    app, client = dbapp, dbapp.test_client()
    _machine_id, headers, report = _setup(app, client)
    assert _post(client, report, headers).status_code == 202
    bad = {**unchanged_form(_again(report)), "os": report["os"]}
    resp = _post(client, bad, headers)
    assert resp.status_code == 400 and resp.get_json()["field"] == "os"
    no_digest = {k: v for k, v in unchanged_form(_again(report)).items()
                 if k != "facts_digest"}
    resp = _post(client, no_digest, headers)
    assert resp.status_code == 400 and resp.get_json()["field"] == "facts_digest"


def test_new_day_evaluates_the_stored_sections_again(dbapp):
    app, client = dbapp, dbapp.test_client()
    """Same digest, another envelope (here the next day): the stored sections under the
    new envelope go through the whole pipeline; the facts' day moves on."""
    machine_id, headers, report = _setup(app, client)
    assert _post(client, report, headers).status_code == 202
    before, _ = _state(app, machine_id)
    ext = app.extensions["kiemke"]
    cred = load_agent(ext.engine, headers["Authorization"].split()[1].split(".")[0])
    assert cred is not None
    slim = unchanged_form(_again(report))
    tomorrow = utcnow() + timedelta(days=1)
    outcome = ext.pipeline.run(cred, slim, now=tomorrow)
    assert outcome.stored and not outcome.unchanged
    assert outcome.facts_digest == report["facts_digest"]
    after, _ = _state(app, machine_id)
    assert after.facts["now"] == tomorrow.date().isoformat() != before.facts["now"]
    assert after.facts_digest != before.facts_digest
    assert after.facts_digest.startswith(report["facts_digest"] + ":")
    assert after.report["hardware"] == report["hardware"]  # rebuilt from the stored one
    with ext.engine.connect() as conn:
        body = conn.execute(select(reports.c.body)
                            .where(reports.c.report_id == slim["report_id"])).scalar_one()
    assert "unchanged" not in body and body["os"] == report["os"]
    # and from then on the same envelope is unchanged again
    nxt = unchanged_form(_again(report))
    assert ext.pipeline.run(cred, nxt, now=tomorrow + timedelta(seconds=5)).unchanged


# --------------------------------------------------------------------------- end to end

def _bodies(db_url: str, machine_id: str) -> list[dict]:
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(reports.c.body)
                                     .where(reports.c.machine_id == machine_id)
                                     .order_by(reports.c.received_at)).scalars())
    finally:
        engine.dispose()


def test_real_agent_sends_unchanged_reports(collector_server, tmp_path):
    """kiemke-agent send against kiemke-collector serve: the second periodic report with
    the same facts goes as `unchanged`; after the collector forgets the digest, the
    agent's next report is answered 409 and sent again in full, and nothing is lost."""
    server = collector_server
    conf, machine_id = _enrolled(server, tmp_path)
    status_path = tmp_path / "state" / "status.json"
    for _ in range(3):  # full, periodic (other sections than full), periodic again
        out = agent(conf, "send")
        assert out.returncode == 0, out.stderr
    bodies = _bodies(server.db_url, machine_id)
    assert [b["kind"] for b in bodies] == ["full", "periodic", "periodic"]
    assert "unchanged" not in bodies[0] and "unchanged" not in bodies[1]
    assert bodies[2].get("unchanged") is True, \
        "the third report repeats the second's facts: it should go as unchanged"
    assert "hardware" not in bodies[2]
    assert bodies[2]["facts_digest"] == bodies[1]["facts_digest"]
    held = json.loads(status_path.read_text("utf-8"))["facts_digest"]
    assert held == bodies[1]["facts_digest"]

    # the collector forgets (a restored database): 409, then the same report in full
    engine = create_engine(normalize_url(server.db_url))
    with engine.begin() as conn:
        conn.execute(update(machines).where(machines.c.machine_id == machine_id)
                     .values(facts_digest=None))
    engine.dispose()
    out = agent(conf, "send")
    assert out.returncode == 0, out.stderr
    bodies = _bodies(server.db_url, machine_id)
    assert len(bodies) == 4 and "unchanged" not in bodies[3] and "hardware" in bodies[3]
    assert json.loads(status_path.read_text("utf-8"))["facts_digest"] == \
        bodies[3]["facts_digest"]
    status = json.loads(agent(conf, "status", "--json").stdout)
    assert status["spool"]["pending"] == 0
    assert "facts_digest_unknown" in server.log() or "409" in server.log()
    # and the next one is unchanged again
    assert agent(conf, "send").returncode == 0
    assert _bodies(server.db_url, machine_id)[-1].get("unchanged") is True
