"""Prometheus alerting/recording rules and the Alertmanager example, checked by the real
tools: promtool (check + unit tests), amtool (config + routing) and a real Alertmanager
for the inhibition of rule alerts on stale machines."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from conftest import REPO, free_port, missing_component

DASH = REPO / "dashboards"
RULES_DIR = DASH / "prometheus" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
UNIT_TESTS = DASH / "prometheus" / "tests" / "kiemke-alerts.test.yml"
ALERTMANAGER_YML = DASH / "alertmanager" / "alertmanager.yml"
ALERTS_DOC = REPO / "docs" / "alerts.md"

EXPECTED_ALERTS = {
    "KiemkeUnitBelowTarget", "KiemkeMachineRuleFailing", "KiemkeMachineStale",
    "KiemkeUnitNoReportingMachine", "KiemkeCollectorDown", "KiemkeCollectorMissing",
    "KiemkeDatabaseDown", "KiemkeReportsRejected",
}
EXPECTED_RECORDS = {"kiemke:rule_gap", "kiemke:rule_below_target_since"}
YEN_DUNG = "Liên đoàn Lao động tỉnh Bắc Giang / LĐLĐ huyện Yên Dũng"


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        missing_component(f"{binary} is not installed (Debian package "
                          f"{'prometheus' if 'prom' in binary else 'prometheus-alertmanager'})")
    return str(path)


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60,
                          cwd=cwd)


def rules_of(kind: str) -> dict[str, dict[str, Any]]:
    """{alert or record name: rule} over every rule file."""
    found: dict[str, dict[str, Any]] = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text("utf-8"))["groups"]:
            for rule in group["rules"]:
                if kind in rule:
                    found[rule[kind]] = rule
    return found


# ------------------------------------------------------------------------- promtool

@pytest.mark.prometheus
def test_promtool_check_rules_accepts_every_rule_file() -> None:
    result = run(need("promtool"), "check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr
    counts = [int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", result.stdout)]
    assert len(counts) == len(RULE_FILES) == 2
    assert sum(counts) == len(EXPECTED_ALERTS) + len(EXPECTED_RECORDS)
    assert set(rules_of("alert")) == EXPECTED_ALERTS
    assert set(rules_of("record")) == EXPECTED_RECORDS


@pytest.mark.prometheus
def test_promtool_unit_tests_pass() -> None:
    result = run(need("promtool"), "test", "rules", UNIT_TESTS.name, cwd=UNIT_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Unit Testing:\s+kiemke-alerts\.test\.yml\s+SUCCESS", result.stdout), \
        result.stdout


def test_every_alert_has_firing_and_silent_unit_tests() -> None:
    suite = yaml.safe_load(UNIT_TESTS.read_text("utf-8"))
    firing: set[str] = set()
    silent: set[str] = set()
    for case in suite["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    assert firing == EXPECTED_ALERTS
    assert silent == EXPECTED_ALERTS
    tested_records = {re.match(r"[\w:]+", t["expr"]).group(0)
                      for case in suite["tests"] for t in case.get("promql_expr_test", [])}
    assert tested_records == EXPECTED_RECORDS


def test_every_alert_is_bilingual_with_severity_and_runbook() -> None:
    doc = ALERTS_DOC.read_text("utf-8")
    headings = {line[3:].strip() for line in doc.splitlines() if line.startswith("## ")}
    for name, rule in rules_of("alert").items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        notes = rule["annotations"]
        assert set(notes) == {"summary_vi", "summary_en", "description_vi", "description_en",
                              "runbook"}, name
        # Vietnamese text really is Vietnamese (diacritics), English text is not
        assert re.search(r"[ạảấầẩẫậắằẳẵặẹẻẽếềểễệịỉọỏốồổỗộớờởỡợụủứừửữựỳỷỹđ]",
                         notes["description_vi"]), name
        assert "đ" not in notes["description_en"].replace("{{", ""), name
        assert notes["runbook"] == f"docs/alerts.md#{name.lower()}"
        assert name in headings, f"docs/alerts.md has no section '## {name}'"


@pytest.mark.prometheus
def test_a_broken_rule_file_fails_promtool_check(tmp_path: Path) -> None:
    broken = tmp_path / "kiemke-alerts.yml"
    text = (RULES_DIR / "kiemke-alerts.yml").read_text("utf-8")
    broken.write_text(text.replace("group_left", "group_leftt", 1), "utf-8")
    result = run(need("promtool"), "check", "rules", broken)
    assert result.returncode != 0
    assert "kiemke-alerts.yml" in result.stdout + result.stderr
    assert "FAILED" in result.stdout + result.stderr


@pytest.mark.prometheus
def test_a_wrong_alert_fails_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: alerting on warning-severity failures breaks them."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "tests").mkdir()
    shutil.copy(RULES_DIR / "kiemke-recording.yml", tmp_path / "rules")
    text = (RULES_DIR / "kiemke-alerts.yml").read_text("utf-8")
    assert 'kiemke_machine_rule_failing{severity="critical"}' in text
    (tmp_path / "rules" / "kiemke-alerts.yml").write_text(
        text.replace('kiemke_machine_rule_failing{severity="critical"}',
                     "kiemke_machine_rule_failing"), "utf-8")
    shutil.copy(UNIT_TESTS, tmp_path / "tests")
    result = run(need("promtool"), "test", "rules", UNIT_TESTS.name, cwd=tmp_path / "tests")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "KiemkeMachineRuleFailing" in output
    assert 'rule="ram_minimum"' in output  # the warning rule that now pages


@pytest.mark.prometheus
def test_example_prometheus_config_is_valid() -> None:
    result = run(need("promtool"), "check", "config", DASH / "prometheus" / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((DASH / "prometheus" / "prometheus.yml").read_text("utf-8"))
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "kiemke")
    assert job["metrics_path"] == "/metrics"
    assert config["rule_files"] == ["/etc/prometheus/rules/kiemke-*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]


# ------------------------------------------------------------------------- Alertmanager

def test_alertmanager_config_is_valid() -> None:
    result = run(need("amtool"), "check-config", ALERTMANAGER_YML)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 inhibit rules" in result.stdout


@pytest.mark.parametrize(("labels", "receivers"), [
    ({"alertname": "KiemkeMachineRuleFailing", "severity": "critical", "unit_id": "17",
      "path": "Tỉnh Bắc Giang / LĐLĐ huyện Yên Dũng / Văn phòng"},
     "yen-dung-it,it-team-urgent"),
    # the district itself, not a namesake that only starts like it
    ({"alertname": "KiemkeUnitBelowTarget", "severity": "warning", "unit_id": "12",
      "path": "Tỉnh Bắc Giang / LĐLĐ huyện Yên Dũng"}, "yen-dung-it,it-team"),
    ({"alertname": "KiemkeUnitBelowTarget", "severity": "warning", "unit_id": "18",
      "path": "Tỉnh Bắc Giang / LĐLĐ huyện Yên Dũng 2"}, "it-team"),
    ({"alertname": "KiemkeMachineRuleFailing", "severity": "critical", "unit_id": "13",
      "path": "Tỉnh Bắc Giang / LĐLĐ huyện Lạng Giang"}, "it-team-urgent"),
    ({"alertname": "KiemkeUnitBelowTarget", "severity": "warning", "unit_id": "1",
      "path": "Tỉnh Bắc Giang"}, "it-team"),
    ({"alertname": "KiemkeCollectorDown", "severity": "critical",
      "instance": "127.0.0.1:8080"}, "server-admins"),
])
def test_alertmanager_routes_by_unit_and_severity(labels: dict[str, str],
                                                  receivers: str) -> None:
    args = [f"{k}={v}" for k, v in labels.items()]
    result = run(need("amtool"), "config", "routes", "test",
                 f"--config.file={ALERTMANAGER_YML}", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def _blackholed_config(path: Path) -> Path:
    """The example config with every receiver emptied: no notification leaves the host."""
    config = yaml.safe_load(ALERTMANAGER_YML.read_text("utf-8"))
    config["global"] = {"resolve_timeout": "5m"}
    config["receivers"] = [{"name": r["name"]} for r in config["receivers"]]
    out = path / "alertmanager.yml"
    out.write_text(yaml.safe_dump(config, allow_unicode=True), "utf-8")
    return out


@pytest.mark.prometheus
def test_stale_machine_inhibits_its_rule_alerts(tmp_path: Path) -> None:
    """A real Alertmanager with the example routes and inhibitions (receivers emptied)."""
    binary = need("prometheus-alertmanager")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [binary, f"--config.file={_blackholed_config(tmp_path)}",
         f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address=", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "am.log").open("wb"))
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(f"{base}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, (tmp_path / "am.log").read_text()
            assert time.monotonic() < deadline, "alertmanager did not become ready"
            time.sleep(0.1)

        def alert(name: str, machine_id: str, hostname: str, **extra: str) -> dict[str, Any]:
            return {"labels": {"alertname": name, "machine_id": machine_id,
                               "hostname": hostname, "unit_id": "12", "path": YEN_DUNG,
                               **extra},
                    "annotations": {"summary_en": f"{name} {hostname}"}}

        stale_id, live_id = "4c4c4544003510508034b7c04f4e3533", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
        alerts = [
            alert("KiemkeMachineStale", stale_id, "PC-KETOAN-01", severity="warning"),
            alert("KiemkeMachineRuleFailing", stale_id, "PC-KETOAN-01", severity="critical",
                  rule="av_enabled", reason_code="no_active_licensed_av"),
            alert("KiemkeMachineRuleFailing", live_id, "PC-VANTHU-02", severity="critical",
                  rule="av_enabled", reason_code="no_active_licensed_av"),
        ]
        resp = requests.post(f"{base}/api/v2/alerts", data=json.dumps(alerts),
                             headers={"Content-Type": "application/json"}, timeout=5)
        assert resp.status_code == 200, resp.text
        deadline = time.monotonic() + 10
        while True:
            got = {(a["labels"]["alertname"], a["labels"]["hostname"]): a["status"]
                   for a in requests.get(f"{base}/api/v2/alerts", timeout=5).json()}
            if len(got) == 3 and got[("KiemkeMachineRuleFailing", "PC-KETOAN-01")]["state"] \
                    == "suppressed":
                break
            assert time.monotonic() < deadline, got
            time.sleep(0.2)
        assert got[("KiemkeMachineRuleFailing", "PC-KETOAN-01")]["inhibitedBy"]
        assert got[("KiemkeMachineRuleFailing", "PC-VANTHU-02")] == {
            "state": "active", "silencedBy": [], "inhibitedBy": []}
        assert got[("KiemkeMachineStale", "PC-KETOAN-01")]["state"] == "active"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
