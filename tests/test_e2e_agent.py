"""End to end with real processes: kiemke-agent enroll/send against kiemke-collector serve.

Parametrized over SQLite and PostgreSQL by the `collector_server` fixture (conftest.py).
Agent configs send probes to loopback only.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import requests
from conftest import REPO, CollectorServer, free_port
from scrape_helpers import metrics_text
from test_schema_contract import agent_conf

UNIT = "Liên đoàn Lao động tỉnh Bắc Giang"
OFFICE = "Văn phòng Liên đoàn"


def agent(conf: Path, *args: str, env: dict[str, str] | None = None,
          stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kiemke.agent", "--config", str(conf),
                           *args], capture_output=True, text=True, encoding="utf-8",
                          timeout=120, cwd=REPO, env={**os.environ, **(env or {})},
                          input=stdin)


def _enrolled(server: CollectorServer, tmp_path: Path, token_on_stdin: bool = False
              ) -> tuple[Path, str]:
    root = server.create_unit(UNIT)
    office = server.create_unit(OFFICE, parent=root)
    token = server.create_token(office)
    conf = agent_conf(tmp_path, server=server.url)
    if token_on_stdin:
        out = agent(conf, "enroll", "--server", server.url, "--token", "-", stdin=token + "\n")
    else:
        out = agent(conf, "enroll", "--server", server.url, "--token", token)
    assert out.returncode == 0, out.stderr
    assert f"{UNIT} / {OFFICE}" in out.stdout
    creds = json.loads((tmp_path / "state" / "credentials.json").read_text("utf-8"))
    assert (tmp_path / "state" / "credentials.json").stat().st_mode & 0o777 == 0o600
    assert token not in out.stdout + out.stderr and creds["secret"] not in out.stdout
    return conf, creds["machine_id"]


def test_enroll_send_visible_in_api_and_metrics(collector_server, tmp_path):
    server = collector_server
    # before enrolment: send says what to do; a wrong token is refused and stores nothing
    conf = agent_conf(tmp_path, server=server.url)
    out = agent(conf, "send")
    assert out.returncode == 4 and "kiemke-agent enroll" in out.stderr
    bad = agent(conf, "enroll", "--server", server.url, "--token", "x" * 43)
    assert bad.returncode == 4, bad.stderr
    assert "refused the enrolment token" in bad.stderr
    assert not (tmp_path / "state" / "credentials.json").exists()

    conf, machine_id = _enrolled(server, tmp_path)
    sent = agent(conf, "send")
    assert sent.returncode == 0, sent.stderr
    assert "delivered" in sent.stdout
    resp = requests.get(f"{server.url}/api/v1/machines/{machine_id}",
                        headers=server.admin_headers(), timeout=10)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["unit"]["path"] == f"{UNIT} / {OFFICE}"
    assert body["status"] == "active"
    assert body["report"]["identity"]["unit"] == UNIT
    assert body["report"]["kind"] == "full"  # the first report is a full inventory
    metrics = metrics_text(server.url, timeout=10)
    unit_id = body["unit"]["id"]
    assert re.search(r'^kiemke_unit_info\{[^}]*path="' + re.escape(f"{UNIT} / {OFFICE}")
                     + f'"[^}}]*unit_id="{unit_id}"', metrics, re.M), metrics[:3000]
    pattern = re.compile(r'^kiemke_machines\{[^}]*unit_id="' + str(unit_id)
                         + r'"[^}]*\}\s+1(\.0)?$', re.M)
    lines = [m.group(0) for m in pattern.finditer(metrics)]
    assert any('status="active"' in line for line in lines), metrics[:3000]
    status = agent(conf, "status", "--json")
    data = json.loads(status.stdout)
    assert status.returncode == 0 and data["enrolled"] and data["spool"]["pending"] == 0
    assert data["last_success_at"] and data["unit"] == f"{UNIT} / {OFFICE}"


def test_enroll_refuses_plain_http_to_remote_and_unreachable(tmp_path):
    conf = agent_conf(tmp_path)
    out = agent(conf, "enroll", "--server", "http://kiemke.bacgiang.gov.vn", "--token", "t")
    assert out.returncode == 2 and "https://" in out.stderr
    port = free_port()  # nothing listens there
    out = agent(conf, "enroll", "--server", f"http://127.0.0.1:{port}", "--token", "t")
    assert out.returncode == 3 and "cannot reach the collector" in out.stderr


def test_spooled_while_down_then_delivered_in_order(collector_server, tmp_path):
    server = collector_server
    conf, machine_id = _enrolled(server, tmp_path, token_on_stdin=True)
    dead = {"KIEMKE_SERVER": f"http://127.0.0.1:{free_port()}", "KIEMKE_RETRIES": "2",
            "KIEMKE_BACKOFF_BASE": "0.05"}
    for _ in range(2):
        out = agent(conf, "send", env=dead)
        assert out.returncode == 3, out.stderr
        assert "will be sent later" in out.stderr
    spool_dir = tmp_path / "state" / "spool"
    spooled = [p.name.split("-", 2)[2].removesuffix(".json.gz")
               for p in sorted(spool_dir.glob("*.json.gz"))]
    assert len(spooled) == 2
    status = json.loads(agent(conf, "status", "--json").stdout)
    assert status["spool"]["pending"] == 2 and status["last_error"]
    out = agent(conf, "send")
    assert out.returncode == 0, out.stderr
    assert "2 spooled earlier" in out.stdout
    assert list(spool_dir.glob("*.json.gz")) == []

    from sqlalchemy import create_engine, text

    from kiemke.collector.db.engine import normalize_url

    engine = create_engine(normalize_url(server.db_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT report_id, received_at FROM reports WHERE machine_id = :m "
                "ORDER BY received_at"), {"m": machine_id}).all()
    finally:
        engine.dispose()
    ids = [r.report_id for r in rows]
    assert len(ids) == 3 and len(set(ids)) == 3  # nothing lost, nothing twice
    assert set(spooled) <= set(ids)
    received = {r.report_id: r.received_at for r in rows}
    assert received[spooled[0]] <= received[spooled[1]]  # delivered in spool order
    machine = requests.get(f"{server.url}/api/v1/machines/{machine_id}",
                           headers=server.admin_headers(), timeout=10).json()
    assert machine["last_report_id"] not in spooled  # the newest report is the latest


def _stored(server: CollectorServer, machine_id: str) -> dict[str, dict]:
    """report_id -> the stored report body, for one machine."""
    from sqlalchemy import create_engine, select

    from kiemke.collector.db.engine import normalize_url
    from kiemke.collector.db.tables import reports

    engine = create_engine(normalize_url(server.db_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(reports.c.report_id, reports.c.body)
                                .where(reports.c.machine_id == machine_id)).all()
    finally:
        engine.dispose()
    return {r.report_id: (r.body if isinstance(r.body, dict) else json.loads(r.body))
            for r in rows}


def _current(server: CollectorServer, machine_id: str) -> str:
    resp = requests.get(f"{server.url}/api/v1/machines/{machine_id}",
                        headers=server.admin_headers(), timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["last_report_id"]


def _spooled(spool_dir: Path) -> dict[str, dict]:
    import gzip

    return {p.name: json.loads(gzip.decompress(p.read_bytes()))
            for p in sorted(spool_dir.glob("*.json.gz"))}


def test_sequence_and_sent_at_a_wrong_clock_does_not_freeze_the_machine(collector_server,
                                                                        tmp_path):
    """The real agent numbers its reports (state/sequence.json, kept across processes and
    in the spool) and stamps sent_at at each attempt; the collector makes the report with
    the highest number current, whatever the machine's clock said."""
    server = collector_server
    conf, machine_id = _enrolled(server, tmp_path)
    shifted = {"PYTHONPATH": str(REPO / "tests" / "shifted_clock")}
    day = 24 * 3600

    def send(shift: float = 0, extra: dict[str, str] | None = None) -> str:
        env = {**shifted, "KIEMKE_TEST_CLOCK_SHIFT": str(shift), **(extra or {})}
        out = agent(conf, "send", env=env)
        assert out.returncode in (0, 3), out.stderr
        return out.stdout + out.stderr

    send()  # a correct clock
    first = _current(server, machine_id)
    # The clock set back 400 days (within the collector's 10 years): by time this report
    # would be older than the current one and never replace it; by sequence it does.
    send(-400 * day)
    behind = _current(server, machine_id)
    assert behind != first
    # Ahead by 10 minutes (within the 15 minutes allowed), then right again: the correct
    # report after the one from the future becomes current.
    send(600)
    ahead = _current(server, machine_id)
    assert ahead not in (first, behind)
    send()
    correct = _current(server, machine_id)
    assert correct not in (first, behind, ahead)
    stored = _stored(server, machine_id)
    sequences = {rid: body["sequence"] for rid, body in stored.items()}
    assert [sequences[r] for r in (first, behind, ahead, correct)] == [1, 2, 3, 4]
    assert stored[behind]["collected_at"] < stored[first]["collected_at"]
    assert stored[behind]["sent_at"] < stored[first]["sent_at"]  # the shifted clock's
    assert json.loads((tmp_path / "state" / "sequence.json").read_text("utf-8")) == {"last": 4}

    # Collector unreachable: the reports wait in the spool with their numbers, and a
    # failed attempt changes nothing in the spooled file.
    dead = {"KIEMKE_SERVER": f"http://127.0.0.1:{free_port()}", "KIEMKE_RETRIES": "2",
            "KIEMKE_BACKOFF_BASE": "0.05"}
    assert "will be sent later" in send(extra=dead)
    spool_dir = tmp_path / "state" / "spool"
    after_one = _spooled(spool_dir)
    assert [r["sequence"] for r in after_one.values()] == [5]
    assert "will be sent later" in send(extra=dead)
    after_two = _spooled(spool_dir)
    assert [r["sequence"] for r in after_two.values()] == [5, 6]
    name = next(iter(after_one))
    assert after_two[name] == after_one[name] and "sent_at" not in after_one[name]
    assert "2 spooled earlier" in send()
    stored = _stored(server, machine_id)
    by_sequence = {body["sequence"]: body for body in stored.values()}
    assert sorted(by_sequence) == [1, 2, 3, 4, 5, 6, 7]  # nothing lost, nothing twice
    spooled_ids = {r["report_id"] for r in after_two.values()}
    assert {by_sequence[5]["report_id"], by_sequence[6]["report_id"]} == spooled_ids
    # sent_at is the time of the attempt that delivered them: after report 7, made by the
    # same `send` just before it delivered the spool, was collected
    for number in (5, 6):
        assert by_sequence[number]["sent_at"] >= by_sequence[7]["collected_at"]
    assert _current(server, machine_id) == by_sequence[7]["report_id"]
