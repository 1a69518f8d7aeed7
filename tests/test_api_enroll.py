"""POST /api/v1/enroll: tokens bound to units, limits, revocation, bad input."""

from __future__ import annotations

import pytest
from collector_helpers import add_units, enrollment_token, row_counts
from reports import UNIT_NAME, new_machine_id
from sqlalchemy import select, update

from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import agents, enrollment_tokens
from kiemke.collector.enrollment import revoke_enrollment_token
from kiemke.collector.timeutil import utcnow


@pytest.fixture
def unit_id(app):
    return add_units(app, UNIT_NAME, "Văn phòng")[-1]


def enroll(client, token, machine_id=None, hostname="PC-VĂN-THƯ"):
    return client.post("/api/v1/enroll", json={"token": token,
                                               "machine_id": machine_id or new_machine_id(),
                                               "hostname": hostname})


def test_enroll_returns_credential_and_unit(app, client, unit_id):
    resp = enroll(client, enrollment_token(app, unit_id))
    assert resp.status_code == 201
    body = resp.get_json()
    assert len(body["agent_id"]) == 32 and len(body["secret"]) >= 43
    assert body["unit"] == {"id": unit_id, "name": "Văn phòng",
                            "path": f"{UNIT_NAME} / Văn phòng"}
    with app.extensions["kiemke"].engine.connect() as conn:
        row = conn.execute(select(agents)).one()
    assert row.hostname == "PC-VĂN-THƯ"
    assert row.secret_hash != body["secret"] and len(row.secret_hash) == 64


def test_reenrol_same_machine_revokes_previous(app, client, unit_id):
    token = enrollment_token(app, unit_id)
    machine_id = new_machine_id()
    first = enroll(client, token, machine_id).get_json()
    second = enroll(client, token, machine_id).get_json()
    assert first["agent_id"] != second["agent_id"]
    with app.extensions["kiemke"].engine.connect() as conn:
        rows = {r.id: r.revoked_at for r in conn.execute(select(agents))}
    assert rows[first["agent_id"]] is not None
    assert rows[second["agent_id"]] is None


def _expire(app, token_hash_filter=None):
    with write_transaction(app.extensions["kiemke"].engine) as conn:
        conn.execute(update(enrollment_tokens).values(expires_at=utcnow()))


def test_token_limits(app, client, unit_id):
    token = enrollment_token(app, unit_id, max_uses=1)
    assert enroll(client, token).status_code == 201
    before = row_counts(app)
    resp = enroll(client, token)
    assert resp.status_code == 403
    assert resp.get_json()["error"] == "token_used_up"
    assert resp.get_json()["field"] == "token"
    assert row_counts(app) == before


def test_expired_token(app, client, unit_id):
    token = enrollment_token(app, unit_id, expires_in=3600)
    _expire(app)
    before = row_counts(app)
    resp = enroll(client, token)
    assert resp.status_code == 403
    assert resp.get_json()["error"] == "token_expired"
    assert row_counts(app) == before


def test_revoked_token(app, client, unit_id):
    token = enrollment_token(app, unit_id)
    with write_transaction(app.extensions["kiemke"].engine) as conn:
        assert revoke_enrollment_token(conn, 1)
    before = row_counts(app)
    resp = enroll(client, token)
    assert resp.status_code == 403
    assert resp.get_json()["error"] == "token_revoked"
    assert row_counts(app) == before


def test_unknown_token(app, client, unit_id):
    enrollment_token(app, unit_id)
    before = row_counts(app)
    resp = enroll(client, "not-a-real-token")
    assert resp.status_code == 401
    assert resp.get_json() | {"message": ""} == {"error": "invalid_token", "field": "token",
                                                  "message": ""}
    assert row_counts(app) == before


@pytest.mark.parametrize(("body", "field", "status"), [
    ({"machine_id": "0" * 32, "hostname": "PC"}, "token", 400),
    ({"token": "t", "hostname": "PC"}, "machine_id", 400),
    ({"token": "t", "machine_id": "XYZ", "hostname": "PC"}, "machine_id", 400),
    ({"token": "t", "machine_id": "0" * 32}, "hostname", 400),
    ({"token": "t", "machine_id": "0" * 32, "hostname": 42}, "hostname", 400),
    ({"token": "t", "machine_id": "0" * 32, "hostname": "x" * 256}, "hostname", 400),
    ([1, 2], "body", 400),
], ids=["no-token", "no-machine", "bad-machine", "no-hostname", "hostname-type",
        "hostname-long", "array"])
def test_bad_enrol_body(app, client, unit_id, body, field, status):
    before = row_counts(app)
    resp = client.post("/api/v1/enroll", json=body)
    assert resp.status_code == status
    assert resp.get_json()["field"] == field
    assert row_counts(app) == before


def test_enrol_malformed_and_wrong_type(app, client, unit_id):
    resp = client.post("/api/v1/enroll", data=b"{oops", content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"] == "malformed_json"
    resp = client.post("/api/v1/enroll", data=b"token=x", content_type="text/plain")
    assert resp.status_code == 415 and resp.get_json()["field"] == "Content-Type"
