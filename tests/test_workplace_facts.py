"""Collector side of the workplace targets (issue 13): report sections -> facts -> rules,
and the new rules' ratios in /metrics of a real collector process."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import requests
from compliance_helpers import metric_samples
from conftest import start_collector, stop_collector
from reports import WORKPLACE_PASS, make_report, new_machine_id
from scrape_helpers import metrics_text

from kiemke.compliance import facts_from_report, load_config, load_rules
from kiemke.compliance.evaluate import evaluate_machine

RULES = Path(__file__).resolve().parent.parent / "rules"
NOW = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.timezone.utc)
CONFIG = load_config(RULES)
RULESET = load_rules([RULES])


def facts(**sections: Any) -> dict[str, Any]:
    report = make_report(**copy.deepcopy(sections))
    return facts_from_report(report, now=NOW, asset=None, config=CONFIG)


def results(**sections: Any) -> dict[str, str]:
    evaluated = evaluate_machine(RULESET, facts(**sections))
    return {rule: evaluated[rule][0] for rule in ("signing-certificate-valid",
                                                  "email-official-mailbox", "meeting-ready")}


def cert(**extra: Any) -> dict[str, Any]:
    base = {"store": "user", "ca": "vnpt-ca", "ca_kind": "public",
            "issuer": "VNPT Certification Authority", "issuer_org": "VNPT Group",
            "key_usage": ["digital_signature", "non_repudiation"], "can_sign": True,
            "not_before": "2025-06-01", "not_after": "2027-06-01", "state": "valid",
            "hardware_token": True, "subject_hash": "0123456789abcdef"}
    return {**base, **extra}


def test_a_prepared_office_pc_passes_all_three() -> None:
    f = facts(**WORKPLACE_PASS)
    assert f["signing.state"] == "valid" and f["signing.certificates"] == 1
    assert f["signing.hardware_token"] is True
    assert f["signing.authorities"] == ["VNPT Certification Authority"]
    assert f["email.official_accounts"] == 1 and f["email.domains"] == ["bacgiang.gov.vn",
                                                                       "gmail.com"]
    assert f["meeting.ready"] is True and f["meeting.software"] == ["Zoom"]
    assert results(**WORKPLACE_PASS) == {"signing-certificate-valid": "pass",
                                         "email-official-mailbox": "pass",
                                         "meeting-ready": "pass"}


@pytest.mark.parametrize(("certificate", "state", "days"), [
    (cert(not_after="2026-12-20"), "expiring", 18),
    (cert(not_after="2026-11-01"), "expired", -31),
    (cert(ca="viettel-ca"), "valid", 181),
    (cert(ca=None, ca_kind=None, issuer="Let's Encrypt R3"), "none", None),
    (cert(can_sign=False, key_usage=["key_encipherment"]), "none", None),
    (cert(not_before="2027-01-01"), "none", None),  # not yet valid: nothing valid today
])
def test_signing_state(certificate: dict[str, Any], state: str, days: int | None) -> None:
    f = facts(signing={"certificates": [certificate], "middleware": []})
    assert f["signing.state"] == state
    assert f.get("signing.days_left") == days


def test_the_best_certificate_decides() -> None:
    f = facts(signing={"certificates": [cert(not_after="2026-11-01"),
                                        cert(not_after="2026-12-10", hardware_token=False),
                                        cert(not_after="2028-01-01", hardware_token=True)]})
    assert (f["signing.state"], f["signing.days_left"], f["signing.certificates"]) == \
        ("valid", 395, 2)
    assert f["signing.hardware_token"] is True


def test_unreadable_stores_are_unknown_not_none() -> None:
    error = {"collector": "signing", "kind": "timeout", "message": "timed out"}
    f = facts(signing={"certificates": [], "middleware": [], "errors": [error]})
    assert "signing.state" not in f and "signing.certificates" not in f
    assert results(signing={"certificates": [], "errors": [error]})[
        "signing-certificate-valid"] == "unknown"
    # A valid certificate read before the error is positive evidence: it still counts.
    f = facts(signing={"certificates": [cert()], "errors": [error]})
    assert f["signing.state"] == "valid"


def test_an_agent_without_the_sections_gives_unknown() -> None:
    assert results() == {"signing-certificate-valid": "unknown",
                         "email-official-mailbox": "unknown", "meeting-ready": "unknown"}


def test_only_approved_authorities_count(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(RULES, tmp_path / "rules")
    approved = tmp_path / "rules" / "approved.yml"
    approved.write_text(approved.read_text("utf-8").replace(
        'authorities: ["government", "public"]', 'authorities: ["gov-ca"]'), "utf-8")
    config = load_config(tmp_path / "rules")
    f = facts_from_report(make_report(signing={"certificates": [cert()]}), now=NOW,
                          asset=None, config=config)
    assert f["signing.state"] == "none"
    f = facts_from_report(make_report(signing={"certificates": [cert(ca="gov-ca",
                                                                     ca_kind="government")]}),
                          now=NOW, asset=None, config=config)
    assert f["signing.state"] == "valid"


@pytest.mark.parametrize(("domain", "unit_codes", "official"), [
    ("bacgiang.gov.vn", (), 1),
    ("BACGIANG.GOV.VN", (), 1),
    ("gov.vn.example.com", (), 0),
    ("congdoanbacgiang.vn", (), 0),
    ("congdoanbacgiang.vn", ("LDLD-BG",), 1),       # per unit, configured for LDLD-BG
    ("congdoanbacgiang.vn", ("LDLD-BG-LN", "LDLD-BG"), 1),  # inherited by the subtree
    ("congdoanbacgiang.vn", ("LDLD-HY",), 0),
])
def test_official_domains_global_and_per_unit(tmp_path: Path, domain: str,
                                              unit_codes: tuple[str, ...],
                                              official: int) -> None:
    import shutil

    shutil.copytree(RULES, tmp_path / "rules")
    approved = tmp_path / "rules" / "approved.yml"
    approved.write_text(approved.read_text("utf-8").replace(
        "  units: {}", '  units:\n    LDLD-BG: ["congdoanbacgiang.vn"]'), "utf-8")
    config = load_config(tmp_path / "rules")
    report = make_report(email={"clients": [{"client": "outlook", "profiles": 1,
                                             "accounts": 1,
                                             "domains": [{"domain": domain, "accounts": 1}]}]})
    f = facts_from_report(report, now=NOW, asset=None, config=config, unit_codes=unit_codes)
    assert f["email.official_accounts"] == official


def test_meeting_needs_all_three_and_unknown_stays_unknown() -> None:
    ready = WORKPLACE_PASS["meeting"]
    assert facts(meeting={**ready, "cameras_enabled": 0})["meeting.ready"] is False
    assert facts(meeting={**ready, "software": []})["meeting.ready"] is False
    error = {"collector": "meeting", "kind": "failed", "message": "PnP query failed"}
    f = facts(meeting={"cameras": 0, "cameras_enabled": 0, "microphones": 0,
                       "microphones_enabled": 0, "software": [], "errors": [error]})
    assert "meeting.ready" not in f and "meeting.camera" not in f


# ---------------------------------------------------------------- real collector process

def test_new_rules_ratios_in_metrics_of_a_real_collector(sqlite_url: str,
                                                         tmp_path: Path) -> None:
    server = start_collector(sqlite_url, tmp_path / "data")
    try:
        unit = server.create_unit("Liên đoàn Lao động tỉnh Bắc Giang", code="LDLD-BG")
        token = server.create_token(unit, max_uses=10)
        without = {"signing": {"certificates": [], "middleware": []},
                   "email": {"clients": []},
                   "meeting": {"cameras": 0, "cameras_enabled": 0, "microphones": 1,
                               "microphones_enabled": 1, "software": ["Zoom"]}}
        for hostname, sections in (("PC-VANTHU-01", WORKPLACE_PASS),
                                   ("PC-VANTHU-02", WORKPLACE_PASS),
                                   ("PC-KETOAN-03", without)):
            machine_id = new_machine_id()
            enrol = requests.post(f"{server.url}/api/v1/enroll", timeout=10, json={
                "token": token, "machine_id": machine_id, "hostname": hostname})
            assert enrol.status_code == 201, enrol.text
            body = enrol.json()
            report = make_report(machine_id, hostname=hostname, **copy.deepcopy(sections))
            resp = requests.post(f"{server.url}/api/v1/reports", json=report, timeout=10,
                                 headers={"Authorization":
                                          f"Bearer {body['agent_id']}.{body['secret']}"})
            assert resp.status_code in (200, 202), resp.text
        text = metrics_text(server.url, timeout=10)
        ratios = {lab["rule"]: value for lab, value in
                  metric_samples(text, "kiemke_rule_compliance_ratio")
                  if lab["rule"] in ("signing-certificate-valid", "email-official-mailbox",
                                     "meeting-ready")}
        assert ratios == {"signing-certificate-valid": pytest.approx(2 / 3),
                          "email-official-mailbox": pytest.approx(2 / 3),
                          "meeting-ready": pytest.approx(2 / 3)}
        targets = {lab["rule"]: value for lab, value in
                   metric_samples(text, "kiemke_rule_target_ratio")}
        assert targets["meeting-ready"] == 0.6 and targets["signing-certificate-valid"] == 1.0
    finally:
        stop_collector(server)


def test_per_unit_domains_apply_to_the_units_subtree_through_the_collector(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from collector_helpers import admin_token
    from compliance_helpers import make_app, recent, report_at

    from kiemke.collector.db.engine import write_transaction
    from kiemke.collector.units import add_unit

    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    approved = rules / "approved.yml"
    approved.write_text(approved.read_text("utf-8").replace(
        "  units: {}", '  units:\n    LDLD-BG: ["congdoanbacgiang.vn"]'), "utf-8")
    app = make_app(sqlite_url, tmp_path, monkeypatch, rules_dir=str(rules))
    try:
        engine = app.extensions["kiemke"].engine
        with write_transaction(engine) as conn:
            root = add_unit(conn, "Liên đoàn Lao động tỉnh Bắc Giang", code="LDLD-BG")
            district = add_unit(conn, "LĐLĐ huyện Lục Nam", parent=root.id, code="LDLD-LN")
            other = add_unit(conn, "LĐLĐ tỉnh Hưng Yên", code="LDLD-HY")
        mailbox = {"email": {"clients": [{"client": "thunderbird", "profiles": 1, "accounts": 1,
                                          "domains": [{"domain": "congdoanbacgiang.vn",
                                                       "accounts": 1}]}]}}
        inside = report_at(app, district.id, "PC-LN-01", recent(), **mailbox)
        outside = report_at(app, other.id, "PC-HY-01", recent(), **mailbox)
        headers = {"Authorization": f"Bearer {admin_token(app)}"}
        got = {}
        for m in (inside, outside):
            resp = app.test_client().get(f"/api/v1/machines/{m}/results", headers=headers)
            assert resp.status_code == 200, resp.get_json()
            body = resp.get_json()
            got[m] = {r["rule"]: r["result"] for r in body.get("results", body)}
        assert got[inside]["email-official-mailbox"] == "pass"
        assert got[outside]["email-official-mailbox"] == "fail"
    finally:
        app.extensions["kiemke"].engine.dispose()
