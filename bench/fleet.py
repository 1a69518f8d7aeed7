"""A simulated fleet: a collector under gunicorn, N enrolled agents, varied ~3 KB reports.

Used by bench_ingest.py. The collector runs as `kiemke-collector serve` (subprocess,
gunicorn, loopback only); agents are enrolled over HTTP like real ones.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from reports import make_report  # noqa: E402 - tests/ holds the shared report builder

from kiemke.schema.digest import facts_digest  # noqa: E402

PG_ADMIN_URL = os.environ.get("KIEMKE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REPORT_ID_MARK = b"00000000-0000-4000-8000-000000000000"

UNITS = ["Liên đoàn Lao động tỉnh Bắc Giang", "LĐLĐ huyện Lục Ngạn", "LĐLĐ huyện Yên Thế",
         "Công đoàn ngành Giáo dục", "Công đoàn Viên chức tỉnh"]
MODELS = [("Dell Inc.", "OptiPlex 7070", "desktop"), ("HP", "ProDesk 400 G7", "desktop"),
          ("LENOVO", "ThinkPad T14 Gen 2", "laptop"), ("ASUSTeK", "ExpertCenter D500", "desktop"),
          ("Dell Inc.", "Latitude 5420", "laptop")]
OSES = [("Microsoft Windows 10 Pro", "10.0.19045", "19045", False),
        ("Microsoft Windows 11 Pro", "10.0.22631", "22631", True),
        ("Microsoft Windows 7 Professional", "6.1.7601", "7601", False)]
AVS = [("Bkav Pro", "Bkav"), ("Kaspersky Endpoint Security", "Kaspersky"),
       ("Windows Defender", "Microsoft"), ("CMC Antivirus", "CMC Cyber Security")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def varied_report(rng: random.Random, machine_id: str, hostname: str) -> dict[str, Any]:
    maker, model, chassis = rng.choice(MODELS)
    os_name, version, build, supported = rng.choice(OSES)
    av_name, av_vendor = rng.choice(AVS)
    year = rng.randint(2012, 2023)
    return make_report(
        machine_id, hostname=hostname,
        hardware={"manufacturer": maker, "model": model, "chassis": chassis,
                  "serial": uuid.UUID(int=rng.getrandbits(128)).hex[:8].upper(),
                  "memory_bytes": rng.choice([4, 8, 16, 32]) * 1024 ** 3,
                  "firmware": {"release_date": f"{year}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"},
                  "manufacture_date": {"value": f"{year}-06-01", "estimated": True,
                                       "evidence": [{"source": "firmware_date",
                                                     "date": f"{year}-06-01"}]}},
        os={"name": os_name, "version": version, "build": build, "supported": supported},
        antivirus={"products": [{"name": av_name, "vendor": av_vendor, "enabled": rng.random() > .1,
                                 "state": "on", "up_to_date": rng.random() > .2,
                                 "signatures_age_days": round(rng.random() * 10, 1),
                                 "licensed": rng.random() > .15,
                                 "detected_by": "securitycenter2"}]},
        network={"interfaces": [{"name": "Ethernet", "mac": ":".join(
            f"{rng.randrange(256):02X}" for _ in range(6)), "up": True, "speed_mbps": 1000,
            "kind": "wired", "addresses": [{"family": "ipv4", "prefixlen": 24,
                                            "address": f"10.20.{rng.randrange(256)}."
                                                       f"{rng.randrange(1, 255)}"}]}]},
    )


@dataclass
class Agent:
    machine_id: str
    authorization: str
    template: bytes  # the report as JSON with REPORT_ID_MARK where report_id goes
    report: dict[str, Any] = field(default_factory=dict)  # the same as a dict

    def body(self) -> bytes:
        return self.template.replace(REPORT_ID_MARK, str(uuid.uuid4()).encode(), 1)


def _encode(report: dict[str, Any]) -> bytes:
    return json.dumps(report, ensure_ascii=False, separators=(",", ":")).encode()


def unchanged_agents(collector: Collector, agents: list[Agent]) -> list[Agent]:
    """Agents whose next reports repeat their facts, as a real agent sends them: each
    posts its report in full now (collected now: the facts key holds the clock offset
    minute, so measure within ~30 s), then sends only `unchanged` reports
    (docs/report-format.md, "Unchanged reports")."""
    from kiemke.schema.digest import unchanged_form

    session = requests.Session()
    out: list[Agent] = []
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for agent in agents:
        report = {**agent.report, "collected_at": now, "report_id": str(uuid.uuid4())}
        resp = session.post(f"{collector.url}/api/v1/reports", data=_encode(report),
                            headers={"Authorization": agent.authorization,
                                     "Content-Type": "application/json"}, timeout=30)
        if resp.status_code != 202 or resp.json().get("facts_digest") != report["facts_digest"]:
            raise RuntimeError(f"full report not held: {resp.status_code} {resp.text}")
        slim = unchanged_form({**report, "report_id": REPORT_ID_MARK.decode()})
        out.append(Agent(agent.machine_id, agent.authorization, _encode(slim), slim))
    session.close()
    return out


@dataclass
class Collector:
    url: str
    db_url: str
    data_dir: Path
    process: subprocess.Popen
    env: dict[str, str]
    cleanup: list[Any] = field(default_factory=list)
    code: Path = REPO  # the checkout it runs (start_collector's `code`)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        for func in reversed(self.cleanup):
            func()


def _cli(env: dict[str, str], *args: str, cwd: Path = REPO) -> str:
    result = subprocess.run([sys.executable, "-m", "kiemke.collector", *args], env=env,
                            cwd=cwd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"kiemke-collector {' '.join(args)}: {result.stderr}")
    return result.stdout.strip()


def postgres_database() -> tuple[str, Any] | None:
    """A fresh database and its drop function, or None when PostgreSQL is unreachable."""
    import psycopg

    name = f"kiemke_b_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0')
    except psycopg.Error:
        return None

    def drop() -> None:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}", drop


def start_collector(backend: str, workers: int = 2, threads: int = 4,
                    worker: str = "buffered", code: Path | None = None) -> Collector | None:
    """`code`: run another checkout of kiemke (a baseline for A/B in the same run)."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"kiemke-bench-{backend}-"))
    cleanup: list[Any] = [lambda: shutil.rmtree(data_dir, ignore_errors=True)]
    if backend == "postgres":
        made = postgres_database()
        if made is None:
            shutil.rmtree(data_dir, ignore_errors=True)
            return None
        db_url = made[0]
        cleanup.append(made[1])
    else:
        db_url = f"sqlite:///{data_dir / 'kiemke.db'}"
    env = {**os.environ, "KIEMKE_DATABASE_URL": db_url, "KIEMKE_DATA_DIR": str(data_dir),
           "KIEMKE_LOG_LEVEL": "WARNING"}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    _cli(env, "db", "upgrade", cwd=code or REPO)
    port = free_port()
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - owned by the subprocess
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiemke.collector", "serve", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--threads", str(threads), "--worker", worker],
        env=env, cwd=code or REPO, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    log.close()
    collector = Collector(f"http://127.0.0.1:{port}", db_url, data_dir, proc, env, cleanup,
                          code or REPO)
    return _ready(collector, "collector")


def _ready(server: Collector, what: str) -> Collector:
    """Wait up to 30 s for /readyz; stop the server and raise with its log otherwise."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return server
        except requests.RequestException:
            pass
        if server.process.poll() is not None:
            break
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{what} did not start:\n{(server.data_dir / 'server.log').read_text()}")


def start_floor(mode: str, backend: str, workers: int = 2, threads: int = 4
                ) -> Collector | None:
    """bench/floor_app.py (echo or store) under gunicorn with serve's settings."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"kiemke-floor-{mode}-{backend}-"))
    cleanup: list[Any] = [lambda: shutil.rmtree(data_dir, ignore_errors=True)]
    if backend == "postgres":
        made = postgres_database()
        if made is None:
            shutil.rmtree(data_dir, ignore_errors=True)
            return None
        db_url = made[0]
        cleanup.append(made[1])
    else:
        db_url = f"sqlite:///{data_dir / 'floor.db'}"
    port = free_port()
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - owned by the subprocess
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "floor_app.py"), mode, db_url,
         f"127.0.0.1:{port}", str(workers), str(threads)],
        env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    floor = Collector(f"http://127.0.0.1:{port}", db_url, data_dir, proc, {}, cleanup)
    return _ready(floor, "floor")


def enroll_fleet(collector: Collector, n: int, seed: int = 1,
                 digest: bool = True) -> list[Agent]:
    """Units in a 2-level tree, one enrolment token per unit, n agents spread over them."""
    env, cwd = collector.env, collector.code
    root = _cli(env, "units", "add", UNITS[0], cwd=cwd)
    unit_ids = [root] + [_cli(env, "units", "add", name, "--parent", root, cwd=cwd)
                         for name in UNITS[1:]]
    tokens = [_cli(env, "tokens", "create", "--unit", uid, cwd=cwd) for uid in unit_ids]
    rng = random.Random(seed)
    session = requests.Session()
    agents: list[Agent] = []
    for i in range(n):
        machine_id = uuid.UUID(int=rng.getrandbits(128)).hex
        hostname = f"PC-{i:05d}"
        resp = session.post(f"{collector.url}/api/v1/enroll", timeout=10, json={
            "token": tokens[i % len(tokens)], "machine_id": machine_id, "hostname": hostname})
        resp.raise_for_status()
        cred = resp.json()
        report = varied_report(rng, machine_id, hostname)
        report["report_id"] = REPORT_ID_MARK.decode()
        if digest:  # as the agent sends it (a baseline collector may not know the field)
            report["facts_digest"] = facts_digest(report)
        agents.append(Agent(machine_id, f"Bearer {cred['agent_id']}.{cred['secret']}",
                            _encode(report), report))
    return agents
