"""POST /api/v1/reports on the in-process app: success, idempotency, every bad input."""

from __future__ import annotations

import gzip
import json

import pytest
from collector_helpers import add_units, enroll_agent, enrollment_token, row_counts
from reports import UNIT_NAME, make_report, new_machine_id


@pytest.fixture
def agent(app, client):
    unit_id = add_units(app, UNIT_NAME, "Ban Tổ chức")[-1]
    machine_id = new_machine_id()
    headers = enroll_agent(client, enrollment_token(app, unit_id), machine_id)
    return {"machine_id": machine_id, "headers": headers, "unit_id": unit_id}


def post(client, body, headers, content_type="application/json", encoding=None):
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    if encoding:
        headers = {**headers, "Content-Encoding": encoding}
    return client.post("/api/v1/reports", data=data, headers=headers, content_type=content_type)


def test_report_accepted_and_stored(app, client, agent):
    report = make_report(agent["machine_id"], hostname="MÁY-KẾ-TOÁN-01")
    resp = post(client, report, agent["headers"])
    assert resp.status_code == 202
    assert resp.get_json() == {"status": "accepted", "report_id": report["report_id"]}
    counts = row_counts(app)
    assert counts["reports"] == 1 and counts["machines"] == 1
    from sqlalchemy import select

    from kiemke.collector.db.tables import machines
    with app.extensions["kiemke"].engine.connect() as conn:
        row = conn.execute(select(machines)).one()
    assert row.hostname == "MÁY-KẾ-TOÁN-01"
    assert row.unit_id == agent["unit_id"]
    assert row.report["printers"]["printers"][0]["name"] == "HP LaserJet Pro M404dn - Phòng Kế toán"
    assert row.last_report_id == report["report_id"]
    assert row.last_seen.tzinfo is not None


def test_same_report_twice_is_one_row(app, client, agent):
    report = make_report(agent["machine_id"])
    assert post(client, report, agent["headers"]).status_code == 202
    again = post(client, report, agent["headers"])
    assert again.status_code == 200
    assert again.get_json() == {"status": "duplicate", "report_id": report["report_id"]}
    assert row_counts(app)["reports"] == 1


def test_gzip_report_accepted(app, client, agent):
    report = make_report(agent["machine_id"], kind="full")
    resp = post(client, gzip.compress(json.dumps(report).encode()), agent["headers"],
                encoding="gzip")
    assert resp.status_code == 202, resp.get_json()
    assert row_counts(app)["reports"] == 1


def test_late_report_does_not_overwrite_current_state(app, client, agent):
    new = make_report(agent["machine_id"], hostname="PC-MOI", collected_at="2024-05-06T08:00:00Z")
    old = make_report(agent["machine_id"], hostname="PC-CU", collected_at="2024-05-01T08:00:00Z")
    assert post(client, new, agent["headers"]).status_code == 202
    assert post(client, old, agent["headers"]).status_code == 202
    from sqlalchemy import select

    from kiemke.collector.db.tables import machines
    with app.extensions["kiemke"].engine.connect() as conn:
        row = conn.execute(select(machines)).one()
    assert row.hostname == "PC-MOI" and row.last_report_id == new["report_id"]
    assert row_counts(app)["reports"] == 2


def _without(report: dict, dotted: str) -> dict:
    *parents, last = dotted.split(".")
    node = report
    for key in parents:
        node = node[key]
    del node[last]
    return report


BAD_REPORTS = [
    # (id, report builder, status, error, field)
    ("wrong-type", lambda m: make_report(m, hardware={"memory_bytes": "8 GB"}),
     400, "invalid_field", "hardware.memory_bytes"),
    ("negative-in-array", lambda m: make_report(m, hardware={"disks": [
        {"name": "ổ C", "size_bytes": -5}]}), 400, "invalid_field",
     "hardware.disks[0].size_bytes"),
    ("missing-section", lambda m: _without(make_report(m), "antivirus"),
     400, "missing_field", "antivirus"),
    ("missing-nested", lambda m: _without(make_report(m), "identity.hostname"),
     400, "missing_field", "identity.hostname"),
    ("unknown-field", lambda m: make_report(m, os={"service_pack": "3"}),
     400, "unknown_field", "os.service_pack"),
    ("bad-enum", lambda m: make_report(m, kind="weekly"), 400, "invalid_field", "kind"),
    ("bad-datetime", lambda m: make_report(m, collected_at="06/05/2024"),
     400, "invalid_field", "collected_at"),
    ("impossible-datetime", lambda m: make_report(m, collected_at="2024-13-45T08:00:00Z"),
     400, "invalid_field", "collected_at"),
    ("unknown-schema-version", lambda m: make_report(m, schema_version=2),
     400, "unsupported_schema_version", "schema_version"),
    ("not-an-object", lambda m: [make_report(m)], 400, "invalid_field", "body"),
    ("other-machine", lambda m: make_report(new_machine_id()),
     403, "machine_mismatch", "identity.machine_id"),
]


@pytest.mark.parametrize(("build", "status", "error", "field"),
                         [case[1:] for case in BAD_REPORTS], ids=[c[0] for c in BAD_REPORTS])
def test_bad_report_rejected_and_nothing_stored(app, client, agent, build, status, error, field):
    before = row_counts(app)
    resp = post(client, build(agent["machine_id"]), agent["headers"])
    body = resp.get_json()
    assert resp.status_code == status, body
    assert body["error"] == error
    assert body["field"] == field
    assert isinstance(body["message"], str) and len(body["message"]) > 20
    assert row_counts(app) == before


@pytest.mark.parametrize("data", [b"{not json", b'{"schema_version": 1,', b"\xff\xfe{}", b""],
                         ids=["garbage", "truncated", "not-utf8", "empty"])
def test_malformed_json(app, client, agent, data):
    before = row_counts(app)
    resp = post(client, data, agent["headers"])
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "malformed_json"
    assert resp.get_json()["field"] == "body"
    assert row_counts(app) == before


def test_wrong_content_type(app, client, agent):
    before = row_counts(app)
    resp = post(client, make_report(agent["machine_id"]), agent["headers"],
                content_type="text/plain")
    assert resp.status_code == 415
    assert resp.get_json()["field"] == "Content-Type"
    assert row_counts(app) == before


def test_unsupported_content_encoding(app, client, agent):
    resp = post(client, make_report(agent["machine_id"]), agent["headers"], encoding="br")
    assert resp.status_code == 415
    assert resp.get_json()["field"] == "Content-Encoding"


def test_broken_gzip(app, client, agent):
    before = row_counts(app)
    data = gzip.compress(json.dumps(make_report(agent["machine_id"])).encode())
    resp = post(client, data[: len(data) // 2], agent["headers"], encoding="gzip")
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "malformed_gzip"
    resp = post(client, b"plain, not gzip", agent["headers"], encoding="gzip")
    assert resp.status_code == 400
    assert row_counts(app) == before


def test_oversized_body(app, client, agent):
    limit = app.extensions["kiemke"].config.max_body_bytes
    report = make_report(agent["machine_id"], extras={"padding": "x" * (limit + 10)})
    before = row_counts(app)
    resp = post(client, report, agent["headers"])
    assert resp.status_code == 413
    assert resp.get_json()["field"] == "body"
    assert "KIEMKE_MAX_BODY_BYTES" in resp.get_json()["message"]
    assert row_counts(app) == before


def test_gzip_bomb_rejected_on_decompressed_size(app, client, agent):
    limit = app.extensions["kiemke"].config.max_body_bytes
    # 64 MiB of zeros inside a valid JSON string compresses to ~64 KiB: under the limit
    # on the wire, 64 times over it once inflated.
    bomb = gzip.compress(b'{"x": "' + b"0" * (64 * 1024 * 1024) + b'"}', compresslevel=9)
    assert len(bomb) < limit
    before = row_counts(app)
    resp = post(client, bomb, agent["headers"], encoding="gzip")
    assert resp.status_code == 413
    assert resp.get_json()["error"] == "body_too_large"
    assert "decompressed" in resp.get_json()["message"]
    assert row_counts(app) == before


@pytest.mark.parametrize("header", [
    None, "Basic dXNlcjpwYXNz", "Bearer ", "Bearer no-dot-here",
    "Bearer 0123456789abcdef0123456789abcdef.wrongsecret",
], ids=["missing", "basic", "empty", "no-dot", "unknown-agent"])
def test_bad_credentials(app, client, agent, header):
    headers = {"Authorization": header} if header else {}
    before = row_counts(app)
    resp = post(client, make_report(agent["machine_id"]), headers)
    assert resp.status_code == 401
    assert resp.get_json()["field"] == "Authorization"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert row_counts(app) == before


def test_wrong_secret_for_real_agent(app, client, agent):
    agent_id = agent["headers"]["Authorization"].split()[1].split(".")[0]
    resp = post(client, make_report(agent["machine_id"]),
                {"Authorization": f"Bearer {agent_id}.{'A' * 43}"})
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_credentials"


def test_reenrolment_revokes_old_secret(app, client, agent):
    token = enrollment_token(app, agent["unit_id"])
    new_headers = enroll_agent(client, token, agent["machine_id"])
    old = post(client, make_report(agent["machine_id"]), agent["headers"])
    assert old.status_code == 401
    assert old.get_json()["error"] == "credentials_revoked"
    assert post(client, make_report(agent["machine_id"]), new_headers).status_code == 202


def test_ingest_counters(app, client, agent):
    report = make_report(agent["machine_id"])
    post(client, report, agent["headers"])
    post(client, report, agent["headers"])
    post(client, b"{", agent["headers"])
    from prometheus_client.parser import text_string_to_metric_families
    text = client.get("/metrics").get_data(as_text=True)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("kiemke_reports_received_total",
                    (("reason", "accepted"), ("result", "accepted")))] == 1
    assert samples[("kiemke_reports_received_total",
                    (("reason", "duplicate"), ("result", "duplicate")))] == 1
    assert samples[("kiemke_reports_received_total",
                    (("reason", "malformed_json"), ("result", "rejected")))] == 1
    assert samples[("kiemke_report_ingest_seconds_count", ())] == 3


def test_agent_spool_errors_are_counted(app, client, agent):
    def counted() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        line = [x for x in text.splitlines() if x.startswith("kiemke_agent_spool_errors_total ")]
        return float(line[0].split()[1]) if line else 0.0

    report = make_report(agent["machine_id"])
    report["agent"] = {"spool_errors": [
        {"at": "2026-12-01T08:00:00Z", "path": "/var/lib/kiemke/spool",
         "message": "No space left on device (errno 28)", "report_id": report["report_id"]}]}
    before = counted()
    assert post(client, report, agent["headers"]).status_code == 202
    assert post(client, report, agent["headers"]).status_code == 200  # a duplicate: not again
    assert counted() == before + 1
    report["agent"]["spool_errors"][0]["size"] = 1  # the entry's fields are fixed
    report["report_id"] = new_machine_id()[:8] + report["report_id"][8:]
    resp = post(client, report, agent["headers"])
    assert resp.status_code == 400 and "agent" in resp.get_json()["field"]
