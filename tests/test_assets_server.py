"""End to end on a real collector (gunicorn) over SQLite and PostgreSQL: agents report,
`kiemke-collector assets import` (CLI), then /metrics checked value by value with
prometheus_client's parser, and the read APIs."""

from __future__ import annotations

import datetime as dt

import requests
from assets_helpers import machine_report, months_ago, write_csv
from prometheus_client.parser import text_string_to_metric_families
from reports import UNIT_NAME, new_machine_id
from scrape_helpers import metrics_text

DISTRICT = "LĐLĐ huyện Yên Thế"
OFFICE = "Công đoàn xã Bố Hạ"
P = UNIT_NAME
D = f"{P} / {DISTRICT}"
OF = f"{D} / {OFFICE}"
PARENT = {P: "", D: P, OF: D}
LEVEL = {P: "0", D: "1", OF: "2"}


def send(server, unit_id: int, hostname: str, **kwargs) -> str:
    mid = new_machine_id()
    token = server.create_token(unit_id)
    resp = requests.post(f"{server.url}/api/v1/enroll", timeout=10,
                         json={"token": token, "machine_id": mid, "hostname": hostname})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    resp = requests.post(f"{server.url}/api/v1/reports", timeout=10,
                         json=machine_report(mid, hostname, **kwargs),
                         headers={"Authorization": f"Bearer {body['agent_id']}.{body['secret']}"})
    assert resp.status_code == 202, resp.text
    return mid


def scrape(server) -> dict[tuple[str, tuple], float]:
    """The depreciation samples, each unit_id joined to its path, parent path and level
    from kiemke_unit_info (as a dashboard shows them)."""
    text = metrics_text(server.url, timeout=10)
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    info = {s.labels["unit_id"]: s.labels for s in samples if s.name == "kiemke_unit_info"}

    def unit(unit_id: str) -> dict[str, str]:
        parent = info[unit_id]["parent_id"]
        return {"unit": info[unit_id]["path"], "level": info[unit_id]["level"],
                "parent": info[parent]["path"] if parent else ""}

    return {(s.name, tuple(sorted({**{k: v for k, v in s.labels.items() if k != "unit_id"},
                                   **unit(s.labels["unit_id"])}.items()))): s.value
            for s in samples
            if s.name.startswith(("kiemke_depreciation_", "kiemke_replacement_",
                                  "kiemke_machines_by_age"))}


def expected_metrics(per_unit: dict[str, dict], year: int) -> dict[tuple[str, tuple], float]:
    out: dict[tuple[str, tuple], float] = {}
    for unit, want in per_unit.items():
        base = {"unit": unit, "parent": PARENT[unit], "level": LEVEL[unit]}
        for status in ("in_service", "fully_depreciated", "overdue", "unknown"):
            for est in ("false", "true"):
                labels = {**base, "status": status, "estimated": est}
                out[("kiemke_depreciation_machines", tuple(sorted(labels.items())))] = \
                    want["status"].get((status, est), 0)
        for y in range(year, year + 6):
            labels = {**base, "year": str(y)}
            out[("kiemke_replacement_forecast_machines", tuple(sorted(labels.items())))] = \
                want["forecast"].get(y, 0)
        for bucket in [*map(str, range(10)), "10+", "unknown"]:
            labels = {**base, "age_years": bucket}
            out[("kiemke_machines_by_age", tuple(sorted(labels.items())))] = \
                want["age"].get(bucket, 0)
    return out


def test_register_metrics_and_api_end_to_end(collector_server, tmp_path):
    server = collector_server
    today = dt.datetime.now(dt.timezone.utc).date()
    y = today.year
    province = server.create_unit(UNIT_NAME, code="LDLD-BG")
    district = server.create_unit(DISTRICT, parent=province)
    office = server.create_unit(OFFICE, parent=district)
    bought = {"m1": months_ago(today, 14), "m2": months_ago(today, 63),
              "m5": months_ago(today, 38)}
    m1 = send(server, office, "PC-KETOAN-01", serial="SN-0001")
    m2 = send(server, office, "PC-KETOAN-02", serial="SN-0002")
    m5 = send(server, office, "LAPTOP-VANTHU", serial=None, asset_tag="LĐLĐ-LT-05")
    m3 = send(server, district, "PC-CU", serial="SN-0003", made=months_ago(today, 97))
    m4 = send(server, province, "VM-MAYCHU", serial=None, chassis="virtual")

    bad = write_csv(tmp_path / "bad.csv", [
        f";SN-0001;;desktop_computer;{bought['m1']:%d/%m/%Y};12.000.000;;Máy Kế toán",
        ";SN-0002;;máy in;2020-01-01;5.000.000;;Máy in phòng Tổng hợp",
    ], delimiter=";", bom=True)
    result = server.run_cli("assets", "import", str(bad), check=False)
    assert result.returncode == 1
    assert (f"{bad} line 3, category: 'máy in' is not a category in rules/depreciation.yml"
            in result.stderr), result.stderr
    assert "nothing was imported: fix the 1 problem(s) above" in result.stderr

    good = write_csv(tmp_path / "assets.csv", [
        f";SN-0001;;desktop_computer;{bought['m1']:%d/%m/%Y};12.000.000;{OFFICE};Máy Kế toán",
        f";sn-0002;;desktop_computer;{bought['m2']:%Y-%m-%d};15.000.000;;",
        f"lđlđ-lt-05;;;Máy vi tính xách tay;{bought['m5']:%d/%m/%Y};20.000.000;;Laptop Văn thư",
        ";SN-9999;PC-DA-THANH-LY;desktop_computer;2015-01-01;9.000.000;;Máy đã thanh lý",
    ], delimiter=";", bom=True)
    result = server.run_cli("assets", "import", str(good))
    assert ("4 register rows; matched 3 (serial 2, asset tag 1, hostname 0); 1 not matched; "
            "2 reporting machines have no register entry") in result.stderr, result.stderr
    # The rows that did not match, as a table on stdout: line, identifiers and why.
    assert [line.split()[:3] for line in result.stdout.splitlines()[1:]] == [
        ["5", "SN-9999", "PC-DA-THANH-LY"]]
    assert "no reporting machine has this serial" in result.stdout

    office_want = {
        "status": {("in_service", "false"): 2, ("fully_depreciated", "false"): 1},
        "forecast": {y: 1, bought["m1"].year + 5: 1, bought["m5"].year + 5: 1},
        "age": {"1": 1, "3": 1, "5": 1},
    }
    district_want = {
        "status": {**office_want["status"], ("overdue", "true"): 1},
        "forecast": {**office_want["forecast"], y: 2},
        "age": {**office_want["age"], "8": 1},
    }
    province_want = {
        "status": {**district_want["status"], ("unknown", "true"): 1},
        "forecast": district_want["forecast"],
        "age": {**district_want["age"], "unknown": 1},
    }
    want = expected_metrics({P: province_want, D: district_want, OF: office_want}, y)
    got = scrape(server)
    assert got == want

    headers = server.admin_headers()
    body = requests.get(f"{server.url}/api/v1/depreciation", params={"unit": D},
                        headers=headers, timeout=10).json()
    assert body["unit"]["path"] == D
    assert body["machines"] == 4
    assert body["status"]["overdue"] == {"registered": 0, "estimated": 1}
    assert [c["unit"]["path"] for c in body["children"]] == [OF]
    assert body["children"][0]["forecast"][0] == {"year": y, "machines": 1}
    assert body["regulation"]["document"] == "Thông tư 23/2023/TT-BTC"

    body = requests.get(f"{server.url}/api/v1/depreciation/machines", headers=headers,
                        params={"unit": OF, "status": "in_service"}, timeout=10).json()
    by_id = {item["machine_id"]: item for item in body["items"]}
    assert set(by_id) == {m1, m5}
    months = 14 if today.day >= 15 else 13
    item = by_id[m1]
    assert (item["hostname"], item["unit"]["path"], item["estimated"], item["cost"],
            item["book_value"], item["age"], item["start_date"]) == (
        "PC-KETOAN-01", OF, False, 12_000_000, 12_000_000 * 46 // 60,
        {"years": 1, "months": months - 12}, bought["m1"].isoformat())

    body = requests.get(f"{server.url}/api/v1/assets", params={"matched": "false"},
                        headers=headers, timeout=10).json()
    assert [(i["line"], i["hostname"], i["description"], i["machine"]) for i in body["items"]] \
        == [(5, "PC-DA-THANH-LY", "Máy đã thanh lý", None)]
    assert (body["import"]["file_name"], body["import"]["rows"], body["import"]["matched"]) \
        == ("assets.csv", 4, 3)
    body = requests.get(f"{server.url}/api/v1/assets", params={"unit": "LDLD-BG", "limit": 1},
                        headers=headers, timeout=10).json()
    assert [(i["line"], i["unit"]["path"], i["machine"]["machine_id"], i["matched_by"],
             i["depreciation"]["status"]) for i in body["items"]] == [
        (2, OF, m1, "serial", "in_service")]
    resp = requests.get(f"{server.url}/api/v1/depreciation/machines", headers=headers,
                        params={"status": "broken"}, timeout=10)
    assert resp.status_code == 400 and resp.json()["field"] == "status"

    result = server.run_cli("assets", "unmatched")
    assert "PC-DA-THANH-LY" in result.stdout
    assert {m3, m4} <= set(result.stdout.split())
    assert m1 not in result.stdout
    body = requests.get(f"{server.url}/api/v1/depreciation/machines", headers=headers,
                        params={"unit": OF, "status": "fully_depreciated"}, timeout=10).json()
    assert [(i["machine_id"], i["book_value"], i["replacement_year"]) for i in body["items"]] \
        == [(m2, 0, y)]
