"""Bad input is a 4xx naming the field, on SQLite and PostgreSQL alike, and stores nothing
(issue 11, defects 2, 3, 6, 7 and the gzip limits).

Each case runs on both databases (`db_url`); the expected answer is one constant, so the
backends cannot disagree. About 40 s for the file.
"""

from __future__ import annotations

import gzip
import json
import logging
import unicodedata
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from collector_helpers import add_units, admin_token, enrollment_token, row_counts
from compliance_helpers import make_app
from reports import make_report
from sqlalchemy import select

from kiemke.collector.db.tables import machines, reports

UNIT = "Liên đoàn Lao động tỉnh Bắc Giang"


@pytest.fixture
def backend(db_url, tmp_path, monkeypatch):
    app = make_app(db_url, tmp_path, monkeypatch)
    client = app.test_client()
    unit_id = add_units(app, UNIT)[0]
    token = enrollment_token(app, unit_id)

    def agent() -> tuple[str, dict[str, str]]:
        machine_id = uuid.uuid4().hex
        resp = client.post("/api/v1/enroll", json={"token": token, "machine_id": machine_id,
                                                   "hostname": "PC-KETOAN-01"})
        assert resp.status_code == 201, resp.get_json()
        body = resp.get_json()
        return machine_id, {"Authorization": f"Bearer {body['agent_id']}.{body['secret']}"}

    yield app, client, agent, {"Authorization": f"Bearer {admin_token(app)}"}, unit_id
    app.extensions["kiemke"].engine.dispose()


def _post_raw(client, body: bytes, headers: dict[str, str], **extra: str):
    return client.post("/api/v1/reports", data=body, headers={
        **headers, "Content-Type": "application/json", **extra})


def _report_text(machine_id: str, **overrides) -> str:
    return json.dumps(make_report(machine_id, **overrides), ensure_ascii=False)


# (id, body builder(machine_id) -> bytes, status, error, field)
BAD_BODIES = [
    ("arrays-100000-deep", lambda m: b"[" * 100_000 + b"]" * 100_000, 400, "malformed_json",
     "body"),
    ("nested-100000-deep-in-a-field", lambda m: _report_text(m).replace(
        '"extras": {}', '"extras": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
     if '"extras": {}' in _report_text(m) else
     _report_text(m)[:-1].encode() + b', "extras": {"x": ' + b"[" * 100_000
     + b"]" * 100_000 + b"}}", 400, "malformed_json", "body"),
    ("400-digit-integer", lambda m: _report_text(m, hardware={"memory_bytes": 1}).replace(
        '"memory_bytes": 1', '"memory_bytes": ' + "9" * 400).encode(), 400, "invalid_field",
     "hardware.memory_bytes"),
    ("lone-surrogate-hostname", lambda m: _report_text(m).replace(
        '"hostname": "PC-KETOAN-01"', '"hostname": "PC-\\ud800"', 1).encode(), 400,
     "invalid_field", "identity.hostname"),
    ("nul-in-hostname", lambda m: _report_text(m).replace(
        '"hostname": "PC-KETOAN-01"', '"hostname": "PC-\\u0000"', 1).encode(), 400,
     "invalid_field", "identity.hostname"),
    ("nan", lambda m: _report_text(m, hardware={"memory_bytes": 1}).replace(
        '"memory_bytes": 1', '"memory_bytes": NaN').encode(), 400, "invalid_field",
     "hardware.memory_bytes"),
    ("infinity", lambda m: _report_text(m, hardware={"memory_bytes": 1}).replace(
        '"memory_bytes": 1', '"memory_bytes": -Infinity').encode(), 400, "invalid_field",
     "hardware.memory_bytes"),
    ("1e999", lambda m: _report_text(m, hardware={"memory_bytes": 1}).replace(
        '"memory_bytes": 1', '"memory_bytes": 1e999').encode(), 400, "invalid_field",
     "hardware.memory_bytes"),
    ("year-9999", lambda m: _report_text(m, collected_at="9999-12-31T23:59:59Z").encode(),
     400, "clock_skew", "collected_at"),
    ("year-0001", lambda m: _report_text(m, collected_at="0001-01-01T00:00:00Z").encode(),
     400, "clock_skew", "collected_at"),
    ("year-0001-with-offset", lambda m: _report_text(
        m, collected_at="0001-01-01T00:00:00+01:00").encode(), 400, "invalid_field",
     "collected_at"),
    ("year-1900", lambda m: _report_text(m, collected_at="1900-01-01T00:00:00Z").encode(),
     400, "clock_skew", "collected_at"),
    ("not-utf8", lambda m: b'{"a": "\xff"}', 400, "malformed_json", "body"),
]


@pytest.mark.parametrize("case", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_bad_report_bodies_are_400_naming_the_field(backend, case) -> None:
    app, client, agent, _admin, _unit = backend
    machine_id, headers = agent()
    _name, build, status, error, field = case
    before = row_counts(app)
    resp = _post_raw(client, build(machine_id), headers)
    assert resp.status_code == status, resp.get_data(as_text=True)[:500]
    body = resp.get_json()
    assert (body["error"], body["field"]) == (error, field), body
    assert row_counts(app) == before


def test_clock_skew_message_names_collected_at_and_the_skew(backend) -> None:
    _app, client, agent, _admin, _unit = backend
    machine_id, headers = agent()
    ahead = (datetime.now(timezone.utc) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resp = _post_raw(client, _report_text(machine_id, collected_at=ahead).encode(), headers)
    assert resp.status_code == 400
    message = resp.get_json()["message"]
    assert ahead in message and "2 h ahead" in message and "15 min" in message
    assert "KIEMKE_MAX_CLOCK_SKEW" in message
    # Within the skew: accepted.
    near = (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _post_raw(client, _report_text(machine_id, collected_at=near).encode(),
                     headers).status_code == 202


def test_a_clock_running_ahead_does_not_freeze_the_current_state(backend) -> None:
    """A report 10 minutes fast (within the skew) is current; the machine's clock is then
    corrected: the next report, "older" by its clock but received later, replaces it."""
    app, client, agent, _admin, _unit = backend
    machine_id, headers = agent()
    now = datetime.now(timezone.utc)
    fast = make_report(machine_id, hostname="PC-NHANH",
                       collected_at=(now + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert client.post("/api/v1/reports", json=fast, headers=headers).status_code == 202
    # ... the stored state is from the future relative to any later arrival only if the
    # receive time is before the stored collected_at: it is (10 minutes ahead).
    fixed = make_report(machine_id, hostname="PC-DUNG",
                        collected_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert client.post("/api/v1/reports", json=fixed, headers=headers).status_code == 202
    with app.extensions["kiemke"].engine.connect() as conn:
        row = conn.execute(select(machines).where(machines.c.machine_id == machine_id)).one()
    assert row.hostname == "PC-DUNG" and row.last_report_id == fixed["report_id"]
    # A report collected earlier (from the spool) still does not become current.
    late = make_report(machine_id, hostname="PC-CU",
                       collected_at=(now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert client.post("/api/v1/reports", json=late, headers=headers).status_code == 202
    with app.extensions["kiemke"].engine.connect() as conn:
        row = conn.execute(select(machines).where(machines.c.machine_id == machine_id)).one()
    assert row.hostname == "PC-DUNG"


def test_the_agents_counter_decides_the_current_state(backend) -> None:
    app, client, agent, _admin, _unit = backend
    machine_id, headers = agent()
    now = datetime.now(timezone.utc)
    second = make_report(machine_id, hostname="PC-2", sequence=2,
                         collected_at=(now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    first = make_report(machine_id, hostname="PC-1", sequence=1,
                        collected_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    for report in (second, first):  # the clock says first is newer; the counter says not
        assert client.post("/api/v1/reports", json=report, headers=headers).status_code == 202
    with app.extensions["kiemke"].engine.connect() as conn:
        row = conn.execute(select(machines).where(machines.c.machine_id == machine_id)).one()
    assert (row.hostname, row.last_sequence) == ("PC-2", 2)


def test_clock_offset_is_a_fact_and_a_failing_rule(backend) -> None:
    app, client, agent, admin, _unit = backend
    machine_id, headers = agent()
    ahead = (datetime.now(timezone.utc) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert client.post("/api/v1/reports", json=make_report(machine_id, collected_at=ahead),
                       headers=headers).status_code == 202
    body = client.get(f"/api/v1/machines/{machine_id}", headers=admin).get_json()
    assert body["facts"]["agent.clock_offset_seconds"] == 600
    results = {r["rule"]: r for r in body["results"]}
    assert results["machine-clock-correct"]["result"] == "fail"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert any('rule="machine-clock-correct"' in line and 'result="fail"' in line
               and line.endswith(" 1.0") for line in metrics.splitlines()
               if line.startswith("kiemke_rule_machines{")), metrics[:2000]


def test_report_ids_are_per_machine(backend) -> None:
    app, client, agent, _admin, _unit = backend
    (a, ha), (b, hb) = agent(), agent()
    shared = str(uuid.uuid4())
    ra, rb = make_report(a), make_report(b)
    ra["report_id"] = rb["report_id"] = shared
    assert client.post("/api/v1/reports", json=ra, headers=ha).status_code == 202
    assert client.post("/api/v1/reports", json=rb, headers=hb).status_code == 202
    assert client.post("/api/v1/reports", json=rb, headers=hb).status_code == 200  # replay
    with app.extensions["kiemke"].engine.connect() as conn:
        stored = conn.execute(select(reports.c.machine_id)
                              .where(reports.c.report_id == shared)).scalars().all()
    assert sorted(stored) == sorted([a, b])


@pytest.mark.parametrize("tail", [b"garbage", b"second"], ids=["trailing", "second-member"])
def test_gzip_with_data_after_its_end_is_refused(backend, tail) -> None:
    app, client, agent, _admin, _unit = backend
    machine_id, headers = agent()
    body = gzip.compress(_report_text(machine_id).encode())
    body += gzip.compress(b"{}") if tail == b"second" else tail
    before = row_counts(app)
    resp = _post_raw(client, body, headers, **{"Content-Encoding": "gzip"})
    assert resp.status_code == 400 and resp.get_json()["error"] == "malformed_gzip"
    assert row_counts(app) == before


HUGE = "9" * 40


@pytest.mark.parametrize("method,path", [
    ("GET", f"/api/v1/units/{HUGE}"), ("PATCH", f"/api/v1/units/{HUGE}"),
    ("DELETE", f"/api/v1/waivers/{HUGE}"), ("GET", f"/api/v1/machines/{HUGE}"),
    ("GET", f"/api/v1/units/{2**31}"), ("GET", "/api/v1/machines/x%00y"),
])
def test_huge_or_odd_path_ids_are_404(backend, method, path) -> None:
    _app, client, _agent, admin, _unit = backend
    resp = client.open(path, method=method, headers=admin, json={"name": "x"})
    # 405 where another route has the same shape for other methods: never a 5xx.
    assert resp.status_code in (404, 405), resp.get_data(as_text=True)[:300]
    assert resp.get_json()["error"] in ("not_found", "method_not_allowed")


@pytest.mark.parametrize("body,field", [
    ({"name": "Văn phòng", "code": 12}, "code"),
    ({"name": "Văn phòng", "code": {"a": 1}}, "code"),
    ({"name": "Văn phòng", "code": "X" * 65}, "code"),
    ({"name": "Văn phòng", "parent": int(HUGE)}, "parent"),
    ({"name": "Văn phòng", "parent": HUGE}, "parent"),
    ({"name": "Văn\u0000phòng"}, "name"),
])
def test_bad_unit_bodies_are_400(backend, body, field) -> None:
    app, client, _agent, admin, _unit = backend
    before = row_counts(app)
    resp = client.post("/api/v1/units", json=body, headers=admin)
    assert resp.status_code == 400, resp.get_data(as_text=True)[:300]
    assert resp.get_json()["field"] == field, resp.get_json()
    assert row_counts(app) == before


def test_nul_in_a_query_parameter_is_400(backend) -> None:
    _app, client, _agent, admin, _unit = backend
    resp = client.get("/api/v1/machines?unit=a%00b", headers=admin)
    assert resp.status_code == 400 and resp.get_json()["field"] == "unit"


def test_nfd_names_find_and_do_not_duplicate_nfc_units(backend) -> None:
    app, client, _agent, admin, _unit = backend
    nfc_name = "LĐLĐ huyện Lục Ngạn"
    nfd_name = unicodedata.normalize("NFD", nfc_name)
    assert nfd_name != nfc_name
    created = client.post("/api/v1/units", json={"name": nfc_name, "parent": UNIT},
                          headers=admin)
    assert created.status_code == 201, created.get_json()
    again = client.post("/api/v1/units", json={"name": nfd_name, "parent": UNIT},
                        headers=admin)
    assert again.status_code == 409, again.get_json()
    path_nfd = unicodedata.normalize("NFD", f"{UNIT} / {nfc_name}")
    found = client.get("/api/v1/machines", query_string={"unit": path_nfd}, headers=admin)
    assert found.status_code == 200, found.get_json()
    units_ = client.get("/api/v1/units", headers=admin).get_json()["items"]
    assert [u["name"] for u in units_].count(nfc_name) == 1
    # A report written in NFD is stored in NFC.
    machine_id, headers = _agent()
    text = _report_text(machine_id).replace('"hostname": "PC-KETOAN-01"',
                                            f'"hostname": "{nfd_name}"', 1)
    assert _post_raw(client, text.encode(), headers).status_code == 202
    body = client.get(f"/api/v1/machines/{machine_id}", headers=admin).get_json()
    assert body["report"]["identity"]["hostname"] == nfc_name
    assert body["hostname"] == nfc_name


def test_database_outage_is_503_with_retry_after_and_one_log_line(pg_url, tmp_path,
                                                                   monkeypatch, caplog):
    """The test's own database is dropped under the running app: every request is 503
    with Retry-After, and the outage is logged once, not once per request."""
    import psycopg
    from conftest import PG_ADMIN_URL

    app = make_app(pg_url, tmp_path, monkeypatch)
    client = app.test_client()
    unit_id = add_units(app, UNIT)[0]
    token = enrollment_token(app, unit_id)
    admin = {"Authorization": f"Bearer {admin_token(app)}"}
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    caplog.set_level(logging.INFO, logger="kiemke")
    statuses = []
    for _ in range(20):
        for resp in (client.get("/api/v1/units", headers=admin),
                     client.post("/api/v1/enroll", json={"token": token, "machine_id": "a" * 32,
                                                         "hostname": "PC-01"})):
            statuses.append(resp.status_code)
            assert resp.headers.get("Retry-After") == "5", resp.get_data(as_text=True)[:300]
            assert resp.get_json()["error"] == "database_unavailable"
    assert set(statuses) == {503}
    lines = [r for r in caplog.records if "database unavailable" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks for an outage"
    app.extensions["kiemke"].engine.dispose()
