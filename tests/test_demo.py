"""`make demo` as a new user runs it: everything up, one real report, a summary, Ctrl-C."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
from openpyxl import load_workbook
from scrape_helpers import metrics_text

from kiemke.compliance import default_rules_dir, load_rules


def _read_until(proc: subprocess.Popen, lines: queue.Queue, marker: str,
                timeout: float) -> str:
    """Everything the demo printed up to `marker` (fails with the output on timeout)."""
    out = ""
    deadline = time.monotonic() + timeout
    while marker not in out:
        left = deadline - time.monotonic()
        assert left > 0, f"the demo did not get to {marker!r}:\n{out}"
        try:
            out += lines.get(timeout=min(left, 1.0))
        except queue.Empty:
            assert proc.poll() is None, f"the demo exited ({proc.returncode}):\n{out}"
    return out


def test_demo_reports_this_machine_and_stops_on_hangup(tmp_path: Path) -> None:
    # No PYTHONUNBUFFERED: the demo's output must reach a pipe line by line by itself.
    # SIGHUP (terminal closed) stops it and its collector like Ctrl-C (same handler).
    env = {**os.environ, "KIEMKE_DEMO_DIR": str(tmp_path / "demo-data")}
    env.pop("PYTHONUNBUFFERED", None)
    proc = subprocess.Popen([sys.executable, "-m", "kiemke.demo"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    # A reader thread: select() on a text pipe misses lines already in Python's buffer.
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout],
                              daemon=True)
    reader.start()
    try:
        # The SIMULATED fleet (13 months of history) takes about a minute to load.
        out = _read_until(proc, lines, "Serving in the foreground", timeout=420)
        assert "machines reporting: 1" in out
        assert ("unit:               Liên đoàn Lao động tỉnh Bắc Giang / "
                "Liên đoàn Lao động huyện Lục Nam") in out
        # Every default rule is listed with a result (machine rules) or a ratio.
        for rule in load_rules([default_rules_dir()]).rules:
            assert re.search(rf"^  {re.escape(rule.id)} +\S", out, re.M), rule.id
        # The SIMULATED fleet beside it, and the printed report command works as printed.
        assert re.search(r"plus \d{3} SIMULATED under 'Liên đoàn Lao động tỉnh Bắc Giang "
                         r"\(mô phỏng\)'", out), out
        for label in ("this month, to date:", "this year's ranking:"):
            assert label in out
        command = re.search(r"last month, complete: (.*)$", out, re.M).group(1)
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        workbook = load_workbook(next(tmp_path.glob("bao-cao-*.xlsx")))
        assert workbook["2-rules"].max_row >= 3 + 5
        url = re.search(r"Prometheus metrics +(http://127\.0\.0\.1:\d+)/metrics", out).group(1)
        assert requests.get(f"{url}/readyz", timeout=10).status_code == 200
        metrics = metrics_text(url, timeout=10)
        assert re.search(r'kiemke_machines\{[^}]*status="active"[^}]*\} 1\.0', metrics)
        # The printed console login works.
        console, name, password = re.search(
            r"web console +(http://127\.0\.0\.1:\d+)/ +\(login: (\S+) / (\S+)\)", out).groups()
        session = requests.Session()
        page = session.get(f"{console}/login", timeout=10).text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        home = session.post(f"{console}/login", timeout=10, data={
            "name": name, "password": password, "csrf_token": csrf})
        assert home.status_code == 200 and "Liên đoàn Lao động tỉnh Bắc Giang" in home.text
    finally:
        proc.send_signal(signal.SIGHUP)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    rest = "".join(lines.queue)
    assert proc.returncode == 0, rest
    assert "stopping the collector" in rest
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as sock:  # the collector is gone with the demo
        assert sock.connect_ex(("127.0.0.1", port)) != 0
