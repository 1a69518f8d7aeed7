"""Report -> facts on sample reports (schema-valid, built with tests/reports.py)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import jsonschema
import pytest
from reports import make_report

from kiemke.compliance import (
    evaluate_machine,
    facts_from_json,
    facts_from_report,
    facts_to_json,
    load_config,
    load_rules,
)
from kiemke.compliance.facts import FACTS
from kiemke.compliance.values import coerce
from kiemke.schema import load_schema

RULES = Path(__file__).resolve().parent.parent / "rules"
CONFIG = load_config(RULES)
NOW = dt.datetime(2024, 5, 6, 9, 0, tzinfo=dt.timezone.utc)
KASPERSKY = {"name": "Kaspersky Endpoint Security for Windows", "vendor": "AO Kaspersky Lab",
             "version": "12.3.0.493", "enabled": True, "state": "on", "up_to_date": True,
             "signatures_age_days": 0.3, "licensed": True, "licence_expiry": "2025-01-15",
             "product_state": 266240, "detected_by": "securitycenter2"}
DEFENDER_PASSIVE = {"name": "Windows Defender", "vendor": "Microsoft", "enabled": False,
                    "state": "passive", "up_to_date": True, "licensed": True,
                    "product_state": 393472, "detected_by": "securitycenter2"}


def facts(report: dict, asset: dict | None = None) -> dict:
    jsonschema.validate(report, load_schema())
    result = facts_from_report(report, now=NOW, asset=asset, config=CONFIG)
    for name, value in result.items():
        assert name in FACTS, name
        assert coerce(value, FACTS[name].type) == value, name  # raises on a wrong type
    return result


def test_windows_with_kaspersky_active_and_defender_passive() -> None:
    f = facts(make_report(hostname="MAY-TINH-VĂN-PHÒNG",
                          antivirus={"products": [KASPERSKY, DEFENDER_PASSIVE]}))
    assert f["identity.hostname"] == "MAY-TINH-VĂN-PHÒNG"
    assert f["antivirus.products"] == 2
    assert f["antivirus.approved"] == ["Kaspersky Endpoint Security for Windows",
                                       "Windows Defender"]
    assert f["antivirus.approved_active"] is True
    assert f["antivirus.enabled"] is True and f["antivirus.up_to_date"] is True
    assert f["antivirus.licensed"] is True
    assert f["antivirus.licence_days_left"] == 254
    assert f["antivirus.signature_age_days"] == 0.3
    assert f["antivirus.query_failed"] is False
    assert f["monitoring.running"] is True and f["monitoring.agents"] == ["Wazuh Agent"]
    assert f["os.family"] == "windows" and f["os.supported"] is False
    assert f["os.support_days_left"] == 526
    assert f["hardware.memory_gb"] == 8.0 and f["hardware.cpu_cores"] == 6
    assert f["hardware.disk_total_gb"] == 256.1 and f["hardware.has_ssd"] is True
    assert f["hardware.meets_min_spec"] is True and f["hardware.below_spec"] == []
    assert f["hardware.age_years"] == 4.6 and f["hardware.age_estimated"] is True
    assert f["depreciation.status"] == "in_service"
    assert f["depreciation.fully_depreciated_on"] == dt.date(2024, 9, 1)
    assert f["network.networked"] is True and f["network.has_gateway"] is True
    assert f["network.lan"] is True and f["network.subnets"] == ["10.20.1.0/24"]
    assert f["network.internet_ok"] is True and f["network.dns_ok"] is True
    assert f["printers.count"] == 2 and f["printers.physical_count"] == 1
    assert f["printers.names"] == ["HP LaserJet Pro M404dn - Phòng Kế toán"]
    results = evaluate_machine(load_rules([RULES]), f)
    assert results["av-approved-active"] == ("pass", None)
    assert results["os-supported"][0] == "fail"
    assert results["os-supported"][1] == "Microsoft Windows 10 Pro đã hết hỗ trợ từ 2025-10-14"


def test_linux_clamav_with_old_signatures_fails() -> None:
    clamav = {"name": "ClamAV", "vendor": "Cisco", "version": "0.103.11", "enabled": True,
              "state": "on", "up_to_date": None, "signatures_version": "27001",
              "signatures_date": "2024-03-01T08:00:00Z", "signatures_age_days": None,
              "licensed": None, "detected_by": "cli"}
    report = make_report(
        identity={"platform": "linux"},
        os={"family": "linux", "name": "Ubuntu 22.04.4 LTS", "version": "22.04", "build": None,
            "edition": None, "kernel": "5.15.0-105-generic", "supported": True,
            "end_of_support": "2027-04-30"},
        antivirus={"products": [clamav]})
    f = facts(report)
    assert f["antivirus.signature_age_days"] == 66
    assert f["antivirus.up_to_date"] is False
    assert f["antivirus.licensed"] is True  # free software: licence is not the problem
    assert f["antivirus.approved_active"] is False
    rs = load_rules([RULES])
    result, reason = evaluate_machine(rs, f)["av-approved-active"]
    assert result == "fail"
    assert reason == ("Không có phần mềm diệt virus có bản quyền đang hoạt động và cập nhật "
                      "(tìm thấy: ClamAV; bật: có; cập nhật: không; bản quyền: có)")
    en = evaluate_machine(rs, f, lang="en")["av-approved-active"][1]
    assert "up to date: no" in en


def test_signatures_older_than_the_maximum_fail_although_the_agent_says_up_to_date() -> None:
    """The rule's max_signature_age_days (7) decides when the age is known: an agent
    reporting up_to_date with 30-day-old signatures does not make the machine pass; a
    product saying it is out of date stays so even with young signatures."""
    old = {**KASPERSKY, "up_to_date": True, "signatures_age_days": 30}
    f = facts(make_report(antivirus={"products": [old, DEFENDER_PASSIVE]}))
    assert f["antivirus.signature_age_days"] == 30
    assert f["antivirus.up_to_date"] is False and f["antivirus.approved_active"] is False
    result, reason = evaluate_machine(load_rules([RULES]), f)["av-approved-active"]
    assert result == "fail" and "cập nhật: không" in reason
    stale_flag = {**KASPERSKY, "up_to_date": False, "signatures_age_days": 0.3}
    f = facts(make_report(antivirus={"products": [stale_flag]}))
    assert f["antivirus.up_to_date"] is False
    fresh = {**KASPERSKY, "up_to_date": True, "signatures_age_days": 6.5}
    assert facts(make_report(antivirus={"products": [fresh]}))["antivirus.up_to_date"] is True


def test_antivirus_errors_give_unknown_not_fail() -> None:
    report = make_report(antivirus={"products": [], "errors": [
        {"collector": "antivirus", "kind": "timeout",
         "message": "Get-CimInstance -Namespace root/SecurityCenter2 timed out after 10 s"}]})
    f = facts(report)
    assert f["antivirus.query_failed"] is True
    for name in ("antivirus.approved_active", "antivirus.enabled", "antivirus.products",
                 "antivirus.licensed", "antivirus.names"):
        assert name not in f
    result, reason = evaluate_machine(load_rules([RULES]), f)["av-approved-active"]
    assert result == "unknown"
    assert reason == "Thiếu dữ liệu để đánh giá: antivirus.approved_active"


def test_an_error_about_one_products_detail_keeps_the_list_complete() -> None:
    # ClamAV installed, daemon stopped, no signature database: a finding, not a failed
    # query. The agent names the product in its error, so the rule fails (not unknown).
    clamav = {"name": "ClamAV", "vendor": "Cisco Talos", "version": "1.4.6", "enabled": False,
              "state": "off", "up_to_date": False, "licensed": True, "detected_by": "cli"}
    missing_db = {"collector": "antivirus", "kind": "not_found", "product": "ClamAV",
                  "message": "ClamAV has no signature database in /var/lib/clamav"}
    f = facts(make_report(antivirus={"products": [clamav], "errors": [missing_db]}))
    assert f["antivirus.query_failed"] is False and f["antivirus.products"] == 1
    assert f["antivirus.enabled"] is False and f["antivirus.approved_active"] is False
    assert evaluate_machine(load_rules([RULES]), f)["av-approved-active"][0] == "fail"
    # The same error without the product name may hide a product: unknown, not fail.
    del missing_db["product"]
    f = facts(make_report(antivirus={"products": [clamav], "errors": [missing_db]}))
    assert f["antivirus.query_failed"] is True and "antivirus.approved_active" not in f
    assert evaluate_machine(load_rules([RULES]), f)["av-approved-active"][0] == "unknown"


def test_positive_evidence_survives_a_partial_error() -> None:
    report = make_report(antivirus={"products": [KASPERSKY], "errors": [
        {"collector": "antivirus", "kind": "permission", "message": "registry access denied"}]})
    f = facts(report)
    assert f["antivirus.approved_active"] is True and f["antivirus.query_failed"] is True
    assert "antivirus.products" not in f  # the count may be incomplete


@pytest.mark.parametrize(("product", "policy", "expected"), [
    ({**KASPERSKY, "licensed": None, "licence_expiry": None}, "unknown", None),
    ({**KASPERSKY, "licensed": None, "licence_expiry": None}, "accept", True),
    ({**KASPERSKY, "licence_expiry": "2024-05-05"}, "unknown", False),
    ({**KASPERSKY, "state": "expired", "enabled": True}, "unknown", False),
    ({"name": "Avast Free Antivirus", "enabled": True, "state": "on", "up_to_date": True,
      "detected_by": "securitycenter2"}, "unknown", False),
])
def test_licence_policy(product: dict, policy: str, expected: bool | None) -> None:
    from dataclasses import replace

    report = make_report(antivirus={"products": [product]})
    f = facts_from_report(report, now=NOW, asset=None,
                          config=replace(CONFIG, unknown_licence=policy))
    assert f.get("antivirus.approved_active") is expected


def test_asset_register_and_below_spec_and_unknown_sections() -> None:
    report = make_report(hardware={"memory_bytes": 2 * 2**30, "cpu": {"cores_physical": 2},
                                   "disks": [{"name": "sda", "size_bytes": 500_107_862_016,
                                              "type": "hdd"}]})
    del report["printers"]
    del report["security_monitoring"]
    report["network"]["checks"]["internet"] = {"ok": None}
    f = facts(report, asset={"purchase_date": "2019-03-15", "cost": 15_000_000})
    assert f["hardware.meets_min_spec"] is False
    assert f["hardware.below_spec"] == ["RAM 2.0 GB < 4 GB"]
    assert f["hardware.has_ssd"] is False
    assert f["asset.registered"] is True and f["asset.purchase_date"] == dt.date(2019, 3, 15)
    assert f["hardware.age_years"] == 5.1 and f["hardware.age_estimated"] is False
    assert f["depreciation.status"] == "fully_depreciated"
    assert f["depreciation.book_value"] == 0
    assert f["depreciation.fully_depreciated_on"] == dt.date(2024, 3, 1)
    for missing in ("printers.count", "printers.names", "monitoring.running",
                    "network.internet_ok"):
        assert missing not in f
    stored = facts_to_json(f)
    assert stored["asset.purchase_date"] == "2019-03-15"
    assert facts_from_json(stored) == f


def test_network_without_gateway_and_with_errors() -> None:
    report = make_report(network={"default_gateway": None, "interfaces": [
        {"name": "lo", "up": True, "kind": "loopback",
         "addresses": [{"family": "ipv4", "address": "127.0.0.1", "prefixlen": 8}]}],
        "checks": {}})
    f = facts(report)
    assert f["network.has_gateway"] is False and f["network.networked"] is False
    assert f["network.lan"] is False
    results = evaluate_machine(load_rules([RULES]), f)
    assert results["av-approved-active"] == (
        "not_applicable", "Không áp dụng cho máy này: quy tắc chỉ xét máy thỏa "
        "«network.networked»; ở đây network.networked = không")
    broken = make_report(network={"default_gateway": None, "interfaces": [], "checks": {},
                                  "errors": [{"collector": "network", "kind": "failed",
                                              "message": "ip route failed"}]})
    g = facts(broken)
    assert "network.networked" not in g and "network.has_gateway" not in g
    assert evaluate_machine(load_rules([RULES]), g)["av-approved-active"][0] == "unknown"
