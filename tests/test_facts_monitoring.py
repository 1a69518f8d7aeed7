"""Section security_monitoring: real processes on Linux (a copy of sleep named like the
agent), captured Get-Service output for Windows."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from kiemke.agent.collectors.base import CollectorError, Context
from kiemke.agent.collectors.security_monitoring import SecurityMonitoringCollector
from kiemke.agent.collectors.security_monitoring_linux import agents_found
from kiemke.agent.config import AgentConfig
from kiemke.agent.parsers.av_vendors import builtin_table, parse_extra
from kiemke.agent.windows import powershell
from kiemke.schema import load_schema

WIN = Path(__file__).parent / "fixtures" / "windows"


def validate(section: dict[str, Any]) -> None:
    schema = load_schema()
    jsonschema.validate(section, {"$defs": schema["$defs"],
                                  **schema["properties"]["security_monitoring"]})


@pytest.fixture
def fake_agent(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A real process called zabbix_agentd (a copy of /bin/sleep)."""
    binary = tmp_path / "zabbix_agentd"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", binary)
    proc = subprocess.Popen([str(binary), "30"])
    yield proc
    proc.kill()
    proc.wait()


def test_linux_running_agent_found_by_process(fake_agent: subprocess.Popen) -> None:
    ctx = Context(config=AgentConfig(), state_dir=Path("/nonexistent"), platform="linux",
                  now=datetime.now(timezone.utc))
    section = SecurityMonitoringCollector().collect(ctx)
    validate(section)
    zabbix = next(a for a in section["agents"] if a["name"] == "Zabbix agent")
    assert zabbix == {"name": "Zabbix agent", "vendor": "Zabbix", "running": True,
                      "detected_by": "process"}


def test_linux_installed_but_stopped_agent(tmp_path: Path) -> None:
    marker = tmp_path / "gsattt-agent"
    marker.write_text("#!/bin/sh\n", "utf-8")
    name = "Giám sát an toàn thông tin tỉnh Bắc Giang"
    agents = (parse_extra(f"{name}:gsattt-agent,{marker}", "[security_monitoring] agents", 0),
              *builtin_table().monitoring)
    section = {"agents": agents_found(agents, frozenset({"bash", "python3"}))}
    validate(section)
    assert section["agents"][0] == {"name": name, "vendor": None, "running": False,
                                    "detected_by": "file"}
    running = {"agents": agents_found(agents, frozenset({"gsattt-agent"}))}
    assert running["agents"][0]["running"] is True


def test_windows_services(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = powershell.parse_cim_json(
        (WIN / "securitycenter" / "services-server-windefend.json").read_text("utf-8"))
    asked: list[list[str]] = []

    def services(names: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        asked.append(list(names))
        return [r for r in rows if r["Name"] in names]

    monkeypatch.setattr(powershell, "services", services)
    ctx = Context(config=AgentConfig(), state_dir=Path("/nonexistent"), platform="windows")
    section = SecurityMonitoringCollector().collect(ctx)
    validate(section)
    assert section["agents"] == [
        {"name": "Wazuh agent", "vendor": "Wazuh", "running": False, "detected_by": "service"},
        {"name": "Microsoft Defender for Endpoint", "vendor": "Microsoft", "running": True,
         "detected_by": "service"}]
    assert len(asked) == 1 and "Sysmon64" in asked[0] and "klnagent" in asked[0]


def test_windows_service_listing_failure_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def services(names: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        raise CollectorError("permission", "not allowed to run powershell.exe")

    monkeypatch.setattr(powershell, "services", services)
    ctx = Context(config=AgentConfig(), state_dir=Path("/nonexistent"), platform="windows")
    section = SecurityMonitoringCollector().collect(ctx)
    validate(section)
    assert section["agents"] == []
    assert section["errors"][0]["kind"] == "permission"
