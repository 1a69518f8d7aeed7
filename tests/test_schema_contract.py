"""Contract: `kiemke-agent collect` on this machine produces a report the schema accepts.

Runs the real CLI as a subprocess (as an operator would), with network probes limited
to loopback, and validates with jsonschema against kiemke/schema/report-v1.json.
Every section must be present and carry either facts or explicit error entries.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from kiemke.schema import SECTIONS, load_schema

REPO = Path(__file__).resolve().parent.parent


def agent_conf(tmp_path: Path, server: str = "http://127.0.0.1:9") -> Path:
    """An agent config whose probes can only touch loopback."""
    conf = tmp_path / "agent.conf"
    conf.write_text(f"""[agent]
server = {server}
unit = Liên đoàn Lao động tỉnh Bắc Giang
state_dir = {tmp_path / 'state'}
retries = 1
timeout = 5

[network]
gateway_check = off
internet_probes = tcp://127.0.0.1:9
dns_names = localhost
probe_timeout = 0.5
check_collector = true
""", encoding="utf-8")
    return conf


def _collect(tmp_path: Path, *args: str) -> tuple[dict | None, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "kiemke.agent", "--config", str(agent_conf(tmp_path)),
         "collect", *args], capture_output=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    out = proc.stdout.decode("utf-8")
    return (json.loads(out) if out.strip() else None), proc.stderr.decode("utf-8", "replace")


@pytest.mark.parametrize("kind", ["periodic", "full"])
def test_collect_validates_against_schema(tmp_path, kind):
    report, _ = _collect(tmp_path, *(["--full"] if kind == "full" else []))
    assert report is not None
    jsonschema.Draft202012Validator(load_schema()).validate(report)
    assert report["kind"] == kind
    for section in SECTIONS:
        if section == "extras":
            continue  # optional by design
        body = report[section]
        facts = {k: v for k, v in body.items() if k != "errors"}
        assert facts or body.get("errors"), f"section {section} has neither facts nor errors"
        for err in body.get("errors", []):
            assert err["message"].strip(), f"empty error message in {section}"
    ident = report["identity"]
    assert ident["unit"] == "Liên đoàn Lao động tỉnh Bắc Giang"
    assert len(ident["machine_id"]) == 32


def test_machine_id_stable_across_runs_and_output_file(tmp_path):
    first, _ = _collect(tmp_path)
    assert first is not None
    out = tmp_path / "report.json"
    printed, _ = _collect(tmp_path, "--output", str(out), "--pretty")
    assert printed is None  # written to the file, not to stdout
    second = json.loads(out.read_text("utf-8"))
    assert first["identity"]["machine_id"] == second["identity"]["machine_id"]
    assert first["report_id"] != second["report_id"]
    assert "Bắc Giang" in out.read_text("utf-8")  # not \\u-escaped


def test_unwritable_state_dir_falls_back_with_a_note(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    conf = agent_conf(tmp_path)
    text = conf.read_text("utf-8").replace(f"state_dir = {tmp_path / 'state'}",
                                           f"state_dir = {blocker / 'state'}")
    conf.write_text(text, "utf-8")
    home = tmp_path / "home"
    proc = subprocess.run(
        [sys.executable, "-m", "kiemke.agent", "--config", str(conf), "collect"],
        capture_output=True, timeout=120, cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home), "XDG_STATE_HOME": str(home / "st")})
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.decode()
    assert "not writable" in err and str(home / "st" / "kiemke") in err
    assert (home / "st" / "kiemke" / "identity.json").exists()
