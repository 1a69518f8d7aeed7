"""Compliance API: roll-up over a three-level tree, stale and unknown in the ratio,
failing machines, a machine's results."""

from __future__ import annotations

from collector_helpers import admin_token
from compliance_helpers import (
    DISTRICT_A,
    DISTRICT_B,
    OFFICE,
    ROOT,
    RULE,
    build_tree,
    make_app,
    populate_fleet,
)


def test_compliance_rolls_up_and_leaves_stale_out(db_url, tmp_path, monkeypatch):
    app = make_app(db_url, tmp_path, monkeypatch)
    try:
        units = build_tree(app)
        fleet = populate_fleet(app, units)
        client = app.test_client()
        auth = {"Authorization": f"Bearer {admin_token(app)}"}

        body = client.get("/api/v1/compliance", headers=auth).get_json()
        rule = next(r for r in body["rules"] if r["rule"] == RULE)
        # The organisation: 3 pass, 2 fail, 1 unknown among active machines; 2 stale apart.
        assert rule["counts"] == {"pass": 3, "fail": 2, "unknown": 1, "not_applicable": 0,
                                  "exempt": 0}
        assert rule["ratio"] == 0.5 and rule["gap"] == 3 and rule["stale"] == 2
        assert [c["unit"]["name"] for c in rule["children"]] == [ROOT]

        body = client.get("/api/v1/compliance", query_string={"unit": units[DISTRICT_A]},
                          headers=auth).get_json()
        rule = next(r for r in body["rules"] if r["rule"] == RULE)
        assert body["unit"]["path"] == f"{ROOT} / {DISTRICT_A}"
        assert (rule["counts"]["pass"], rule["counts"]["fail"], rule["counts"]["unknown"]) \
            == (2, 1, 1)
        assert rule["stale"] == 1
        [child] = rule["children"]
        assert child["unit"]["name"] == OFFICE
        assert (child["counts"]["pass"], child["counts"]["unknown"], child["ratio"],
                child["gap"]) == (1, 1, 0.5, 1)

        body = client.get(f"/api/v1/compliance/rules/{RULE}",
                          query_string={"unit": "LDLD-BG"}, headers=auth).get_json()
        assert body["counts"]["pass"] == 3 and body["children_total"] == 2
        ratios = {c["unit"]["name"]: c["ratio"] for c in body["children"]}
        assert ratios == {DISTRICT_A: 0.5, DISTRICT_B: 0.0}

        failing = client.get(f"/api/v1/compliance/rules/{RULE}/failing",
                             query_string={"unit": units[ROOT]}, headers=auth).get_json()
        assert failing["total"] == 2
        assert sorted(i["hostname"] for i in failing["items"]) == ["PC-LUCNAM-01",
                                                                   "PC-YENDUNG-02"]
        assert all("2025-10-14" in i["reason"] and i["since"].endswith("Z")
                   for i in failing["items"])
        page = client.get(f"/api/v1/compliance/rules/{RULE}/failing",
                          query_string={"limit": 1, "offset": 1, "include_stale": "true"},
                          headers=auth).get_json()
        assert page["total"] == 3 and len(page["items"]) == 1
        unknown = client.get(f"/api/v1/compliance/rules/{RULE}/failing",
                             query_string={"result": "unknown"}, headers=auth).get_json()
        assert [i["hostname"] for i in unknown["items"]] == ["PC-TANAN-02"]
        assert "os.supported" in unknown["items"][0]["reason"]

        results = client.get(f"/api/v1/machines/{fleet['PC-YENDUNG-02']}/results",
                             headers=auth).get_json()
        by_rule = {r["rule"]: r for r in results["results"]}
        assert by_rule[RULE]["result"] == "fail" and by_rule[RULE]["severity"] == "high"
        assert results["facts"]["os.supported"] is False
        # The machine's own page carries the same results next to its report.
        detail = client.get(f"/api/v1/machines/{fleet['PC-YENDUNG-02']}",
                            headers=auth).get_json()
        assert {r["rule"]: r["result"] for r in detail["results"]} == \
            {r["rule"]: r["result"] for r in results["results"]}
        assert detail["report"]["identity"]["hostname"] == "PC-YENDUNG-02"
    finally:
        app.extensions["kiemke"].engine.dispose()


def test_compliance_api_errors_name_the_field(app, monkeypatch):
    client = app.test_client()
    auth = {"Authorization": f"Bearer {admin_token(app)}"}
    resp = client.get("/api/v1/compliance", query_string={"unit": "Không có"}, headers=auth)
    assert resp.status_code == 404 and resp.get_json()["field"] == "unit"
    resp = client.get("/api/v1/compliance/rules/no-such-rule", headers=auth)
    assert resp.status_code == 404 and resp.get_json()["field"] == "rule_id"
    resp = client.get(f"/api/v1/compliance/rules/{RULE}/failing",
                      query_string={"limit": "0"}, headers=auth)
    assert resp.status_code == 400 and resp.get_json()["field"] == "limit"
    resp = client.get(f"/api/v1/compliance/rules/{RULE}/failing",
                      query_string={"result": "bad"}, headers=auth)
    assert resp.status_code == 400 and resp.get_json()["field"] == "result"
    assert client.get("/api/v1/compliance").status_code == 401


def test_openapi_documents_compliance_endpoints(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    for path, method in (("/api/v1/compliance", "get"),
                         ("/api/v1/compliance/rules/{rule_id}/failing", "get"),
                         ("/api/v1/waivers", "post"), ("/api/v1/waivers/{waiver_id}", "delete"),
                         ("/api/v1/units", "post"), ("/api/v1/units/{unit_id}", "patch"),
                         ("/api/v1/machines/{machine_id}", "patch"),
                         ("/api/v1/machines/{machine_id}", "get")):
        assert method in doc["paths"][path], (path, method)
    assert "409" in doc["paths"]["/api/v1/units/{unit_id}"]["patch"]["responses"]
    assert "Waiver" in doc["components"]["schemas"]
