"""A real `kiemke-collector serve` (gunicorn, 2 workers) on SQLite and PostgreSQL over HTTP."""

from __future__ import annotations

import gzip
import json
from concurrent.futures import ThreadPoolExecutor

import requests
from prometheus_client.parser import text_string_to_metric_families
from reports import UNIT_NAME, make_report, new_machine_id
from scrape_helpers import metrics_text


def enroll(server, token, machine_id, hostname):
    resp = requests.post(f"{server.url}/api/v1/enroll", timeout=10,
                         json={"token": token, "machine_id": machine_id, "hostname": hostname})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return body, {"Authorization": f"Bearer {body['agent_id']}.{body['secret']}"}


def test_reports_over_http(collector_server):
    server = collector_server
    province = server.create_unit(UNIT_NAME, code="LDLD-BG")
    office = server.create_unit("Văn phòng", parent="LDLD-BG")
    token = server.create_token(f"{UNIT_NAME} / Văn phòng", max_uses=20)

    agents = []
    for i in range(6):
        mid = new_machine_id()
        body, headers = enroll(server, token, mid, f"VP-PC-{i:02d}")
        assert body["unit"] == {"id": office, "name": "Văn phòng",
                                "path": f"{UNIT_NAME} / Văn phòng"}
        agents.append((mid, headers))

    def send(i):
        mid, headers = agents[i % len(agents)]
        session = requests.Session()
        report = make_report(mid, hostname=f"VP-PC-{i % len(agents):02d}")
        data = gzip.compress(json.dumps(report).encode())
        resp = session.post(f"{server.url}/api/v1/reports", data=data, timeout=10,
                            headers={**headers, "Content-Type": "application/json",
                                     "Content-Encoding": "gzip"})
        replay = session.post(f"{server.url}/api/v1/reports", data=data, timeout=10,
                              headers={**headers, "Content-Type": "application/json",
                                       "Content-Encoding": "gzip"})
        return resp.status_code, replay.status_code, replay.json()["status"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(48)))
    assert results == [(202, 200, "duplicate")] * 48

    bad = requests.post(f"{server.url}/api/v1/reports", json={"schema_version": 1},
                        headers=agents[0][1], timeout=10)
    assert bad.status_code == 400 and bad.json()["field"] == "report_id"

    machines = requests.get(f"{server.url}/api/v1/machines?unit={province}",
                            headers=server.admin_headers(), timeout=10).json()
    assert len(machines["items"]) == 6
    assert {m["unit"]["path"] for m in machines["items"]} == {f"{UNIT_NAME} / Văn phòng"}

    # Counters from both gunicorn workers are merged (multiprocess mode).
    text = metrics_text(server.url, timeout=10)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("kiemke_reports_received_total",
                    (("reason", "accepted"), ("result", "accepted")))] == 48
    assert samples[("kiemke_reports_received_total",
                    (("reason", "duplicate"), ("result", "duplicate")))] == 48
    assert samples[("kiemke_reports_received_total",
                    (("reason", "missing_field"), ("result", "rejected")))] == 1
    assert samples[("kiemke_report_ingest_seconds_count", ())] == 97
    [root_id] = [dict(k[1])["unit_id"] for k in samples if k[0] == "kiemke_unit_info"
                 and dict(k[1])["path"] == UNIT_NAME]
    assert samples[("kiemke_machines", (("status", "active"), ("unit_id", root_id)))] == 6

    listed = server.run_cli("agents", "list").stdout
    assert listed.count("active") == 6 and "VP-PC-00" in listed
    assert "Authorization" not in server.log() and agents[0][1]["Authorization"] not in \
        server.log()
