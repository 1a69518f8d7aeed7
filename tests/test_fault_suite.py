"""Fault suite with real processes: nothing accepted is lost or stored twice, no 500s.

100 simulated agents (threads that behave like the agent's delivery: spool in order,
retry with backoff and jitter, honour Retry-After) and 3 real `kiemke-agent run`
processes (each in its own mount namespace with its own /etc/machine-id, so they are
three machines) report to a real collector (gunicorn, 2 buffered workers) on a
PostgreSQL instance this test starts itself (tests/own_postgres.py). Meanwhile:
1. both gunicorn workers are SIGKILLed (one after the other);
2. the collector is stopped for 90 s and started again;
3. PostgreSQL is restarted, then stopped for 20 s and started again.
Asserted: every report a simulated agent made is stored exactly once; the real agents'
spools are empty with nothing dropped or refused (after one last `send`) and their
reports stored; no answer 500 (the
collector's log and the agents' counts); during the database outage the collector
answers 503 with Retry-After and logs the outage once per worker, not per request; the
collector accepts reports again <= 5 s after PostgreSQL is back.
Takes about 3 minutes (the 90 s outage is the issue's figure).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from pathlib import Path

import pytest
import requests
from conftest import (
    REPO,
    collector_cmd,
    free_port,
    missing_component,
    start_collector,
    stop_collector,
)
from own_postgres import OwnPostgres, find_bin
from reports import make_report
from sqlalchemy import create_engine, func, select

from kiemke.collector.db.engine import normalize_url
from kiemke.collector.db.tables import reports

SIM_AGENTS = 100
REAL_AGENTS = 3
REPORT_EVERY = 15.0  # seconds, per simulated agent (~7 reports/s in all)
REAL_INTERVAL = 3
COLLECTOR_DOWN = 90.0
DATABASE_DOWN = 20.0
RECOVERY_BUDGET = 5.0
BACKOFF_MAX = 3.0


class SimAgent(threading.Thread):
    """One machine: makes a report every REPORT_EVERY s, delivers its spool in order."""

    def __init__(self, url: str, machine_id: str, authorization: str,
                 generating: threading.Event, stopping: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.machine_id, self.authorization = url, machine_id, authorization
        self.generating, self.stopping = generating, stopping
        self.spool: deque[dict] = deque()
        self.made: list[str] = []
        self.statuses: Counter[str] = Counter()
        self.refused: list[str] = []

    def run(self) -> None:
        session = requests.Session()
        next_report = time.monotonic() + random.uniform(0, REPORT_EVERY)
        retry_at, attempt = 0.0, 0
        while not self.stopping.is_set():
            now = time.monotonic()
            if self.generating.is_set() and now >= next_report:
                report = make_report(machine_id=self.machine_id, hostname="PC-LUCNGAN")
                self.spool.append(report)
                self.made.append(report["report_id"])
                next_report = now + REPORT_EVERY
            if not self.spool or now < retry_at:
                time.sleep(0.05)
                continue
            try:
                resp = session.post(f"{self.url}/api/v1/reports", json=self.spool[0],
                                    timeout=30, headers={"Authorization": self.authorization})
            except requests.RequestException:
                self.statuses["connection error"] += 1
                session.close()
                session = requests.Session()
                attempt += 1
                retry_at = now + random.uniform(0, min(BACKOFF_MAX, 0.25 * 2 ** attempt))
                continue
            self.statuses[str(resp.status_code)] += 1
            if resp.status_code in (200, 202):
                self.spool.popleft()
                attempt = 0
            elif resp.status_code >= 500 or resp.status_code == 429:
                attempt += 1
                wait = resp.headers.get("Retry-After")
                delay = float(wait) if wait and wait.isdigit() else \
                    random.uniform(0, min(BACKOFF_MAX, 0.25 * 2 ** attempt))
                retry_at = now + min(delay, BACKOFF_MAX * 2)
            else:  # refused: a bug in this test or the collector; recorded, not retried
                self.refused.append(f"{resp.status_code} {resp.text[:200]}")
                self.spool.popleft()


class Probe(threading.Thread):
    """Sends a report every 0.2 s (ignoring Retry-After) and records when each answer
    came: it says when the collector accepted reports again."""

    def __init__(self, url: str, machine_id: str, authorization: str) -> None:
        super().__init__(daemon=True)
        self.url, self.machine_id, self.authorization = url, machine_id, authorization
        self.answers: list[tuple[float, int]] = []
        self.stopping = threading.Event()
        self.made: list[str] = []

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            report = make_report(machine_id=self.machine_id, hostname="PROBE")
            try:
                resp = requests.post(f"{self.url}/api/v1/reports", json=report, timeout=10,
                                     headers={"Authorization": self.authorization})
                status = resp.status_code
            except requests.RequestException:
                status = 0
            if status == 202:
                self.made.append(report["report_id"])
            self.answers.append((time.monotonic(), status))

    def first_accepted_after(self, moment: float) -> float | None:
        return next((t for t, s in self.answers if t >= moment and s == 202), None)


def _enroll(url: str, token: str, machine_id: str, hostname: str) -> str:
    resp = requests.post(f"{url}/api/v1/enroll", timeout=10, json={
        "token": token, "machine_id": machine_id, "hostname": hostname})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    return f"Bearer {body['agent_id']}.{body['secret']}"


def _worker_pids(arbiter: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == arbiter:
            pids.append(int(stat.parent.name))
    return pids


def _serve(server, port: int) -> subprocess.Popen:
    """Start `serve` again on the same port and database (after a stop)."""
    log = open(server.log_path, "ab")  # noqa: SIM115 - kept for the process lifetime
    proc = subprocess.Popen([*collector_cmd(), "serve", "--bind", f"127.0.0.1:{port}",
                             "--workers", "2"], env=server.env, cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc


class RealAgent:
    """`kiemke-agent run` in its own mount namespace, where /etc/machine-id differs."""

    def __init__(self, root: Path, url: str, index: int) -> None:
        self.root = root
        root.mkdir(parents=True)
        self.machine_file = root / "machine-id"
        self.machine_file.write_text(uuid.uuid4().hex + "\n", "ascii")
        self.conf = root / "agent.conf"
        self.conf.write_text(f"""[agent]
server = {url}
unit = Liên đoàn Lao động tỉnh Bắc Giang
state_dir = {root / 'state'}
interval = {REAL_INTERVAL}
jitter = 0
start_delay_max = 0
full_interval = 86400
retries = 2
timeout = 5
backoff_base = 0.5
backoff_max = 3

[network]
gateway_check = off
internet_probes = tcp://127.0.0.1:9
dns_names = localhost
probe_timeout = 0.5
check_collector = false
""", "utf-8")
        self.process: subprocess.Popen | None = None
        self.index = index

    def command(self, *args: str) -> list[str]:
        mounts = " && ".join(f"mount --bind {self.machine_file} {target}"
                             for target in ("/etc/machine-id", "/var/lib/dbus/machine-id")
                             if Path(target).exists())
        agent = " ".join([sys.executable, "-m", "kiemke.agent", "--config", str(self.conf),
                          *args])
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                f"{mounts} && exec {agent}"]

    def enroll(self, url: str, token: str) -> None:
        out = subprocess.run(self.command("enroll", "--server", url, f"--token={token}"),
                             capture_output=True, text=True, timeout=120, cwd=REPO)
        assert out.returncode == 0, out.stdout + out.stderr

    def start(self) -> None:
        self.process = subprocess.Popen(self.command("run"), cwd=REPO,
                                        stdout=open(self.root / "run.log", "wb"),  # noqa: SIM115
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def send(self) -> None:
        out = subprocess.run(self.command("send"), capture_output=True, text=True,
                             timeout=120, cwd=REPO)
        assert out.returncode == 0, out.stdout + out.stderr

    def status(self) -> dict:
        out = subprocess.run(self.command("status", "--json"), capture_output=True,
                             text=True, timeout=60, cwd=REPO)
        return json.loads(out.stdout)

    def machine_id(self) -> str:
        return json.loads((self.root / "state" / "credentials.json").read_text())["machine_id"]


def _until(predicate, timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def test_faults_lose_nothing_duplicate_nothing_and_answer_no_500(tmp_path: Path) -> None:
    if os.geteuid() != 0 or find_bin("initdb") is None:
        missing_component("the fault suite needs root (mount namespaces) and PostgreSQL's "
                          "initdb (/usr/lib/postgresql/*/bin)")
    pg = OwnPostgres(free_port())
    server = None
    real: list[RealAgent] = []
    sims: list[SimAgent] = []
    generating, stopping = threading.Event(), threading.Event()
    probe = None
    try:
        server = start_collector(pg.url, tmp_path / "collector", workers=2)
        port = int(server.url.rsplit(":", 1)[1])
        unit = server.create_unit("LĐLĐ huyện Lục Ngạn")
        token = server.create_token(unit)
        for i in range(SIM_AGENTS):
            machine_id = uuid.uuid4().hex
            sims.append(SimAgent(server.url, machine_id,
                                 _enroll(server.url, token, machine_id, f"PC-{i:03d}"),
                                 generating, stopping))
        probe_id = uuid.uuid4().hex
        probe = Probe(server.url, probe_id, _enroll(server.url, token, probe_id, "PROBE"))
        for i in range(REAL_AGENTS):
            agent = RealAgent(tmp_path / f"agent{i}", server.url, i)
            agent.enroll(server.url, token)
            real.append(agent)
        generating.set()
        for sim in sims:
            sim.start()
        for agent in real:
            agent.start()
        probe.start()
        started = time.monotonic()
        time.sleep(8)

        # 1. worker SIGKILLs: the arbiter replaces them; agents retry what was cut off.
        for pid in _worker_pids(server.process.pid)[:2]:
            os.kill(pid, signal.SIGKILL)
            time.sleep(3)

        # 2. the collector away for 90 s.
        stop_collector(server)
        time.sleep(COLLECTOR_DOWN)
        server.process = _serve(server, port)
        assert _until(lambda: probe.first_accepted_after(time.monotonic() - 0.5), 60), \
            server.log()[-3000:]

        # 3. PostgreSQL restarted, then away for 20 s.
        pg.restart()
        time.sleep(5)
        pg.stop()
        down_at = time.monotonic()
        time.sleep(DATABASE_DOWN)
        pg.start()
        back_at = time.monotonic()
        assert _until(lambda: probe.first_accepted_after(back_at) is not None, 30)
        recovery = probe.first_accepted_after(back_at) - back_at
        during = [s for t, s in probe.answers if down_at + 1 < t < back_at - 0.5]
        time.sleep(5)

        # Drain: no new reports, every spool delivered. The real agents are stopped and
        # then run `send` once, which delivers what their spool still holds.
        generating.clear()
        for agent in real:
            agent.stop()
        for agent in real:
            agent.send()
        assert _until(lambda: all(not s.spool for s in sims), 120), \
            [len(s.spool) for s in sims if s.spool][:10]
        elapsed = time.monotonic() - started
        stopping.set()
        probe.stopping.set()
        statuses = sum((s.statuses for s in sims), Counter())
        log = server.log()
    except BaseException:
        pg.destroy()
        raise
    finally:
        stopping.set()
        if probe is not None:
            probe.stopping.set()
        for agent in real:
            agent.stop()
        if server is not None:
            stop_collector(server)

    try:
        engine = create_engine(normalize_url(pg.url))
        with engine.connect() as conn:
            rows = conn.execute(select(reports.c.machine_id, reports.c.report_id)).all()
            per_machine = dict(conn.execute(select(reports.c.machine_id, func.count())
                                            .group_by(reports.c.machine_id)).all())
        engine.dispose()
    finally:
        pg.destroy()

    stored = Counter((m, r) for m, r in rows)
    made = {(s.machine_id, rid) for s in sims for rid in s.made}
    lost = [key for key in made if key not in stored]
    duplicated = [key for key, n in stored.items() if n > 1]
    access = Counter(int(m) for m in re.findall(r'"POST /api/v1/reports HTTP/1\.1" (\d{3}) ',
                                                 log))
    outage_lines = log.count("database unavailable, answering 503")
    print(f"\nfault suite: {elapsed:.0f} s; {len(made)} reports made by {SIM_AGENTS} simulated "
          f"agents, lost {len(lost)}, duplicated {len(duplicated)}; agents' answers "
          f"{dict(statuses)}; collector answers {dict(sorted(access.items()))}; recovery "
          f"{recovery:.2f} s after PostgreSQL was back; probe answers while it was down "
          f"{dict(Counter(during))}; outage log lines {outage_lines}; real agents' reports "
          f"{[per_machine.get(a.machine_id(), 0) for a in real]}")
    assert not lost, f"{len(lost)} reports lost, e.g. {lost[:3]}"
    assert not duplicated, duplicated[:3]
    assert not any(s.refused for s in sims), [s.refused for s in sims if s.refused][:3]
    assert statuses["500"] == 0 and access[500] == 0, (statuses, access)
    assert "Traceback" not in log, log[log.find("Traceback") - 500:][:4000]
    assert recovery <= RECOVERY_BUDGET, f"recovery took {recovery:.2f} s"
    assert during and set(during) <= {503}, Counter(during)
    # One line per worker process per outage (workers are separate processes), not one
    # per request: the probe alone made ~100 requests while the database was away. Two
    # workers and two outages (restart, 20 s stop) give 4; a worker that gunicorn respawned
    # after a SIGKILL meets an outage with its own first line (seen once in CI: 5).
    assert 1 <= outage_lines <= 6, outage_lines
    for agent in real:
        # The agent's own accounting: nothing waiting, nothing dropped, nothing refused.
        spool = agent.status()["spool"]
        assert (spool["pending"], spool["dropped_total"], spool["rejected_total"]) == \
            (0, 0, 0), spool
        assert per_machine.get(agent.machine_id(), 0) >= 2, per_machine


pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux namespaces")
