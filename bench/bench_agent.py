"""Agent benchmarks against the budget in ARCHITECTURE.md (docs/report-format.md).

    .venv/bin/python bench/bench_agent.py

- RSS of `kiemke-agent run` at a 1 s interval after 6 collections and after 300 (the
  steady figure the budget is judged on; KIEMKE_BENCH_AGENT_COLLECTIONS changes the
  count; about 6 minutes), with the curve sampled every 30 collections. The agent is
  enrolled with a real collector on loopback (plain HTTP, SQLite) and delivers every
  report; its network probes go to loopback only (a TCP probe and an HTTP HEAD probe
  of the collector, `localhost` for DNS, the collector check), and the probe
  allow-list holds it there.
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

sys.path.insert(0, str(REPO / "bench"))

from fleet import start_collector  # noqa: E402

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


def _conf(tmp: Path, server: str | None = None) -> Path:
    """The agent's config: probes off (local facts only), or, with `server`, the agent of
    bench_rss: enrolled, delivering, probing loopback only."""
    tmp.mkdir(parents=True, exist_ok=True)
    conf = tmp / "agent.conf"
    if server is None:
        head, network = "", """gateway_check = off
internet_probes =
dns_names =
dns_direct = false
check_collector = false
"""
    else:
        port = server.rsplit(":", 1)[1]
        head, network = f"server = {server}\n", f"""gateway_check = off
internet_probes = tcp://127.0.0.1:{port}, {server}/healthz
dns_names = localhost
dns_direct = false
check_collector = true
probe_timeout = 2
"""
    conf.write_text(f"""[agent]
{head}unit = Liên đoàn Lao động tỉnh Bắc Giang
state_dir = {tmp / 'state'}
interval = 1
jitter = 0
start_delay_max = 0
full_interval = 3600

[network]
{network}""", encoding="utf-8")
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


def bench_rss(tmp: Path, early: int = 6, collections: int = 300, every: int = 30
              ) -> tuple[float, float, float, list[tuple[int, float]]]:
    """RSS of `kiemke-agent run` (1 s interval) after `early` and after `collections`
    collections, how long the run took, and the curve (collections, MB) every `every`
    collections. The late figure is the steady one: glibc arenas and caches fill in the
    first minutes (issue 12: 33.8 MB after 6 collections, 35.7 MB after 300)."""
    collector = start_collector("sqlite", workers=1, threads=2)
    if collector is None:
        raise RuntimeError("the collector for the agent RSS bench did not start")
    env = {**os.environ, ALLOW_ENV: "127.0.0.0/8,::1"}
    try:
        unit = subprocess.run([sys.executable, "-m", "kiemke.collector", "units", "add",
                               "Liên đoàn Lao động tỉnh Bắc Giang"], env=collector.env,
                              cwd=REPO, capture_output=True, text=True, check=True).stdout
        token = subprocess.run([sys.executable, "-m", "kiemke.collector", "tokens", "create",
                                "--unit", unit.strip()], env=collector.env, cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        conf = _conf(tmp, collector.url)
        agent = [sys.executable, "-m", "kiemke.agent", "--config", str(conf)]
        subprocess.run([*agent, "enroll", f"--server={collector.url}", f"--token={token}"],
                       cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
        log_path = tmp / "run.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([*agent, "run"], cwd=REPO, env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
        started = time.monotonic()

        def collected() -> int:
            return log_path.read_text("utf-8", "replace").count("collected periodic report") \
                + log_path.read_text("utf-8", "replace").count("collected full report")

        def wait_for(n: int) -> None:
            deadline = time.monotonic() + 60 + 3 * n
            while time.monotonic() < deadline and collected() < n and proc.poll() is None:
                time.sleep(0.5)
            if collected() < n:
                raise RuntimeError(f"the agent made {collected()} of {n} collections:\n"
                                   + log_path.read_text("utf-8", "replace")[-2000:])

        try:
            wait_for(early)
            rss_early = _rss_max(proc.pid)
            curve = [(early, rss_early)]
            for n in range(every, collections + 1, every):
                wait_for(n)
                curve.append((n, _rss_max(proc.pid, samples=2)))
            wait_for(collections)
            late = _rss_max(proc.pid)
            curve[-1] = (collections, late)
            took = time.monotonic() - started
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        text = log_path.read_text("utf-8", "replace")
        if "ERROR" in text or "Traceback" in text:
            raise RuntimeError("the agent logged errors during the RSS bench:\n" + text[-2000:])
        return rss_early, late, took, curve
    finally:
        collector.stop()


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
            early, late, took, curve = bench_rss(rss_dir, collections=n)
            print("agent RSS curve (collections: MB): " + ", ".join(
                f"{c}: {mb:.1f}" for c, mb in curve), file=sys.stderr)
            mid = next((mb for c, mb in curve if c >= n // 2), late)
            rows[:0] = [
                row("agent RSS after 6 collections (run, delivering)", early, "MB", None),
                row(f"agent RSS growth, collection {n // 2} to {n}", late - mid, "MB", None),
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
