"""evaluate_machine / evaluate_unit, exemptions, ratios, gaps and unit facts."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiemke.compliance import (
    count_results,
    evaluate_machine,
    evaluate_unit,
    gap,
    load_rules,
    ratio,
    unit_facts,
)

RULES = Path(__file__).resolve().parent.parent / "rules"


@pytest.fixture(scope="module")
def ruleset():  # noqa: ANN201
    return load_rules([RULES])


GOOD = {"network.networked": True, "antivirus.approved_active": True, "monitoring.running": True,
        "hardware.is_virtual": False, "depreciation.status": "in_service",
        "hardware.meets_min_spec": True, "network.internet_ok": True, "os.supported": True,
        # the workplace rules (rules/workplace.yml): a staff desktop with all three
        "hardware.chassis": "desktop", "signing.state": "valid",
        "email.official_accounts": 1, "meeting.ready": True,
        "agent.clock_offset_seconds": 0}  # rules/clock.yml


NA_VIRTUAL = ("not_applicable", "Không áp dụng cho máy này: quy tắc chỉ xét máy thỏa "
              "«not hardware.is_virtual»; ở đây hardware.is_virtual = có")


def test_all_pass_then_each_result_kind(ruleset) -> None:  # noqa: ANN001
    results = evaluate_machine(ruleset, GOOD)
    assert set(results) == {r.id for r in ruleset.machine_rules}
    assert all(v == ("pass", None) for v in results.values())
    facts = {**GOOD, "monitoring.running": False, "hardware.is_virtual": True}
    del facts["os.supported"]
    results = evaluate_machine(ruleset, facts, exemptions={"security-monitoring-running": "Máy "
                                                           "chủ dự phòng, miễn đến 2025-12-31"})
    assert results["security-monitoring-running"] == ("exempt",
                                                      "Máy chủ dự phòng, miễn đến 2025-12-31")
    # why it is out of scope: the scope and the value that put the machine out of it
    assert results["equipment-min-spec"] == NA_VIRTUAL
    assert results["os-supported"] == ("unknown", "Thiếu dữ liệu để đánh giá: os.supported")
    # a waiver does not pull an out-of-scope rule into the counts
    results = evaluate_machine(ruleset, facts, exemptions={"equipment-min-spec"})
    assert results["equipment-min-spec"] == NA_VIRTUAL
    english = evaluate_machine(ruleset, facts, lang="en")["equipment-min-spec"]
    assert english == ("not_applicable", "not applicable to this machine: the rule covers only "
                       "machines where «not hardware.is_virtual»; here hardware.is_virtual = yes")
    results = evaluate_machine(ruleset, {**GOOD, "monitoring.running": False},
                               exemptions={"security-monitoring-running"}, lang="en")
    assert results["security-monitoring-running"] == ("exempt", "exempt")


def test_reason_template_renders_facts(ruleset) -> None:  # noqa: ANN001
    import datetime as dt

    facts = {**GOOD, "depreciation.status": "overdue_for_replacement",
             "depreciation.fully_depreciated_on": dt.date(2022, 1, 1), "hardware.age_years": 7.2,
             "hardware.meets_min_spec": False, "hardware.below_spec": ["RAM 2.0 GB < 4 GB",
                                                                        "CPU 1 cores < 2"]}
    results = evaluate_machine(ruleset, facts)
    assert results["equipment-not-overdue"] == (
        "fail", "Đã hết khấu hao từ 2022-01-01 và quá hạn thay thế (tuổi 7.2 năm)")
    assert results["equipment-min-spec"] == (
        "fail", "Cấu hình dưới mức tối thiểu: RAM 2.0 GB < 4 GB, CPU 1 cores < 2")


def machine(subnet: str | None, gateway: str | None, *, printers: list[str] | None = None,
            internet: bool | None = True) -> dict:
    f: dict = {"network.networked": True}
    if subnet is not None:
        f["network.subnets"] = [subnet]
    if gateway is not None:
        f["network.gateway"] = gateway
    if printers is not None:
        f["printers.names"] = printers
    if internet is not None:
        f["network.internet_ok"] = internet
    return f


def test_unit_facts_and_unit_rules(ruleset) -> None:  # noqa: ANN001
    office = [machine("192.168.1.0/24", "192.168.1.1", printers=["HP LaserJet - Phòng Kế toán"]),
              machine("192.168.1.0/24", "192.168.1.1", printers=["hp laserjet - phòng kế toán"]),
              machine("10.0.0.0/24", "10.0.0.1", printers=[], internet=False)]
    uf = unit_facts(office, level=1)
    assert uf == {"unit.level": 1, "unit.reporting_machines": 3, "unit.networked_machines": 3,
                  "unit.printers": 1, "unit.printer_machines": 2, "unit.internet_machines": 2,
                  "unit.lan_machines": 2, "unit.lan": True}
    results = evaluate_unit(ruleset, uf)
    assert {k: v[0] for k, v in results.items()} == {
        "unit-has-computers": "pass", "unit-has-printer": "pass",
        "unit-has-internet": "pass", "unit-has-lan": "pass"}
    # same private subnet behind different gateways is not one LAN (two homes)
    apart = unit_facts([machine("192.168.1.0/24", "192.168.1.1"),
                        machine("192.168.1.0/24", "192.168.1.254")], level=0)
    assert apart["unit.lan"] is False
    assert evaluate_unit(ruleset, apart)["unit-has-lan"][0] == "fail"


def test_empty_and_single_machine_units(ruleset) -> None:  # noqa: ANN001
    empty = unit_facts([], level=1)
    assert empty == {"unit.level": 1, "unit.reporting_machines": 0,
                     "unit.networked_machines": 0}
    results = evaluate_unit(ruleset, empty)
    assert results["unit-has-computers"] == ("fail", "Không có máy tính nào báo cáo")
    assert results["unit-has-printer"][0] == "unknown"
    assert results["unit-has-lan"][0] == "unknown"
    single = unit_facts([machine("192.168.5.0/24", "192.168.5.1", printers=[])], level=1)
    assert "unit.lan" not in single
    assert evaluate_unit(ruleset, single)["unit-has-printer"][0] == "fail"
    grassroots = evaluate_unit(ruleset, unit_facts([], level=2))
    assert all(result == "not_applicable" for result, _ in grassroots.values())


def test_ratio_and_gap() -> None:
    counts = count_results(["pass"] * 7 + ["fail"] * 2 + ["unknown"] + ["not_applicable"] * 5
                           + ["exempt"])
    assert counts == {"pass": 7, "fail": 2, "unknown": 1, "not_applicable": 5, "exempt": 1}
    assert ratio(counts) == 0.7
    assert gap(counts, 1.0) == 3
    assert gap(counts, 0.7) == 0   # 0.7 * 10 must not round up to 8
    assert gap(counts, 0.75) == 1  # ceil(7.5) = 8
    assert gap(counts, 0.5) == 0
    assert ratio({"not_applicable": 4}) is None
    assert gap({"not_applicable": 4}, 1.0) == 0


def test_results_are_positional_and_fast_path_matches(ruleset) -> None:  # noqa: ANN001
    facts = {**GOOD, "antivirus.approved_active": False}
    fast = ruleset.machine_results(facts)
    slow = evaluate_machine(ruleset, facts)
    assert fast == tuple(slow[r.id][0] for r in ruleset.machine_rules)
    assert fast.count("fail") == 1
