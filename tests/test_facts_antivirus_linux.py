"""Linux vendor CLIs: each installed CLI is replayed by a small script that prints a
real capture (tests/fixtures/linux/antivirus/), so the real subprocess path, timeouts
and parsers run. Vendor binaries that are absent are never run."""

from __future__ import annotations

import dataclasses
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kiemke.agent.collectors import antivirus_linux
from kiemke.agent.collectors.antivirus import as_section
from kiemke.agent.collectors.base import Context
from kiemke.agent.config import AgentConfig
from kiemke.agent.parsers.av_vendors import VendorTable, builtin_table

AV = Path(__file__).parent / "fixtures" / "linux" / "antivirus"
NOW = datetime(2025, 9, 10, 12, 0, tzinfo=timezone.utc)


def replay(path: Path, cases: dict[str, str]) -> str:
    """A script answering `<args>` with the capture named in cases (else exit 2)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["#!/bin/sh", 'case "$*" in']
    for args, capture in cases.items():
        lines.append(f'  "{args}") cat "{AV / capture}" ;;')
    lines.append('  *) echo "unknown arguments: $*" >&2; exit 2 ;;')
    lines.append("esac")
    path.write_text("\n".join(lines) + "\n", "utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def table_with(**binaries: str) -> VendorTable:
    base = builtin_table()
    av = tuple(dataclasses.replace(p, linux_binaries=(binaries[p.id],))
               if p.id in binaries else dataclasses.replace(p, linux_binaries=())
               for p in base.antivirus)
    return VendorTable(antivirus=av, monitoring=base.monitoring)


def ctx() -> Context:
    return Context(config=AgentConfig(), state_dir=Path("/nonexistent"), platform="linux",
                   now=NOW)


def test_eset_flow_with_real_captures(tmp_path: Path) -> None:
    upd = replay(tmp_path / "eea" / "bin" / "upd", {
        "--version": "eea-12.0.13.0-upd-version.txt",
        "--list-modules": "eea-12.0.13.0-upd-list-modules.txt"})
    replay(tmp_path / "eea" / "sbin" / "lic", {"--status": "eea-12.0.13.0-lic-status.txt"})
    section = as_section(antivirus_linux.read(ctx(), table_with(eset=upd)))
    eset = next(p for p in section["products"] if p["vendor"] == "ESET")
    assert eset["version"] == "12.0.13.0"
    assert eset["signatures_version"] == "31832 (20250909)"
    assert eset["signatures_date"] == "2025-09-09T00:00:00Z"
    assert eset["signatures_age_days"] == 1.5
    assert eset["up_to_date"] is True
    assert (eset["licensed"], eset["licence_expiry"]) == (True, "2026-06-21")
    assert eset["detected_by"] == "cli"


def test_mdatp_flow_passive_is_not_enabled(tmp_path: Path) -> None:
    mdatp = replay(tmp_path / "mdatp", {"health --output json":
                                        "mdatp-health-101.23062.0010.json"})
    section = as_section(antivirus_linux.read(ctx(), table_with(defender=mdatp)))
    d = next(p for p in section["products"] if p["vendor"] == "Microsoft")
    # mdatp says "upToDate", but the capture's definitions (2023-08-09) are years older
    # than this collection: the age wins and the disagreement is an error entry.
    assert (d["state"], d["enabled"], d["up_to_date"]) == ("passive", False, False)
    assert d["licence_expiry"] == "2024-04-10"
    assert d["licensed"] is False  # the product's licence expired on 2024-04-10
    messages = [e["message"] for e in section["errors"] if e.get("product") == d["name"]]
    assert any("reports its signatures up to date" in m for m in messages)
    assert any("expired on 2024-04-10" in m for m in messages)


def test_failing_vendor_cli_is_reported_not_dropped(tmp_path: Path) -> None:
    broken = replay(tmp_path / "bduitool", {})  # answers every call with exit 2
    section = as_section(antivirus_linux.read(ctx(), table_with(bitdefender=broken)))
    bd = next(p for p in section["products"] if p["vendor"] == "Bitdefender")
    assert (bd["state"], bd["detected_by"]) == ("unknown", "file")
    error = next(e for e in section["errors"] if "bduitool" in e["message"])
    assert error["kind"] == "failed" and "exited with 2" in error["message"]


def test_garbage_vendor_output_is_reported(tmp_path: Path) -> None:
    sentinelctl = replay(tmp_path / "sentinelctl", {"version": "eea-12.0.13.0-lic-status.txt",
                                                    "control status":
                                                    "eea-12.0.13.0-lic-status.txt"})
    section = as_section(antivirus_linux.read(ctx(), table_with(sentinelone=sentinelctl)))
    s1 = next(p for p in section["products"] if p["vendor"] == "SentinelOne")
    assert s1["state"] == "unknown"
    assert any("unexpected output" in e["message"] for e in section["errors"])


def test_absent_vendor_binaries_are_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []
    real_run = antivirus_linux.run

    def spy(argv, *args, **kwargs):  # type: ignore[no-untyped-def]
        ran.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(antivirus_linux, "run", spy)
    as_section(antivirus_linux.read(ctx(), table_with()))
    assert all(Path(argv[0]).name == "clamscan" for argv in ran)
