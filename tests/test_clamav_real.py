"""ClamAV as installed from Debian on this machine: the real clamscan binary, real
database headers written into a temp dir (make_cvd_header), the real process scan.
Never runs freshclam (no network)."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import missing_component

from kiemke.agent.collectors import antivirus_linux
from kiemke.agent.collectors.antivirus import as_section
from kiemke.agent.collectors.base import Context
from kiemke.agent.config import AgentConfig
from kiemke.agent.parsers.av_vendors import builtin_table
from kiemke.agent.parsers.clamav import make_cvd_header

pytestmark = pytest.mark.clamav
NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def clamscan() -> str:
    path = shutil.which("clamscan")
    if not path:
        missing_component("clamscan is not installed (apt-get install clamav)")
    return path


@pytest.fixture(scope="module")
def clamscan_version(clamscan: str) -> str:
    out = subprocess.run([clamscan, "--version"], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    return out.split()[1].split("/")[0]


def write_db(directory: Path, name: str, built: datetime, version: int) -> None:
    # A real database is header + signed tar.gz; clamscan --version reads the header, the
    # agent the header and the MD5 of the body (libclamav's check).
    body = b"\0" * 64
    (directory / name).write_bytes(make_cvd_header(built, version, body=body) + body)


def ctx(max_age: float = 7.0) -> Context:
    return Context(config=AgentConfig(max_signature_age_days=max_age),
                   state_dir=Path("/nonexistent"), platform="linux", now=NOW)


def clamav_only(section: dict) -> dict:
    return next(p for p in section["products"] if p["name"] == "ClamAV")


def test_fresh_database_is_up_to_date(tmp_path: Path, clamscan_version: str) -> None:
    built = NOW - timedelta(hours=20)
    write_db(tmp_path, "daily.cvd", built, 27450)
    write_db(tmp_path, "main.cvd", NOW - timedelta(days=400), 62)
    section = as_section(antivirus_linux.read(ctx(), builtin_table(), clamav_db_dir=str(tmp_path)))
    product = clamav_only(section)
    assert product["version"] == clamscan_version
    assert product["detected_by"] == "cli"
    assert product["signatures_version"] == "27450"
    assert product["signatures_date"] == built.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert product["signatures_age_days"] == pytest.approx(0.8, abs=0.05)
    assert product["up_to_date"] is True
    assert product["licensed"] is True
    assert "errors" not in section


def test_cld_newer_than_cvd_wins_and_old_database_is_stale(tmp_path: Path) -> None:
    write_db(tmp_path, "daily.cvd", NOW - timedelta(days=40), 27000)
    write_db(tmp_path, "daily.cld", NOW - timedelta(days=9), 27300)
    product = clamav_only(as_section(antivirus_linux.read(ctx(), builtin_table(),
                                                  clamav_db_dir=str(tmp_path))))
    assert product["signatures_version"] == "27300"
    assert product["signatures_age_days"] == pytest.approx(9.0, abs=0.05)
    assert product["up_to_date"] is False
    lenient = clamav_only(as_section(antivirus_linux.read(ctx(max_age=10), builtin_table(),
                                                  clamav_db_dir=str(tmp_path))))
    assert lenient["up_to_date"] is True


def test_clamscan_reads_the_generated_header(clamscan: str, tmp_path: Path) -> None:
    write_db(tmp_path, "daily.cvd", NOW - timedelta(hours=1), 27451)
    out = subprocess.run([clamscan, "--version", f"--database={tmp_path}"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    assert "/27451/" in out  # the real tool agrees our header is a valid database header


def test_missing_database_is_not_up_to_date_and_says_so(tmp_path: Path,
                                                        clamscan_version: str) -> None:
    section = as_section(antivirus_linux.read(ctx(), builtin_table(), clamav_db_dir=str(tmp_path)))
    product = clamav_only(section)
    assert product["version"] == clamscan_version
    assert product["up_to_date"] is False
    assert product["signatures_date"] is None
    error = next(e for e in section["errors"] if e["kind"] == "not_found")
    assert str(tmp_path) in error["message"] and "freshclam" in error["message"]
    # The error is about ClamAV's database, not about finding products: it names ClamAV,
    # so the collector knows the product list itself is complete.
    assert error["product"] == "ClamAV"


def test_damaged_database_is_reported(tmp_path: Path, clamscan: str) -> None:
    (tmp_path / "daily.cvd").write_bytes(b"<html>captive portal</html>".ljust(600, b" "))
    section = as_section(antivirus_linux.read(ctx(), builtin_table(), clamav_db_dir=str(tmp_path)))
    assert clamav_only(section)["up_to_date"] is False
    assert any("damaged" in e["message"] for e in section["errors"])


def test_daemon_state_follows_the_process_scan(tmp_path: Path, clamscan: str) -> None:
    write_db(tmp_path, "daily.cvd", NOW - timedelta(hours=2), 27452)
    c = ctx()
    names = antivirus_linux.process_names(c.now)
    product = clamav_only(as_section(antivirus_linux.read(c, builtin_table(),
                                                  clamav_db_dir=str(tmp_path))))
    running = "clamd" in names
    assert product["enabled"] is running
    assert product["state"] == ("on" if running else "off")
    # The scan is a real psutil pass: this test process is in it.
    assert any(n.startswith("python") or n == "pytest" for n in names)


def test_database_directory_from_debian_config() -> None:
    if not os.path.exists("/etc/clamav/freshclam.conf"):
        missing_component("/etc/clamav/freshclam.conf is missing (apt-get install clamav)")
    assert antivirus_linux.clamav_database_dir() == "/var/lib/clamav"
