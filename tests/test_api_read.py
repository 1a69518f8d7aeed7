"""Read APIs with admin auth, health endpoints and the OpenAPI document."""

from __future__ import annotations

import re

import jsonschema
import pytest
from collector_helpers import add_units, admin_token, enroll_agent, enrollment_token
from reports import UNIT_NAME, make_report, new_machine_id

from kiemke.collector.db.engine import write_transaction
from kiemke.collector.enrollment import revoke_admin_token


@pytest.fixture
def fleet(app, client):
    """Two offices under one province unit, three machines."""
    root, district = add_units(app, UNIT_NAME, "LĐLĐ huyện Lục Ngạn")
    office = add_units(app, "Công đoàn ngành Giáo dục")[0]
    machines = {}
    for unit_id, hostname in ((district, "LN-PC-01"), (district, "LN-PC-02"),
                              (office, "GD-PC-01")):
        mid = new_machine_id()
        headers = enroll_agent(client, enrollment_token(app, unit_id), mid, hostname)
        resp = client.post("/api/v1/reports", json=make_report(mid, hostname=hostname),
                           headers=headers)
        assert resp.status_code == 202
        machines[hostname] = mid
    return {"root": root, "district": district, "office": office, "machines": machines,
            "auth": {"Authorization": f"Bearer {admin_token(app)}"}}


def test_units(client, fleet):
    resp = client.get("/api/v1/units", headers=fleet["auth"])
    assert resp.status_code == 200
    paths = [u["path"] for u in resp.get_json()["items"]]
    assert paths == ["Công đoàn ngành Giáo dục", UNIT_NAME,
                     f"{UNIT_NAME} / LĐLĐ huyện Lục Ngạn"]
    assert "Lục Ngạn" in resp.get_data(as_text=True)  # UTF-8, not \\u escapes


def test_machines_pagination(client, fleet):
    seen, cursor = [], None
    while True:
        url = "/api/v1/machines?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=fleet["auth"]).get_json()
        seen += [m["machine_id"] for m in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(fleet["machines"].values())
    assert len(seen) == 3


def test_machines_filters(client, fleet):
    body = client.get(f"/api/v1/machines?unit={fleet['root']}", headers=fleet["auth"]).get_json()
    assert sorted(m["hostname"] for m in body["items"]) == ["LN-PC-01", "LN-PC-02"]
    assert body["items"][0]["unit"]["path"] == f"{UNIT_NAME} / LĐLĐ huyện Lục Ngạn"
    assert body["items"][0]["status"] == "active"
    body = client.get("/api/v1/machines?hostname=gd-", headers=fleet["auth"]).get_json()
    assert [m["hostname"] for m in body["items"]] == ["GD-PC-01"]
    resp = client.get("/api/v1/machines?unit=Không có", headers=fleet["auth"])
    assert resp.status_code == 400 and resp.get_json()["field"] == "unit"
    resp = client.get("/api/v1/machines?limit=0", headers=fleet["auth"])
    assert resp.status_code == 400 and resp.get_json()["field"] == "limit"


def test_machine_detail(client, fleet):
    mid = fleet["machines"]["GD-PC-01"]
    body = client.get(f"/api/v1/machines/{mid}", headers=fleet["auth"]).get_json()
    assert body["hostname"] == "GD-PC-01"
    assert body["report"]["identity"]["machine_id"] == mid
    assert body["last_seen"].endswith("Z")
    resp = client.get(f"/api/v1/machines/{'0' * 32}", headers=fleet["auth"])
    assert resp.status_code == 404 and resp.get_json()["field"] == "machine_id"


def test_read_apis_need_admin_token(app, client, fleet):
    for url in ("/api/v1/units", "/api/v1/machines",
                f"/api/v1/machines/{fleet['machines']['GD-PC-01']}"):
        assert client.get(url).status_code == 401
        resp = client.get(url, headers={"Authorization": "Bearer wrong"})
        assert resp.status_code == 401 and resp.get_json()["field"] == "Authorization"
    with write_transaction(app.extensions["kiemke"].engine) as conn:
        assert revoke_admin_token(conn, 1)
    assert client.get("/api/v1/units", headers=fleet["auth"]).status_code == 401


def test_health(client):
    assert client.get("/healthz").get_json()["status"] == "ok"
    body = client.get("/readyz").get_json()
    assert body == {"status": "ready", "revision": "0001"} or body["status"] == "ready"


def test_readyz_unmigrated(tmp_path):
    from kiemke.collector.app import create_app

    app = create_app({"database_url": f"sqlite:///{tmp_path / 'empty.db'}",
                      "data_dir": str(tmp_path)})
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    assert resp.get_json()["error"] == "database_not_migrated"
    assert "db upgrade" in resp.get_json()["message"]
    assert app.test_client().get("/healthz").status_code == 200


def test_openapi_document(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    for path in ("/api/v1/enroll", "/api/v1/reports", "/api/v1/units", "/api/v1/machines",
                 "/api/v1/machines/{machine_id}", "/healthz", "/readyz", "/metrics",
                 "/api/v1/openapi.json"):
        assert path in doc["paths"], path
    error = doc["components"]["schemas"]["Error"]
    jsonschema.validate({"error": "missing_field", "field": "identity.hostname",
                         "message": "x"}, error)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"error": "x"}, error)
    assert "400" in doc["paths"]["/api/v1/reports"]["post"]["responses"]


def test_unknown_endpoint_is_json(client):
    resp = client.get("/api/v1/nothing")
    assert resp.status_code == 404 and resp.get_json()["error"] == "not_found"
    resp = client.get("/api/v1/reports")
    assert resp.status_code == 405 and resp.get_json()["field"] == "method"


def test_every_route_is_in_the_openapi_document(app, client):
    # The document is written by hand next to each blueprint: this keeps it complete.
    doc = client.get("/api/v1/openapi.json").get_json()
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):
            continue  # the console's pages are HTML for people (docs/console.md), not API
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method.lower() not in doc["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert missing == []
