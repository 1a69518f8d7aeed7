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

from fleet import Agent, enroll_fleet, start_collector, start_floor, unchanged_agents

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


ROUNDS = int(os.environ.get("KIEMKE_BENCH_ROUNDS", "2"))
BASELINE = os.environ.get("KIEMKE_BENCH_BASELINE", "")
# The baseline on unchanged reports too (it must know `facts_digest`): the A/B of a change
# to the unchanged path.
BASELINE_UNCHANGED = os.environ.get("KIEMKE_BENCH_BASELINE_UNCHANGED", "") == "1"
FLOOR_RATIO = 0.8  # kiemke's ingest goal against the echo floor of the same run
CPU_BUDGET_MS = 1.0  # collector CPU per report
UNCHANGED_BUDGET_MS = 0.3  # an unchanged report, above the echo floor's CPU


def _closed(server: Any, agents: list[Agent], seconds: float) -> dict[str, float]:
    """One closed-loop wrk run: reports/s, collector CPU ms per request, wrk's p99."""
    _wrk_closed(server.url, agents, 2)  # warm-up: pools, caches
    cpu0 = _group_cpu_seconds(server.process.pid)
    run = _wrk_closed(server.url, agents, seconds)
    cpu = _group_cpu_seconds(server.process.pid) - cpu0
    return {"rate": run["accepted"] / seconds, "errors": run["errors"],
            "cpu_ms": cpu * 1000 / max(run["accepted"] + run["errors"], 1),
            "p99_ms": run["p99_ms"]}


def _median(runs: list[dict[str, float]], key: str) -> float:
    values = sorted(r[key] for r in runs)
    return values[len(values) // 2] if values else float("nan")


def _open(server: Any, agents: list[Agent]) -> dict[str, float]:
    statuses, lat, _ = _load("open", server.url, agents, OPEN_SECONDS, OPEN_RATE)
    missed = statuses.get(-1, 0)
    return {"p50": _pct(lat, 0.50) * 1000, "p99": _pct(lat, 0.99) * 1000, "missed": missed,
            "errors": sum(v for k, v in statuses.items() if k not in (200, 202, -1)),
            "sent_rate": (sum(statuses.values()) - missed) / OPEN_SECONDS}


def bench_backend(backend: str) -> list[dict[str, Any]]:
    """The echo floor, the store floor and kiemke (full reports, then unchanged ones),
    each its own gunicorn with serve's settings, measured in turn ROUNDS times (medians),
    then the open loop at 1,000/s on the echo floor and on kiemke."""
    name = "SQLite" if backend == "sqlite" else "PostgreSQL"
    if shutil.which("wrk") is None:
        return [{"name": f"ingest {name}", "value": float("nan"), "unit": "reports/s",
                 "budget": "wrk missing (make bench-deps): not measured", "ok": False}]
    servers: list[Any] = []
    try:
        echo, store = start_floor("echo", backend), start_floor("store", backend)
        collector = start_collector(backend)
        # KIEMKE_BENCH_BASELINE: another checkout (e.g. `git archive main`), measured in
        # the same rounds on full reports: the before of an A/B.
        baseline = start_collector(backend, code=Path(BASELINE)) if BASELINE else None
        servers = [s for s in (echo, store, collector, baseline) if s is not None]
        if echo is None or store is None or collector is None:
            return [{"name": f"ingest {name}", "value": float("nan"), "unit": "reports/s",
                     "budget": "PostgreSQL unreachable: not measured", "ok": False}]
        agents = enroll_fleet(collector, AGENTS)
        base_agents = enroll_fleet(baseline, AGENTS, digest=BASELINE_UNCHANGED) \
            if baseline else []
        runs: dict[str, list[dict[str, float]]] = {
            k: [] for k in ("echo", "store", "baseline", "baseline_unchanged", "full",
                            "unchanged")}
        for _ in range(ROUNDS):
            runs["echo"].append(_closed(echo, agents, CLOSED_SECONDS))
            runs["store"].append(_closed(store, agents, CLOSED_SECONDS))
            if baseline is not None:
                runs["baseline"].append(_closed(baseline, base_agents, CLOSED_SECONDS))
                if BASELINE_UNCHANGED:
                    runs["baseline_unchanged"].append(_closed(
                        baseline, unchanged_agents(baseline, base_agents), CLOSED_SECONDS))
            runs["full"].append(_closed(collector, agents, CLOSED_SECONDS))
            runs["unchanged"].append(_closed(collector, unchanged_agents(collector, agents),
                                             CLOSED_SECONDS))
        open_echo = _open(echo, agents)
        open_full = _open(collector, agents)
        open_unchanged = _open(collector, unchanged_agents(collector, agents))
        log = (collector.data_dir / "server.log").read_text("utf-8", "replace")
        locked = log.count("database is locked")
    finally:
        for server in servers:
            server.stop()
    med = {k: {m: _median(v, m) for m in ("rate", "cpu_ms", "p99_ms")} for k, v in runs.items()}
    errors = {k: sum(r["errors"] for r in v) for k, v in runs.items()}
    floor = med["echo"]["rate"]
    goal = max(BUDGET[backend], FLOOR_RATIO * floor)
    rows: list[dict[str, Any]] = []
    for key, what in (("echo", "echo floor (parse JSON, 202)"),
                      ("store", "store floor (+ one INSERT committed per request)")):
        rows.append({"name": f"ingest {name} {what}", "value": round(med[key]["rate"], 1),
                     "unit": "reports/s", "budget": None, "ok": None})
        rows.append({"name": f"ingest {name} {key} floor CPU per request / wrk p99",
                     "value": f"{med[key]['cpu_ms']:.3f} / {med[key]['p99_ms']:.1f}",
                     "unit": "ms", "budget": None, "ok": None})
    if runs["baseline"]:
        rate, cpu = med["baseline"]["rate"], med["baseline"]["cpu_ms"]
        rows.append({"name": f"ingest {name} BASELINE ({BASELINE}) full reports: reports/s, "
                             f"x echo, CPU ms/report",
                     "value": f"{rate:,.0f} / {rate / floor:.2f} / {cpu:.2f}", "unit": "",
                     "budget": None, "ok": None})
    if runs["baseline_unchanged"]:
        rate, cpu = med["baseline_unchanged"]["rate"], med["baseline_unchanged"]["cpu_ms"]
        rows.append({"name": f"ingest {name} BASELINE ({BASELINE}) unchanged reports: "
                             f"reports/s, x echo, CPU ms/report, above echo",
                     "value": f"{rate:,.0f} / {rate / floor:.2f} / {cpu:.2f} / "
                              f"{cpu - med['echo']['cpu_ms']:.2f}", "unit": "",
                     "budget": None, "ok": None})
    for key, what in (("full", "full reports, every one evaluated"),
                      ("unchanged", "unchanged periodic reports")):
        rate, cpu = med[key]["rate"], med[key]["cpu_ms"]
        ok = rate >= goal and errors[key] == 0
        why = (f"{rate / floor:.2f}x echo, {rate / med['store']['rate']:.2f}x store floor; "
               f"CPU {cpu:.2f} ms/report against the echo floor's "
               f"{med['echo']['cpu_ms']:.2f}: kiemke's own work per report bounds it")
        if errors[key]:
            why = f"{errors[key]} requests failed; " + why
        rows.append({"name": f"ingest {name} {what} (wrk, {ROUNDS} rounds, median)",
                     "value": round(rate, 1), "unit": "reports/s",
                     "budget": f">= {BUDGET[backend]:,.0f} and >= {FLOOR_RATIO}x echo "
                               f"({FLOOR_RATIO * floor:,.0f})", "ok": ok, "why": why})
        rows.append({"name": f"ingest {name} {what}: ratio to echo / store floor",
                     "value": f"{rate / floor:.2f} / {rate / med['store']['rate']:.2f}",
                     "unit": "x", "budget": None, "ok": None})
    cpu_full = med["full"]["cpu_ms"]
    rows.append({"name": f"ingest {name} collector CPU per full report (all processes)",
                 "value": round(cpu_full, 3), "unit": "ms", "budget": f"<= {CPU_BUDGET_MS:g}",
                 "ok": cpu_full <= CPU_BUDGET_MS,
                 "why": f"the echo floor alone (gunicorn, Flask, JSON parse) takes "
                        f"{med['echo']['cpu_ms']:.2f} ms and the store floor (+ one committed "
                        f"INSERT) {med['store']['cpu_ms']:.2f} ms of it; the rest is "
                        f"validation, authentication, assets and rules (docs/performance.md)"})
    above = med["unchanged"]["cpu_ms"] - med["echo"]["cpu_ms"]
    rows.append({"name": f"ingest {name} CPU per unchanged report above the echo floor "
                         f"({med['unchanged']['cpu_ms']:.3f} - {med['echo']['cpu_ms']:.3f})",
                 "value": round(above, 3), "unit": "ms",
                 "budget": f"<= {UNCHANGED_BUDGET_MS:g}", "ok": above <= UNCHANGED_BUDGET_MS,
                 "why": "authentication, the digest check, the report row and the machine's "
                        "last seen in one transaction, and its commit (docs/performance.md)"})
    rows.append({"name": f"ingest {name} errors (closed loop, all runs)",
                 "value": sum(errors.values()), "unit": "requests", "budget": "0",
                 "ok": sum(errors.values()) == 0})
    for label, run in (("echo floor", open_echo), ("full reports", open_full),
                       ("unchanged reports", open_unchanged)):
        budget = None if label == "echo floor" else f"<= {P99_BUDGET_MS:g}"
        ok = None if budget is None else (run["p99"] <= P99_BUDGET_MS and run["errors"] == 0
                                          and run["missed"] == 0)
        rows.append({"name": f"ingest {name} p99 at {OPEN_RATE:,.0f}/s open loop, {label} "
                             f"(p50 {run['p50']:.1f} ms, {run['sent_rate']:,.0f}/s sent, "
                             f"{run['missed']} missed)",
                     "value": round(run["p99"], 2), "unit": "ms", "budget": budget, "ok": ok,
                     "why": f"{run['sent_rate']:,.0f}/s sent of {OPEN_RATE:,.0f}/s, "
                            f"{run['missed']} missed, {run['errors']} errors: at this rate the "
                            f"requests queue (the echo floor's own p99 {open_echo['p99']:.0f} ms "
                            f"in this run)"})
    rows.append({"name": f"ingest {name} 'database is locked' in log", "value": locked,
                 "unit": "lines", "budget": "0", "ok": locked == 0})
    rows.append({"name": "load average when measured (1 min)",
                 "value": round(os.getloadavg()[0], 2), "unit": "", "budget": None,
                 "ok": None})
    return rows


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
