"""The ingest lock on PostgreSQL (kiemke/collector/pipeline/ingest_lock.py): every ingest
transaction takes it before anything else, in the round trip of its first statement.

Taken late (after a statement's row locks) it forms lock cycles between processes: the
transaction holding the lock waits for a row the other holds, the other waits for the
lock ("deadlock detected"; tests/test_concurrent_ingest.py finds it by chance). Here the
order is read from the wire: libpq's own trace of each pooled connection (what the
client sent, in the order the server runs it) while the real app ingests every kind of
report: full (a new machine, other facts, the same facts), a replay, unchanged, the
same digest under a new envelope, an unknown digest (409, rolled back).
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path

from collector_helpers import add_units, enroll_agent, enrollment_token
from compliance_helpers import make_app
from psycopg import pq
from reports import UNIT_NAME, make_report, new_machine_id
from sqlalchemy import event

from kiemke.collector.ingest import load_agent
from kiemke.collector.pipeline.ingest_lock import LOCK
from kiemke.collector.timeutil import utcnow
from kiemke.schema.digest import facts_digest, unchanged_form

_MESSAGE = re.compile(r"^([FB])\t\d+\t(\w+)\t?(.*)$")
_PARSE = re.compile(r'^\s*"([^"]*)" "(.*)" \d+', re.S)  # statement name, SQL
_BIND = re.compile(r'^\s*"[^"]*" "([^"]*)"')  # portal, statement name


def _messages(trace: str) -> list[tuple[str, str, str]]:
    """(direction, type, arguments) per protocol message; a statement's SQL may span
    lines (those that do not start a message continue the one before)."""
    out: list[tuple[str, str, str]] = []
    for line in trace.splitlines():
        m = _MESSAGE.match(line)
        if m:
            out.append((m[1], m[2], m[3]))
        elif out:
            out[-1] = (out[-1][0], out[-1][1], out[-1][2] + "\n" + line)
    return out


def _executed(trace: str) -> list[tuple[int, str]]:
    """Every statement the client sent for execution, in order, as (round trip, SQL).
    Extended protocol: one Bind per execution, of the unnamed statement just parsed or
    of one psycopg prepared before (after 5 uses: `_pg3_N`, parsed once); simple
    protocol: Query. The round trip counts the client's reads: a B message between two
    statements sent means the second went in a later round trip."""
    out: list[tuple[int, str]] = []
    named: dict[str, str] = {}
    trip, reading = 0, False
    for direction, kind, args in _messages(trace):
        if direction == "B":
            reading = True
            continue
        if reading:
            trip, reading = trip + 1, False
        if kind == "Parse" and (m := _PARSE.match(args)):
            named[m[1]] = m[2]
        elif kind == "Bind" and (m := _BIND.match(args)):
            out.append((trip, named[m[1]]))
        elif kind == "Query":
            out.append((trip, args.strip().strip('"')))
    return out


def _transactions(trace: str) -> list[list[tuple[int, str]]]:
    """Each transaction's statements after its BEGIN (statements outside one: none)."""
    out: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] | None = None
    for trip, sql in _executed(trace):
        word = sql.split(None, 1)[0].upper() if sql.strip() else ""
        if word == "BEGIN":
            current = []
            out.append(current)
        elif word in ("COMMIT", "ROLLBACK"):
            current = None
        elif current is not None:
            current.append((trip, sql))
    return out


def test_every_ingest_transaction_takes_the_lock_first(pg_url, tmp_path: Path, monkeypatch):
    app = make_app(pg_url, tmp_path, monkeypatch)
    ext = app.extensions["kiemke"]
    client = app.test_client()
    unit_id = add_units(app, UNIT_NAME)[-1]
    machine_id = new_machine_id()
    headers = enroll_agent(client, enrollment_token(app, unit_id), machine_id)
    cred = load_agent(ext.engine, headers["Authorization"].split()[1].split(".")[0])
    assert cred is not None

    trace_path = tmp_path / "libpq.trace"
    fd = os.open(trace_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def traced(dbapi_conn, _record, _proxy) -> None:
        dbapi_conn.pgconn.trace(fd)
        dbapi_conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

    def untraced(dbapi_conn, _record) -> None:
        dbapi_conn.pgconn.untrace()  # flushes: one checkout's messages, in order

    def post(body: dict) -> int:
        return client.post("/api/v1/reports", headers=headers, content_type="application/json",
                           data=json.dumps(body, ensure_ascii=False).encode()).status_code

    def again(report: dict) -> dict:
        nxt = make_report(machine_id)
        nxt.update({k: v for k, v in report.items() if k not in ("report_id", "collected_at")})
        return nxt

    first = make_report(machine_id)
    first["facts_digest"] = facts_digest(first)
    changed = make_report(machine_id)
    changed["antivirus"]["products"][0].update(enabled=False, state="off")
    changed["facts_digest"] = facts_digest(changed)
    unknown = unchanged_form(again(changed))
    unknown["facts_digest"] = "0" * len(unknown["facts_digest"])

    event.listen(ext.engine, "checkout", traced)
    event.listen(ext.engine, "checkin", untraced)
    try:
        assert post(first) == 202  # full, a new machine
        assert post(changed) == 202  # full, other facts
        assert post(changed) == 200  # a replay
        assert post(again(changed)) == 202  # full, the same facts (the bench's full report)
        assert post(unchanged_form(again(changed))) == 202  # unchanged
        tomorrow = utcnow() + timedelta(days=1)  # same digest, another envelope
        assert ext.pipeline.run(cred, unchanged_form(again(changed)), now=tomorrow).stored
        assert post(unknown) == 409
    finally:
        event.remove(ext.engine, "checkout", traced)
        event.remove(ext.engine, "checkin", untraced)
        os.close(fd)
        ext.engine.dispose()

    transactions = _transactions(trace_path.read_text("utf-8", "replace"))
    assert len(transactions) == 7, transactions  # one per report: the check is not empty
    for statements in transactions:
        assert len(statements) >= 2, statements
        (lock_trip, lock_sql), (trip, sql) = statements[0], statements[1]
        assert lock_sql == LOCK.sql.replace("%(k)s", "$1"), \
            f"first statement is not the ingest lock: {lock_sql[:200]}"
        assert trip == lock_trip, f"the lock went in a round trip of its own before {sql[:80]}"
        assert [s for _, s in statements].count(lock_sql) == 1
