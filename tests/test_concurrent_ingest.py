"""Concurrent reports of many machines of one unit, through two collector processes.

Every report of a unit changes the same shared rows (the unit's rule counts, its unit
rules, the change version). Two processes each committing a batch of several reports
(kiemke.collector.pipeline.group_commit) once formed lock cycles on PostgreSQL: one
batch held the unit's counts and waited for a machine that the other batch had locked
before it waited for the counts. PostgreSQL broke the cycle by aborting one of them,
which the agent saw as 503. CI caught it once in test_collector_server; this test
makes the cycle likely (six machines whose facts flip every round, 16 senders) and
asserts that every report is answered 202 and that the log names no deadlock.
"""

from __future__ import annotations

import gzip
import json
from concurrent.futures import ThreadPoolExecutor

import requests
from reports import UNIT_NAME, make_report, new_machine_id
from test_collector_server import enroll

MACHINES = 6
REPORTS = 480
SENDERS = 16


def test_concurrent_reports_of_one_unit(collector_server):
    server = collector_server
    server.create_unit(UNIT_NAME, code="LDLD-BG")
    server.create_unit("Văn phòng", parent="LDLD-BG")
    token = server.create_token(f"{UNIT_NAME} / Văn phòng", max_uses=MACHINES)
    agents = []
    for i in range(MACHINES):
        mid = new_machine_id()
        _body, headers = enroll(server, token, mid, f"VP-PC-{i:02d}")
        agents.append((mid, headers))

    def send(i: int) -> tuple[int, str]:
        mid, headers = agents[i % MACHINES]
        # The antivirus flips with every round: each report changes results and counts.
        on = (i // MACHINES) % 2 == 0
        report = make_report(mid, hostname=f"VP-PC-{i % MACHINES:02d}")
        report["antivirus"]["products"][0].update(enabled=on, state="on" if on else "off")
        resp = requests.post(f"{server.url}/api/v1/reports", timeout=30,
                             data=gzip.compress(json.dumps(report).encode()),
                             headers={**headers, "Content-Type": "application/json",
                                      "Content-Encoding": "gzip"})
        return resp.status_code, resp.text[:200]

    with ThreadPoolExecutor(SENDERS) as pool:
        answers = list(pool.map(send, range(REPORTS)))
    refused = [a for a in answers if a[0] != 202]
    assert refused == [], f"{len(refused)} of {REPORTS} not accepted: {refused[:3]}\n" \
                          f"{server.log()[-3000:]}"
    assert "deadlock" not in server.log().lower()


def test_only_server_rollbacks_are_run_again():
    """SQLSTATE class 40 (deadlock 40P01, serialization 40001) is run again; an outage or
    a bug is not (it reaches the report: 503 or 500)."""
    from sqlalchemy import exc as sa_exc

    from kiemke.collector.pipeline.group_commit import rolled_back_by_server

    class Orig(Exception):
        def __init__(self, sqlstate):
            super().__init__(sqlstate)
            self.sqlstate = sqlstate

    def error(sqlstate):
        return sa_exc.OperationalError("UPDATE rule_counts ...", {}, Orig(sqlstate))

    assert rolled_back_by_server(error("40P01"))
    assert rolled_back_by_server(error("40001"))
    assert not rolled_back_by_server(error("08006"))  # connection lost: an outage, 503
    assert not rolled_back_by_server(error(None))  # SQLite's errors carry no SQLSTATE
    assert not rolled_back_by_server(ValueError("40P01"))
