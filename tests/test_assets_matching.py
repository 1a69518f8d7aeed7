"""Register rows to machines: serial, then asset tag, then hostname; ambiguity; ingest;
all-or-nothing import, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from assets_helpers import (
    asset_app_fixture,  # noqa: F401 - provides the asset_app fixture
    depreciation_rows,
    do_import,
    machine_facts,
    machine_report,
    matches,
    register_rows,
    report_machine,
    write_csv,
)
from collector_helpers import add_units, enroll_agent, enrollment_token
from reports import UNIT_NAME

from kiemke.collector.assets.csv_import import RegisterError
from kiemke.collector.assets.matching import AssetKeys, MachineKeys, match_all
from kiemke.collector.assets.store import _remember, lookup


def test_match_order_serial_beats_tag_beats_hostname():
    m = [MachineKeys("m1", 1, "PC-01", "SN1", "tag-1", "pc-01"),
         MachineKeys("m2", 1, "PC-02", "SN2", "tag-2", "pc-02"),
         MachineKeys("m3", 1, "PC-03", None, "tag-3", "pc-03")]
    a = [AssetKeys(10, 2, None, None, "pc-01"),     # hostname of m1, but m1 is taken by serial
         AssetKeys(11, 3, "SN1", "tag-2", "pc-02"),  # serial of m1 wins over tag/host of m2
         AssetKeys(12, 4, None, "tag-2", "pc-03"),   # tag of m2 wins over hostname of m3
         AssetKeys(13, 5, "SN9", None, "pc-03")]     # unknown serial, then hostname of m3
    result = match_all(a, m)
    assert result.matched == {11: ("m1", "serial"), 12: ("m2", "asset_tag"),
                              13: ("m3", "hostname")}
    assert result.reasons == {10: "no reporting machine has this serial, asset tag or hostname"}


def test_ambiguous_hostnames_need_a_unit_or_a_serial():
    m = [MachineKeys("a" * 32, 2, "PC-KETOAN-01", None, None, "pc-ketoan-01"),
         MachineKeys("b" * 32, 3, "PC-KETOAN-01", None, None, "pc-ketoan-01")]
    result = match_all([AssetKeys(1, 2, None, None, "pc-ketoan-01")], m)
    assert result.matched == {}
    assert result.reasons[1] == ("hostname matches 2 machines (PC-KETOAN-01 (aaaaaaaa), "
                                 "PC-KETOAN-01 (bbbbbbbb)); give the serial, or the unit to "
                                 "tell them apart")
    result = match_all([AssetKeys(1, 2, None, None, "pc-ketoan-01", unit_id=1)], m,
                       subtree=lambda uid: {1, 3})
    assert result.matched == {1: ("b" * 32, "hostname")}
    # Two register rows naming the same machine: neither is trusted.
    result = match_all([AssetKeys(1, 2, None, None, "pc-x"), AssetKeys(2, 7, None, None, "pc-x")],
                       [MachineKeys("c" * 32, 1, "PC-X", None, None, "pc-x")])
    assert result.matched == {}
    assert result.reasons == {i: "lines 2, 7 all match the same machine by hostname; keep one "
                                 "row per machine or add serials" for i in (1, 2)}


def test_import_matches_and_reports_what_did_not_match(asset_app, tmp_path):
    app, client = asset_app, asset_app.test_client()
    province, district = add_units(app, UNIT_NAME, "LĐLĐ huyện Yên Thế")
    office = add_units(app, "Văn phòng")[0]
    by_serial = report_machine(app, client, district, "PC-TAIVU-01", serial="7XK2P53")
    by_tag = report_machine(app, client, district, "PC-TAIVU-02", serial="To be filled by O.E.M.",
                            asset_tag="LĐLĐ-MT-2019-014")
    twin_a = report_machine(app, client, district, "PC-KETOAN-01", serial=None)
    twin_b = report_machine(app, client, office, "PC-KETOAN-01", serial=None)
    no_entry = report_machine(app, client, province, "PC-GIAMDOC", serial="ZZZ999")
    path = write_csv(tmp_path / "assets.csv", [
        ",7xk2p53,,desktop_computer,2020-03-15,15.000.000,,Máy tính phòng Tài vụ",
        "lđlđ-mt-2019-014,,,desktop_computer,2021-01-10,14000000,,",
        ",,pc-ketoan-01,laptop_computer,2022-05-01,20000000,,Không rõ máy nào",
        ",,PC-KETOAN-01.ldld.local,desktop_computer,2022-05-01,20000000,Văn phòng,Văn phòng",
        "TS-99,,PC-KHONG-CO,desktop_computer,2019-01-01,9000000,,Máy đã thanh lý",
    ])
    summary = do_import(app, path)
    assert summary.matched == {"serial": 1, "asset_tag": 1, "hostname": 1}
    assert [(u["line"], u["reason"]) for u in summary.unmatched] == [
        (4, "hostname matches 2 machines (PC-KETOAN-01 (" + min(twin_a, twin_b)[:8] +
         "), PC-KETOAN-01 (" + max(twin_a, twin_b)[:8] + ")); give the serial, or the unit to "
         "tell them apart"),
        (6, "no reporting machine has this serial, asset tag or hostname")]
    assert summary.machines_without_entry == 2  # twin_a and no_entry
    assert matches(app) == {2: (by_serial, "serial"), 3: (by_tag, "asset_tag"), 4: (None, None),
                            5: (twin_b, "hostname"), 6: (None, None)}
    rows = depreciation_rows(app)
    assert (rows[by_serial].estimated, rows[by_serial].cost,
            str(rows[by_serial].start_date)) == (False, 15_000_000, "2020-03-15")
    assert rows[no_entry].estimated is True and rows[no_entry].asset_id is None
    # The rules see the register at once (facts recomputed for the matched machines).
    facts = machine_facts(app, by_serial)
    assert (facts["asset.registered"], facts["asset.purchase_date"], facts["asset.cost"],
            facts["depreciation.estimated"]) == (True, "2020-03-15", 15_000_000, False)
    assert "asset.registered" not in machine_facts(app, no_entry)


def test_bad_file_imports_nothing_and_keeps_the_register(asset_app, tmp_path):
    app, client = asset_app, asset_app.test_client()
    unit = add_units(app, UNIT_NAME)[0]
    mid = report_machine(app, client, unit, "PC-TAIVU-01", serial="7XK2P53")
    do_import(app, write_csv(tmp_path / "good.csv", [
        ",7XK2P53,,desktop_computer,2020-03-15,15000000,,Máy tính Tài vụ"]))
    before, deps = register_rows(app), depreciation_rows(app)
    bad = write_csv(tmp_path / "bad.csv", [
        ";7XK2P53;;desktop_computer;2021-03-15;15.000.000;;sửa ngày mua",
        ";NEW001;;desktop_computer;31/02/2022;15.000.000;;",
    ], delimiter=";", bom=True)
    with pytest.raises(RegisterError) as exc:
        do_import(app, bad)
    assert [str(p) for p in exc.value.problems] == [
        f"{bad} line 3, purchase_date: '31/02/2022' is not a date. Use YYYY-MM-DD, e.g. "
        "2022-02-28 (or DD/MM/YYYY, e.g. 28/02/2022)."]
    assert register_rows(app) == before
    assert depreciation_rows(app) == deps
    assert str(depreciation_rows(app)[mid].start_date) == "2020-03-15"


def test_dry_run_changes_nothing_and_reimport_replaces(asset_app, tmp_path):
    app, client = asset_app, asset_app.test_client()
    unit = add_units(app, UNIT_NAME)[0]
    mid = report_machine(app, client, unit, "PC-TAIVU-01", serial="7XK2P53")
    path = write_csv(tmp_path / "a.csv", [",7XK2P53,,desktop_computer,2020-03-15,1,,"])
    summary = do_import(app, path, dry_run=True)
    assert summary.matched_total == 1
    assert register_rows(app) == []
    assert depreciation_rows(app)[mid].estimated is True
    do_import(app, path)
    assert matches(app) == {2: (mid, "serial")}
    summary = do_import(app, write_csv(tmp_path / "b.csv", ["TS-2,,PC-OTHER,desktop_computer,"
                                                            "2020-03-15,1,,"]))
    assert summary.replaced == 1 and summary.matched_total == 0
    assert matches(app) == {2: (None, None)}
    assert depreciation_rows(app)[mid].estimated is True
    assert machine_facts(app, mid).get("asset.registered") is None


def test_machine_reporting_after_the_import_is_matched_on_ingest(asset_app, tmp_path):
    app, client = asset_app, asset_app.test_client()
    province, district = add_units(app, UNIT_NAME, "LĐLĐ huyện Yên Thế")
    do_import(app, write_csv(tmp_path / "a.csv", [
        ",7XK2P53,,desktop_computer,2020-03-15,15000000,,",
        ",,PC-VANTHU,laptop_computer,2021-06-01,20000000,LĐLĐ huyện Yên Thế,",
        ",,PC-KETOAN-01,desktop_computer,2022-01-01,1,,"]))
    first = report_machine(app, client, province, "PC-TAIVU-01", serial="7xk2p53 ")
    # Hostname match limited to the row's unit: the province machine is not it.
    outside = report_machine(app, client, province, "PC-VANTHU", serial="AAA111")
    inside = report_machine(app, client, district, "pc-vanthu.ldld.local", serial="BBB222")
    twin_a = report_machine(app, client, province, "PC-KETOAN-01", serial="CCC333")
    assert matches(app)[2] == (first, "serial")
    assert matches(app)[3] == (inside, "hostname")
    assert matches(app)[4] == (twin_a, "hostname")  # the only one of that name so far
    # A second machine with the same name does not steal the entry.
    report_machine(app, client, province, "PC-KETOAN-01", serial="DDD444")
    assert matches(app)[4] == (twin_a, "hostname")
    facts = machine_facts(app, first)
    assert (facts["asset.registered"], facts["asset.cost"]) == (True, 15_000_000)
    assert "asset.registered" not in machine_facts(app, outside)
    assert depreciation_rows(app)[inside].category == "laptop_computer"


def test_ambiguous_hostname_on_ingest_is_not_matched(asset_app, tmp_path):
    app, client = asset_app, asset_app.test_client()
    unit = add_units(app, UNIT_NAME)[0]
    report_machine(app, client, unit, "PC-KETOAN-01", serial="CCC333")
    report_machine(app, client, unit, "PC-KETOAN-01", serial="DDD444")
    do_import(app, write_csv(tmp_path / "a.csv", [",,PC-KETOAN-01,desktop_computer,"
                                                  "2022-01-01,1,,"]))
    assert matches(app) == {2: (None, None)}
    report_machine(app, client, unit, "PC-KETOAN-01", serial="EEE555")
    assert matches(app) == {2: (None, None)}


def test_a_matched_machines_next_report_keeps_its_register_facts(asset_app, tmp_path):
    # The evaluate step takes the entry the assets step found in the same transaction
    # (assets.store.lookup): the facts are those of a fresh read.
    app, client = asset_app, asset_app.test_client()
    unit = add_units(app, UNIT_NAME)[0]
    do_import(app, write_csv(tmp_path / "a.csv", [",7XK2P53,,desktop_computer,2020-03-15,"
                                                  "15000000,,"]))
    mid = report_machine(app, client, unit, "PC-TAIVU-01", serial="7XK2P53")
    first = machine_facts(app, mid)
    agent = app.extensions["kiemke"]
    with agent.engine.connect() as conn:
        fresh = lookup(conn, mid)
    assert fresh is not None and fresh["matched_by"] == "serial"
    headers = enroll_agent(client, enrollment_token(app, unit), mid, "PC-TAIVU-01")
    resp = client.post("/api/v1/reports", json=machine_report(mid, "PC-TAIVU-01"),
                       headers=headers)
    assert resp.status_code == 202
    again = machine_facts(app, mid)
    assert again["asset.registered"] is True
    assert {k: v for k, v in again.items() if k.startswith(("asset.", "depreciation."))} == \
        {k: v for k, v in first.items() if k.startswith(("asset.", "depreciation."))}


def test_the_kept_register_entry_is_not_used_outside_its_transaction(asset_app, tmp_path):
    app = asset_app
    unit = add_units(app, UNIT_NAME)[0]
    do_import(app, write_csv(tmp_path / "a.csv", [",7XK2P53,,desktop_computer,2020-03-15,"
                                                  "15000000,,"]))
    mid = report_machine(app, app.test_client(), unit, "PC-TAIVU-01", serial="7XK2P53")
    engine = app.extensions["kiemke"].engine
    with engine.connect() as conn:
        with conn.begin():
            _remember(conn, mid, None)  # as if the assets step had found nothing
        with conn.begin():
            assert lookup(conn, mid) is not None  # another transaction: read again
        with conn.begin():
            _remember(conn, "f" * 32, None)  # another machine
            assert lookup(conn, mid) is not None
            _remember(conn, mid, None)
            assert lookup(conn, mid) is None  # the kept one, once
            assert lookup(conn, mid) is not None
