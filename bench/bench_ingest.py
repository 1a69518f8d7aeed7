"""Ingest benchmark: max reports/s and latency at 1,000 reports/s, SQLite and PostgreSQL.

The collector runs under gunicorn (2 workers x 4 threads, kiemke's buffered worker) on
127.0.0.1; bench_worker_models() measures that worker against plain gthread.
- closed loop (max throughput): wrk (C, deploy/install-bench-deps.sh) with
  bench/ingest.lua, WRK_CONNECTIONS keep-alive connections, each sending the next report
  as soon as the previous answer arrives, for CLOSED_SECONDS; every request a fresh
  report_id. Without wrk, the Python generator below is used (and said so in the row).
  The server's and the generator's CPU time are measured (/proc, getrusage), so the
  table shows the collector's CPU per report and whether the generator was the limit.
- open loop (Python, separate processes, keep-alive http.client connections): sends
  are scheduled at a fixed total rate (1,000/s) regardless of answers;
  latency is measured from each send's *scheduled* time, so a stalled collector shows
  up as queueing delay instead of being hidden (no coordinated omission).
Every report has a fresh report_id, so every request is a real insert.
Note the generator shares the 2 cores with the collector: figures are a lower bound.
"""

from __future__ import annotations

import http.client
import multiprocessing as mp
import os
import re
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fleet import Agent, enroll_fleet, start_collector

AGENTS = int(os.environ.get("KIEMKE_BENCH_AGENTS", "300"))
PROCESSES = int(os.environ.get("KIEMKE_BENCH_PROCESSES", "3"))
CONNECTIONS = int(os.environ.get("KIEMKE_BENCH_CONNECTIONS", "4"))  # per process
CLOSED_SECONDS = float(os.environ.get("KIEMKE_BENCH_SECONDS", "10"))
OPEN_RATE = 1000.0
OPEN_SECONDS = float(os.environ.get("KIEMKE_BENCH_OPEN_SECONDS", "10"))
BUDGET = {"sqlite": 2000.0, "postgres": 1500.0}
P99_BUDGET_MS = 25.0
WRK_CONNECTIONS = int(os.environ.get("KIEMKE_BENCH_WRK_CONNECTIONS", "16"))
LUA = Path(__file__).resolve().parent / "ingest.lua"
LATE_CUTOFF = 5.0  # seconds past the open-loop window after which sends are abandoned


def _post(conn: http.client.HTTPConnection, agent: Agent) -> int:
    conn.request("POST", "/api/v1/reports", body=agent.body(), headers={
        "Authorization": agent.authorization, "Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    return resp.status


def _worker(mode: str, url: str, agents: list[Agent], start_at: float, seconds: float,
            rate: float, out: Any) -> None:
    """One load process: CONNECTIONS threads; results (statuses, latencies) to `out`."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        local_lat: list[float] = []
        local_st: dict[int, int] = {}
        i = index
        while True:
            if mode == "closed":
                now = time.time()
                if now >= start_at + seconds:
                    break
                scheduled = now
            else:
                scheduled = start_at + i / rate  # this process's share of the fixed rate
                if scheduled >= start_at + seconds:
                    break
                if time.time() > start_at + seconds + LATE_CUTOFF:
                    # Bounded run: a collector that cannot keep up leaves sends unsent;
                    # they count as missed, not as latency.
                    local_st[-1] = local_st.get(-1, 0) + 1
                    i += CONNECTIONS
                    continue
                delay = scheduled - time.time()
                if delay > 0:
                    time.sleep(delay)
            try:
                status = _post(conn, agents[i % len(agents)])
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
                status = 0
            local_lat.append(time.time() - scheduled)
            local_st[status] = local_st.get(status, 0) + 1
            i += CONNECTIONS
        conn.close()
        with lock:
            latencies.extend(local_lat)
            for key, value in local_st.items():
                statuses[key] = statuses.get(key, 0) + value

    while time.time() < start_at:
        time.sleep(0.001)
    threads = [threading.Thread(target=run, args=(k,)) for k in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put((statuses, latencies))


def _load(mode: str, url: str, agents: list[Agent], seconds: float,
          rate: float = 0.0) -> tuple[dict[int, int], list[float], float]:
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=_worker, args=(mode, url, agents[p::PROCESSES], start_at,
                                               seconds, rate / PROCESSES, out))
             for p in range(PROCESSES)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join()
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    for st, lat in results:
        latencies += lat
        for key, value in st.items():
            statuses[key] = statuses.get(key, 0) + value
    return statuses, sorted(latencies), time.time() - start_at


def _group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) of every live process in a process group (the collector:
    gunicorn arbiter and workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after "(comm)": state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])
    return total / tick


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wrk_closed(url: str, agents: list[Agent], seconds: float) -> dict[str, Any]:
    """Closed loop with wrk; {"accepted", "errors", "p99_ms"} from its summary line."""
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as out:
        for agent in agents:
            out.write(agent.authorization.encode() + b"\n" + agent.template + b"\n")
    try:
        result = subprocess.run(
            ["wrk", "-t", "2", "-c", str(WRK_CONNECTIONS), "-d", f"{max(1, round(seconds))}s",
             "--timeout", "10s", "-s", str(LUA), url],
            env={**os.environ, "KIEMKE_WRK_REQUESTS": out.name}, capture_output=True,
            text=True, timeout=seconds + 60)
    finally:
        os.unlink(out.name)
    found = re.search(r"KIEMKE_WRK requests=(\d+) errors_status=(\d+) connect=(\d+) "
                      r"read=(\d+) write=(\d+) timeout=(\d+) p50_us=(\d+) p99_us=(\d+)",
                      result.stdout)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed: {result.stdout}\n{result.stderr}")
    requests, status, *socket_errors, _p50, p99 = (int(v) for v in found.groups())
    errors = status + sum(socket_errors)
    return {"accepted": requests - status, "errors": errors, "p99_ms": p99 / 1000}


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def bench_backend(backend: str) -> list[dict[str, Any]]:
    collector = start_collector(backend)
    if collector is None:
        return [{"name": f"ingest {backend}", "value": float("nan"), "unit": "reports/s",
                 "budget": "PostgreSQL unreachable: not measured", "ok": False}]
    try:
        agents = enroll_fleet(collector, AGENTS)
        use_wrk = shutil.which("wrk") is not None
        server0, gen0 = _group_cpu_seconds(collector.process.pid), _children_cpu_seconds()
        if use_wrk:
            _wrk_closed(collector.url, agents, 2)  # warm-up: pools, caches
            server0, gen0 = _group_cpu_seconds(collector.process.pid), _children_cpu_seconds()
            closed = _wrk_closed(collector.url, agents, CLOSED_SECONDS)
            accepted, errors = closed["accepted"], closed["errors"]
        else:
            _load("closed", collector.url, agents, 1.5)  # warm-up: pools, caches
            server0 = _group_cpu_seconds(collector.process.pid)
            statuses, _lat, elapsed = _load("closed", collector.url, agents, CLOSED_SECONDS)
            accepted = statuses.get(202, 0)
            errors = sum(v for k, v in statuses.items() if k != 202)
        server_cpu = _group_cpu_seconds(collector.process.pid) - server0
        gen_cpu = _children_cpu_seconds() - gen0 if use_wrk else float("nan")
        throughput = accepted / CLOSED_SECONDS
        cpu_ms = server_cpu * 1000 / max(accepted + errors, 1)
        statuses_o, lat, _ = _load("open", collector.url, agents, OPEN_SECONDS, OPEN_RATE)
        errors_o = sum(v for k, v in statuses_o.items() if k not in (202, -1))
        missed = statuses_o.get(-1, 0)
        p50, p99 = _pct(lat, 0.50) * 1000, _pct(lat, 0.99) * 1000
        sent_rate = (sum(statuses_o.values()) - missed) / OPEN_SECONDS
        log = (collector.data_dir / "server.log").read_text("utf-8", "replace")
        locked = log.count("database is locked")
    finally:
        collector.stop()
    name = "SQLite" if backend == "sqlite" else "PostgreSQL"
    generator = "wrk" if use_wrk else "Python generator"
    cores = os.cpu_count() or 1
    return [
        {"name": f"ingest {name} max throughput ({generator}, {cores} cores shared)",
         "value": round(throughput, 1),
         "unit": "reports/s", "budget": f">= {BUDGET[backend]:,.0f}",
         "ok": throughput >= BUDGET[backend] and errors == 0},
        {"name": f"ingest {name} collector CPU per report (all processes)",
         "value": round(cpu_ms, 3), "unit": "ms",
         "budget": f"<= {cores * 1000 / BUDGET[backend]:.2f} to reach the budget",
         "ok": cpu_ms <= cores * 1000 / BUDGET[backend]},
        {"name": f"ingest {name} CPU: collector / load generator over {CLOSED_SECONDS:g} s",
         "value": f"{server_cpu:.1f} / {gen_cpu:.1f}", "unit": "s", "budget": None,
         "ok": None},
        {"name": f"ingest {name} errors (closed loop, {accepted + errors} sent)",
         "value": errors, "unit": "requests", "budget": "0", "ok": errors == 0},
        {"name": f"ingest {name} p50 at {OPEN_RATE:,.0f}/s", "value": round(p50, 2),
         "unit": "ms", "budget": None, "ok": None},
        {"name": f"ingest {name} p99 at {OPEN_RATE:,.0f}/s ({sent_rate:,.0f}/s sent)",
         "value": round(p99, 2), "unit": "ms", "budget": f"<= {P99_BUDGET_MS:g}",
         "ok": p99 <= P99_BUDGET_MS and errors_o == 0 and missed == 0},
        {"name": f"ingest {name} sends missed at {OPEN_RATE:,.0f}/s", "value": missed,
         "unit": "requests", "budget": "0", "ok": missed == 0},
        {"name": f"ingest {name} 'database is locked' in log", "value": locked,
         "unit": "lines", "budget": "0", "ok": locked == 0},
    ]


MODEL_SECONDS = float(os.environ.get("KIEMKE_BENCH_MODEL_SECONDS", "8"))


def bench_worker_models() -> list[dict[str, Any]]:
    """The cost of the server model: `serve` uses kiemke's buffered worker (the event loop
    reads whole requests before a thread runs them: docs/deployment.md, "Server model");
    the same closed-loop ingest on SQLite with gunicorn's plain gthread worker is the
    floor it is judged against, measured in the same run, one after the other."""
    if shutil.which("wrk") is None:
        return [{"name": "ingest buffered worker / gthread", "value": float("nan"),
                 "unit": "ratio", "budget": "wrk missing: not measured", "ok": False}]
    rates: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for model in ("gthread", "buffered"):
        collector = start_collector("sqlite", worker=model)
        assert collector is not None
        try:
            agents = enroll_fleet(collector, AGENTS)
            _wrk_closed(collector.url, agents, 2)  # warm-up
            server0 = _group_cpu_seconds(collector.process.pid)
            closed = _wrk_closed(collector.url, agents, MODEL_SECONDS)
            rates[model] = closed["accepted"] / MODEL_SECONDS
            cpu[model] = (_group_cpu_seconds(collector.process.pid) - server0) * 1000 / \
                max(closed["accepted"] + closed["errors"], 1)
        finally:
            collector.stop()
    ratio = rates["buffered"] / rates["gthread"] if rates["gthread"] else float("nan")
    return [
        {"name": "ingest SQLite, gthread worker (floor)", "value": round(rates["gthread"], 1),
         "unit": "reports/s", "budget": None, "ok": None},
        {"name": "ingest SQLite, buffered worker (serve's default)",
         "value": round(rates["buffered"], 1), "unit": "reports/s", "budget": None,
         "ok": None},
        {"name": "ingest buffered / gthread throughput", "value": round(ratio, 3),
         "unit": "ratio", "budget": ">= 0.9", "ok": ratio >= 0.9},
        {"name": "collector CPU per report, buffered / gthread",
         "value": f"{cpu['buffered']:.3f} / {cpu['gthread']:.3f}", "unit": "ms",
         "budget": None, "ok": None},
    ]


def main() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for backend in ("sqlite", "postgres"):
        rows += bench_backend(backend)
    rows += bench_worker_models()
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
