"""Schemathesis against the served OpenAPI document, on SQLite and PostgreSQL at once.

Every operation, with a valid agent credential (for /api/v1/reports, whose generated
bodies carry the enrolled machine's id: tests/schemathesis_hooks.py) and a valid admin
token (everything else). Positive and negative data, coverage and fuzzing phases.

Two kinds of run, all at the same time, per database:
- the schemathesis CLI over real HTTP against the served collector (gunicorn with the
  buffered worker), bounded by HTTP_SECONDS; requests counted in the access log;
- INPROCESS_RUNS processes running schemathesis' engine against the collector's Flask
  app in-process (WSGI transport: tests/schemathesis_inprocess.py; started first, so
  their imports overlap the collectors' start-up), each with a seed of its own, all
  stopping once together they answered INPROCESS_TARGET requests, or INPROCESS_SECONDS
  after they were configured.
Over HTTP one request costs ~15 ms of CPU on the test machine (the fuzzer, the HTTP
client, gunicorn and the app on the same two cores); in-process ~3 ms in the coverage
phase and ~5 ms averaged over coverage and fuzzing (one run alone: 4,673 requests in
60 s, 24 s of CPU, at load 10), so the volume comes from the in-process runs and the
HTTP runs prove that the served document and the real server agree with it. Measured
on the shared 2-core machine: 13,269 requests (2,519 over HTTP) in 111 s at load 1-7,
the whole test 127 s; 10,167 (1,159 over HTTP) in 128 s at load 8, the whole test
155 s; 6,517 at load 12-16; a few hundred at load 22-32, when the runs get a few
percent of a core each: the figure needs the machine's CPU, not a longer bound.

Asserted, over all runs:
- at least MIN_REQUESTS (10,000) requests answered, counted by the collector's access
  log (HTTP) and by a WSGI middleware (in-process), not by schemathesis;
- 0 answers 5xx, 0 failed checks (status codes, content types, headers and response
  bodies as documented), 0 engine errors, no traceback in any log;
- the database is unchanged by rejected requests: every table that no accepted write
  could have touched has exactly the rows it had before, and the number of reports
  stored is the number of reports answered 202.
The run length is bounded (INPROCESS_SECONDS for the runs, under 3 minutes with the
set-up at load 8); the request count is the assertion, not a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from conftest import REPO, CollectorServer, start_collector, stop_collector
from sqlalchemy import create_engine, func, select, text

from kiemke.collector.db.engine import normalize_url

MIN_REQUESTS = 10_000
HTTP_SECONDS = 45  # the CLI runs over HTTP, one per database
INPROCESS_RUNS = 3  # per database
INPROCESS_TARGET = 10_500  # the in-process runs stop when together they answered this
INPROCESS_SECONDS = 120  # ... or this long after they were started
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance")
# (method, path regex) of writes a 2xx answer may have applied -> tables they may change
WRITES = {
    ("POST", r"^/api/v1/reports$"): {"reports", "machines", "agents"},
    ("POST", r"^/api/v1/enroll$"): {"agents", "enrollment_tokens"},
    ("POST", r"^/api/v1/units$"): {"units"},
    ("PATCH", r"^/api/v1/units/[^/]+$"): {"units"},
    ("PATCH", r"^/api/v1/machines/[^/]+$"): {"machines"},
    ("POST", r"^/api/v1/waivers$"): {"waivers"},
    ("DELETE", r"^/api/v1/waivers/[^/]+$"): {"waivers"},
}
# Tables written as a consequence of any accepted write above (evaluation results,
# change versions and logs, history): compared only when nothing at all was accepted.
DERIVED = re.compile(r"^(rule_|unit_rule_|compliance_|change_|ruleset_|machine_depreciation"
                     r"|asset_state|audit)")
ACCESS = re.compile(r'"(GET|POST|PATCH|DELETE|PUT|HEAD|OPTIONS|TRACE) (\S+) HTTP/1\.[01]" '
                    r"(\d{3}) ")


def _snapshot(db_url: str) -> dict[str, str]:
    """Per table: a digest of all its rows (order-independent)."""
    engine = create_engine(normalize_url(db_url))
    out: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            names = [r[0] for r in conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type='table'"
                if engine.dialect.name == "sqlite" else
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))]
            for name in names:
                rows = sorted(repr(tuple(r)) for r in conn.execute(
                    text(f'SELECT * FROM "{name}"')))  # noqa: S608 - names from the catalog
                out[name] = f"{len(rows)}:" + hashlib.sha256("\n".join(rows).encode()).hexdigest()
    finally:
        engine.dispose()
    return out


def _seed(server) -> dict[str, str]:
    unit = server.create_unit("Liên đoàn Lao động tỉnh Bắc Giang", code="LDLD-BG")
    token = server.create_token(unit)
    machine_id = "3f2a" + "0" * 27 + "1"
    resp = requests.post(f"{server.url}/api/v1/enroll", timeout=10, json={
        "token": token, "machine_id": machine_id, "hostname": "PC-KETOAN-01"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return {"agent": f"{body['agent_id']}.{body['secret']}", "machine_id": machine_id}


def _run_http(server, seed: dict[str, str], workdir: Path) -> subprocess.Popen:
    """The schemathesis CLI against the real collector over HTTP (gunicorn, buffered worker)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "schemathesis.toml").write_text(
        '[auth.openapi.agentCredential]\nbearer = "${KIEMKE_FUZZ_AGENT}"\n\n'
        '[auth.openapi.adminToken]\nbearer = "${KIEMKE_FUZZ_ADMIN}"\n', "utf-8")
    env = {**os.environ, "KIEMKE_FUZZ_AGENT": seed["agent"],
           "KIEMKE_FUZZ_ADMIN": server.admin_token,
           "KIEMKE_FUZZ_MACHINE_ID": seed["machine_id"],
           "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
           "PYTHONPATH": str(REPO / "tests")}
    st = Path(sys.executable).with_name("st")
    return subprocess.Popen(
        [str(st), "--config-file", str(workdir / "schemathesis.toml"), "--no-color", "run",
         f"{server.url}/api/v1/openapi.json",
         "--checks", ",".join(CHECKS), "--phases", "coverage,fuzzing", "--mode", "all",
         "--no-shrink",
         # One worker: with several, hypothesis' lambda descriptions race in ast.parse
         # (SystemError "AST constructor recursion depth mismatch" on Python 3.11).
         "--max-examples", "400", "--max-time", str(HTTP_SECONDS), "--workers", "1",
         "--generation-database", "none", "--request-timeout", "20", "--seed", "1"],
        cwd=workdir, env=env, stdout=open(workdir / "st.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT)


def _start_inprocess(workdir: Path) -> subprocess.Popen:
    """A process for schemathesis' engine against the collector app (WSGI): started
    first, it imports while the collectors start, then waits for its config."""
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "schemathesis_inprocess.py"),
         str(workdir / "config.json"), str(workdir / "result.json")],
        cwd=workdir, stdout=open(workdir / "run.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT)


def _configure_inprocess(server, seed: dict[str, str], workdir: Path, number: int,
                         counts: Path, deadline: float) -> None:
    """Each run does the coverage phase of its share of the operations, then fuzzes all
    of them, with a seed of its own."""
    phases = ["coverage", "fuzzing"]
    tmp = workdir / "config.json.tmp"
    tmp.write_text(json.dumps({
        "db_url": server.db_url, "data_dir": str(workdir / "data"), "agent": seed["agent"],
        "admin": server.admin_token, "machine_id": seed["machine_id"], "seed": 100 + number,
        "phases": phases, "max_examples": 400, "deadline": deadline,
        "stop_at": INPROCESS_TARGET, "counts_dir": str(counts), "name": workdir.name,
        "coverage_share": [number, INPROCESS_RUNS]}),
        "utf-8")
    tmp.replace(workdir / "config.json")  # whole, or not at all: the process polls for it


def _requests_in_log(server) -> list[tuple[str, str, int]]:
    return [(m.group(1), m.group(2).split("?", 1)[0], int(m.group(3)))
            for m in ACCESS.finditer(server.log())]


def test_schemathesis_every_operation_both_databases(tmp_path: Path, sqlite_url: str,
                                                     pg_url: str) -> None:
    servers: dict[str, CollectorServer] = {}
    http_runs: dict[str, subprocess.Popen] = {}
    inprocess_runs = {(name, n): _start_inprocess(tmp_path / f"wsgi-{name}-{n}")
                      for name in ("sqlite", "postgres") for n in range(INPROCESS_RUNS)}
    try:
        # Both collectors start at once: on a loaded machine start-up is tens of seconds.
        with ThreadPoolExecutor(2) as pool:
            started_servers = {name: pool.submit(start_collector, url, tmp_path / name, 2)
                               for name, url in (("sqlite", sqlite_url), ("postgres", pg_url))}
            failed: BaseException | None = None
            for name, future in started_servers.items():
                try:
                    servers[name] = future.result()
                except BaseException as exc:  # noqa: BLE001 - raised below, after the other
                    failed = exc
            if failed is not None:
                raise failed
        seeds = {name: _seed(server) for name, server in servers.items()}
        before = {name: _snapshot(server.db_url) for name, server in servers.items()}
        started = time.monotonic()
        http_runs = {name: _run_http(server, seeds[name], tmp_path / f"st-{name}")
                     for name, server in servers.items()}
        for (name, n), _proc in inprocess_runs.items():
            _configure_inprocess(servers[name], seeds[name], tmp_path / f"wsgi-{name}-{n}", n,
                                 tmp_path / "counts", time.time() + INPROCESS_SECONDS)
        for proc in (*http_runs.values(), *inprocess_runs.values()):
            proc.wait(timeout=INPROCESS_SECONDS + 30)
        elapsed = time.monotonic() - started
    finally:
        for proc in (*http_runs.values(), *inprocess_runs.values()):
            if proc.poll() is None:  # the test failed before they could finish
                proc.kill()
                proc.wait(timeout=10)
        for server in servers.values():
            stop_collector(server)

    figures = []
    total = 0
    for name, server in servers.items():
        log = (tmp_path / f"st-{name}" / "st.log").read_text("utf-8", "replace")
        over_http = _requests_in_log(server)
        assert http_runs[name].returncode == 0, \
            f"{name}: schemathesis (HTTP) found failures:\n{log[-6000:]}"
        assert "Traceback" not in server.log(), server.log()[-3000:]
        seen = list(over_http)
        for n in range(INPROCESS_RUNS):
            workdir = tmp_path / f"wsgi-{name}-{n}"
            run_log = (workdir / "run.log").read_text("utf-8", "replace")
            assert inprocess_runs[(name, n)].returncode == 0, f"{name}/{n}: {run_log[-4000:]}"
            result = json.loads((workdir / "result.json").read_text("utf-8"))
            assert not result["errors"], f"{name}/{n}: engine errors:\n" + \
                "\n".join(result["errors"][:5])
            assert not result["failures"], f"{name}/{n}: schemathesis found failures:\n" + \
                "\n".join(result["failures"][:5])
            assert "Traceback" not in run_log, f"{name}/{n}: {run_log[-4000:]}"
            seen += [(m, p, s) for m, p, s in result["requests"]]
        total += len(seen)
        statuses = Counter(status for _m, _p, status in seen)
        figures.append(f"{name}: {len(over_http)} over HTTP + {len(seen) - len(over_http)} "
                       f"in-process, statuses {dict(sorted(statuses.items()))}")
        print(f"\n{figures[-1]}")
        errors_5xx = [(m, p, s) for m, p, s in seen if s >= 500]
        assert not errors_5xx, f"{name}: 5xx answers {errors_5xx[:10]}\n{server.log()[-3000:]}"

        after = _snapshot(server.db_url)
        accepted = [(m, p) for m, p, s in seen if 200 <= s < 300]
        may_change: set[str] = set()
        for (method, pattern), tables in WRITES.items():
            if any(m == method and re.match(pattern, p) for m, p in accepted):
                may_change |= tables
        for table, digest in before[name].items():
            if table in may_change or (may_change and DERIVED.match(table)):
                continue
            assert after[table] == digest, f"{name}: table {table} changed without an " \
                                           f"accepted write that may change it"
        reports_accepted = sum(1 for m, p, s in seen if m == "POST" and p == "/api/v1/reports"
                               and s == 202)
        engine = create_engine(normalize_url(server.db_url))
        with engine.connect() as conn:
            from kiemke.collector.db.tables import reports
            stored = conn.execute(select(func.count()).select_from(reports)).scalar()
        engine.dispose()
        assert stored == reports_accepted, f"{name}: {stored} reports stored, " \
                                           f"{reports_accepted} accepted"
        figures[-1] += f", {reports_accepted} reports accepted and stored"
    print(f"schemathesis: {total} requests in {elapsed:.0f} s, 0 5xx, 0 check failures")
    assert total >= MIN_REQUESTS, f"only {total} requests in {elapsed:.0f} s: " + "; ".join(figures)
