"""Agent benchmarks against the budget in ARCHITECTURE.md (docs/report-format.md).

    .venv/bin/python bench/bench_agent.py

- RSS of `kiemke-agent run` at a 1 s interval after 6 collections and after 300 (the
  steady figure the budget is judged on; KIEMKE_BENCH_AGENT_COLLECTIONS changes the
  count; about 5 minutes). Not enrolled, so reports only go to the spool; no probes.
- CPU time and wall time per collection of local facts (network probes off)
- periodic report size (compact JSON) and full inventory size (gzipped)

main() returns rows {"name", "value", "unit", "budget", "ok"} for bench/run.py.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kiemke.agent.collectors.base import Context  # noqa: E402
from kiemke.agent.config import AgentConfig, load_config  # noqa: E402
from kiemke.agent.probe_policy import ALLOW_ENV  # noqa: E402
from kiemke.agent.report import build_report, encode, encode_gzip  # noqa: E402

RSS_BUDGET_MB = 35.0
CPU_BUDGET_MS = 20.0
WALL_BUDGET_MS = 100.0
PERIODIC_BUDGET_B = 4096


def row(name: str, value: float, unit: str, budget: float | None) -> dict[str, Any]:
    return {"name": name, "value": round(value, 2), "unit": unit, "budget": budget,
            "ok": None if budget is None else value <= budget}


def _conf(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "agent.conf"
    conf.write_text(f"""[agent]
unit = Liên đoàn Lao động tỉnh Bắc Giang
state_dir = {tmp / 'state'}
interval = 1
jitter = 0
start_delay_max = 0
full_interval = 3600

[network]
gateway_check = off
internet_probes =
dns_names =
dns_direct = false
check_collector = false
""", encoding="utf-8")
    return conf


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _rss_max(pid: int, samples: int = 5) -> float:
    values = []
    for _ in range(samples):
        values.append(_rss_kb(pid))
        time.sleep(0.3)
    return max(values) / 1024


def bench_rss(tmp: Path, early: int = 6, collections: int = 300) -> tuple[float, float, float]:
    """RSS of `kiemke-agent run` (1 s interval) after `early` and after `collections`
    collections, and how long the run took. The late figure is the steady one: glibc
    arenas and caches filled in the first minutes (issue 12: 33.8 MB after 6 collections,
    35.7 MB after 300)."""
    proc = subprocess.Popen([sys.executable, "-m", "kiemke.agent", "--config",
                             str(_conf(tmp)), "run"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    try:
        spool = tmp / "state" / "spool"

        def wait_for(n: int) -> None:
            deadline = time.monotonic() + 60 + 3 * n
            while time.monotonic() < deadline and len(list(spool.glob("*.json.gz"))) < n:
                time.sleep(0.5)

        wait_for(early)
        rss_early = _rss_max(proc.pid)
        wait_for(collections)
        return rss_early, _rss_max(proc.pid), time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench_collection(tmp: Path, runs: int = 20) -> tuple[float, float, float, float]:
    cfg: AgentConfig = load_config(_conf(tmp), env={})
    (tmp / "state").mkdir(exist_ok=True)
    build_report(cfg, "periodic", Context(config=cfg, state_dir=tmp / "state"))  # warm up
    cpu, wall = [], []
    for _ in range(runs):
        c0, w0 = time.process_time(), time.perf_counter()
        build_report(cfg, "periodic", Context(config=cfg, state_dir=tmp / "state"))
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - w0) * 1000)
    periodic = len(encode(build_report(cfg, "periodic",
                                       Context(config=cfg, state_dir=tmp / "state"))))
    full = build_report(cfg, "full", Context(config=cfg, state_dir=tmp / "state"))
    return statistics.median(cpu), statistics.median(wall), periodic, len(encode_gzip(full))


def main() -> list[dict[str, Any]]:
    # The probe allow-list holds this process and the agents it starts to loopback.
    os.environ[ALLOW_ENV] = "127.0.0.0/8,::1"
    with tempfile.TemporaryDirectory(prefix="kiemke-bench-") as d:
        cpu, wall, periodic, full_gz = bench_collection(Path(d) / "inproc")
        rows = [
            row("agent CPU per collection (median)", cpu, "ms", CPU_BUDGET_MS),
            row("agent wall per collection (median)", wall, "ms", WALL_BUDGET_MS),
            row("periodic report size (JSON)", periodic, "bytes", PERIODIC_BUDGET_B),
            row("full inventory size (gzip)", full_gz, "bytes", None),
        ]
        if sys.platform.startswith("linux"):
            rss_dir = Path(d) / "rss"
            rss_dir.mkdir()
            n = int(os.environ.get("KIEMKE_BENCH_AGENT_COLLECTIONS", "300"))
            early, late, took = bench_rss(rss_dir, collections=n)
            rows[:0] = [
                row("agent RSS after 6 collections (run)", early, "MB", None),
                row(f"agent steady RSS after {n} collections (run, {took:.0f} s)", late,
                    "MB", RSS_BUDGET_MB),
            ]
    return rows


if __name__ == "__main__":
    results = main()
    for r in results:
        budget = "" if r["budget"] is None else f"budget {r['budget']} {r['unit']}"
        verdict = {True: "ok", False: "OVER", None: ""}[r["ok"]]
        print(f"{r['name']:<40} {r['value']:>10} {r['unit']:<6} {budget:<22} {verdict}")
    sys.exit(0 if all(r["ok"] is not False for r in results) else 1)
