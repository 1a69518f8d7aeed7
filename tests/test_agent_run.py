"""`kiemke-agent run` as a real process: start offset 0, interval, spool, graceful SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from test_schema_contract import REPO, agent_conf


def test_run_collects_on_schedule_and_stops_on_sigterm(tmp_path):
    conf = agent_conf(tmp_path)
    conf.write_text(conf.read_text("utf-8").replace(
        "[agent]\n", "[agent]\ninterval = 1\njitter = 0\nstart_delay_max = 0\n"), "utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "kiemke.agent", "--config", str(conf),
                             "run"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    spool = tmp_path / "state" / "spool"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(list(spool.glob("*.json.gz"))) < 3:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.1)
        files = sorted(spool.glob("*.json.gz"))
        assert len(files) >= 3
        # the first report is a full inventory, later ones periodic (full_interval 1 day)
        assert "-full-" in files[0].name and "-periodic-" in files[1].name
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    log = (tmp_path / "state" / "agent.log").read_text("utf-8")
    assert "not enrolled" in log and "kiemke agent stopped" in log
    status = json.loads((tmp_path / "state" / "status.json").read_text("utf-8"))
    assert status["last_full_at"].endswith("Z")
