"""OS facts: live on this machine against independent sources (the standard library's
os-release parser, uname, /proc/stat), os-release captures, the Windows builder, and
the end-of-support table."""

from __future__ import annotations

import os
import platform
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from kiemke.agent.collectors import os_info_linux
from kiemke.agent.collectors.base import Context
from kiemke.agent.collectors.os_info import (
    OsCollector,
    eol_table,
    linux_end_of_support,
    normalise_arch,
    support_status,
    windows_end_of_support,
)
from kiemke.agent.collectors.os_info_windows import os_facts
from kiemke.agent.config import AgentConfig
from kiemke.agent.parsers.errors import ParseError
from kiemke.agent.parsers.os_release import parse_os_release

FIX = Path(__file__).parent / "fixtures" / "linux" / "os"
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


def collect(now: datetime = NOW) -> dict:
    return OsCollector().collect(Context(config=AgentConfig(), state_dir=Path("/nonexistent"),
                                         platform="linux", now=now))


@pytest.fixture(scope="module")
def live() -> dict:
    return collect()


def test_live_matches_the_standard_library(live: dict) -> None:
    rel = platform.freedesktop_os_release()
    assert live["family"] == "linux"
    assert live["name"] == rel.get("PRETTY_NAME", rel["NAME"])
    assert live["version"] == rel.get("VERSION_ID")
    assert live["kernel"] == os.uname().release
    assert live["architecture"] == normalise_arch(os.uname().machine)


def test_live_boot_time_matches_proc_stat(live: dict) -> None:
    btime = next(int(x.split()[1]) for x in Path("/proc/stat").read_text().splitlines()
                 if x.startswith("btime "))
    booted = datetime.fromtimestamp(btime, timezone.utc)
    assert live["last_boot"] == booted.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_live_support_status_is_from_the_table(live: dict) -> None:
    rel = platform.freedesktop_os_release()
    end, _ = linux_end_of_support(rel.get("ID"), rel.get("VERSION_ID"), rel.get("NAME"))
    assert live["end_of_support"] == (end.isoformat() if end else None)
    assert live["supported"] == (None if end is None else NOW.date() <= end)


def test_install_date_is_the_earliest_plausible_ctime(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for rel, when in (("var/log/installer", 1_600_000_000), ("etc/machine-id", 1_650_000_000)):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir() if rel.endswith("installer") else path.write_text("x")
        os.utime(path, (when, when))  # mtime only: ctime is "now", set by the kernel
    (tmp_path / "etc/os-release").write_text((FIX / "os-release-ubuntu-22.04").read_text())
    monkeypatch.setattr(os_info_linux, "ROOT", tmp_path)
    ctimes = [os.lstat(tmp_path / r).st_ctime for r in ("var/log/installer", "etc/machine-id")]
    found = os_info_linux.install_date(datetime.now(timezone.utc))
    assert found is not None and found.timestamp() == pytest.approx(min(ctimes), abs=1)
    # A clock that says 1970 (lost+found of an image built without a clock) is ignored.
    assert os_info_linux.install_date(datetime(1990, 1, 1, tzinfo=timezone.utc)) is None
    facts = collect()
    assert facts["name"] == "Ubuntu 22.04.4 LTS" and facts["end_of_support"] == "2027-04-30"


def test_missing_os_release_is_an_error_not_a_crash(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os_info_linux, "ROOT", tmp_path)
    facts = collect()
    assert facts["family"] == "linux" and facts["name"] is None and facts["supported"] is None
    assert [e["kind"] for e in facts["errors"]] == ["not_found"]
    assert "/etc/os-release" in facts["errors"][0]["message"]


@pytest.mark.parametrize(("name", "pretty", "end"), [
    ("os-release-debian-12", "Debian GNU/Linux 12 (bookworm)", "2028-06-30"),
    ("os-release-ubuntu-22.04", "Ubuntu 22.04.4 LTS", "2027-04-30"),
    ("os-release-linuxmint-21.3", "Linux Mint 21.3", "2027-04-30"),
    ("os-release-centos-stream-8", "CentOS Stream 8", "2024-05-31")])
def test_os_release_captures(name: str, pretty: str, end: str) -> None:
    rel = parse_os_release((FIX / name).read_text("utf-8"))
    assert rel["PRETTY_NAME"] == pretty
    found, _ = linux_end_of_support(rel["ID"], rel["VERSION_ID"], rel["NAME"])
    assert found is not None and found.isoformat() == end


def test_broken_os_release_names_file_and_line() -> None:
    with pytest.raises(ParseError) as err:
        parse_os_release((FIX / "os-release-truncated-quote").read_text(), "/etc/os-release")
    assert err.value.message.startswith("/etc/os-release line 1 ")
    with pytest.raises(ParseError, match="line 2"):
        parse_os_release("ID=debian\nthis is not an assignment\n")
    with pytest.raises(ParseError, match="names no distribution"):
        parse_os_release("")


def test_quoting_and_escapes() -> None:
    rel = parse_os_release('ID=kiemke\nNAME="Hệ điều hành \\"Bắc Giang\\""\nX=\'a b\'\n')
    assert rel["NAME"] == 'Hệ điều hành "Bắc Giang"' and rel["X"] == "a b"


REG_W11_PRO_23H2 = {"DisplayVersion": "23H2", "EditionID": "Professional", "UBR": 4460,
                    "CurrentBuild": "22631", "ProductName": "Windows 10 Pro"}


@pytest.mark.parametrize(("os_row", "reg", "name", "version", "build", "end"), [
    ({"Caption": "Microsoft Windows 11 Pro", "BuildNumber": "22631", "ProductType": 1,
      "OSArchitecture": "64-bit", "Version": "10.0.22631"}, REG_W11_PRO_23H2,
     "Microsoft Windows 11 Pro", "23H2", "22631.4460", "2025-11-11"),
    ({"Caption": "Microsoft Windows 11 Enterprise", "BuildNumber": "22631", "ProductType": 1},
     {"DisplayVersion": "23H2", "EditionID": "Enterprise", "UBR": 4460},
     "Microsoft Windows 11 Enterprise", "23H2", "22631.4460", "2026-11-10"),
    ({"Caption": "Microsoft Windows 10 Pro", "BuildNumber": "19045", "ProductType": 1},
     {"DisplayVersion": "22H2", "EditionID": "Professional", "UBR": 6456},
     "Microsoft Windows 10 Pro", "22H2", "19045.6456", "2025-10-14"),
    ({"Caption": "Microsoft Windows 10 Enterprise LTSC", "BuildNumber": "19044", "ProductType": 1},
     {"DisplayVersion": "21H2", "EditionID": "EnterpriseS", "UBR": 5011},
     "Microsoft Windows 10 Enterprise LTSC", "21H2", "19044.5011", "2027-01-12"),
    ({"Caption": "Microsoft Windows 11 Pro", "BuildNumber": "26100", "ProductType": 1},
     {"DisplayVersion": "24H2", "EditionID": "Professional"},
     "Microsoft Windows 11 Pro", "24H2", "26100", "2026-10-13"),
    ({"Caption": "Microsoft Windows 11 Education", "BuildNumber": "26200", "ProductType": 1},
     {"DisplayVersion": "25H2", "EditionID": "Education"},
     "Microsoft Windows 11 Education", "25H2", "26200", "2028-10-10"),
    ({"Caption": "Microsoft Windows Server 2019 Standard", "BuildNumber": "17763",
      "ProductType": 3}, {"EditionID": "ServerStandard", "ReleaseId": "1809", "UBR": 6414},
     "Microsoft Windows Server 2019 Standard", "1809", "17763.6414", "2029-01-09"),
    ({"Caption": "Microsoft Windows Server 2012 R2 Datacenter", "BuildNumber": "9600",
      "ProductType": 2, "Version": "6.3.9600"}, {},
     "Microsoft Windows Server 2012 R2 Datacenter", "6.3.9600", "9600", "2023-10-10"),
    ({"Caption": "Microsoft Windows 8.1 Pro", "BuildNumber": "9600", "ProductType": 1}, {},
     "Microsoft Windows 8.1 Pro", None, "9600", "2023-01-10"),
    ({"Caption": "Microsoft Windows 11 Pro", "BuildNumber": "29999", "ProductType": 1},
     {"DisplayVersion": "27H2"}, "Microsoft Windows 11 Pro", "27H2", "29999", None),
])
def test_windows_os_facts(os_row: dict, reg: dict, name: str, version: str | None,
                          build: str, end: str | None) -> None:
    facts, found = os_facts(os_row, reg)
    assert (facts["name"], facts["version"], facts["build"]) == (name, version, build)
    assert (found.isoformat() if found else None) == end
    assert facts["family"] == "windows"


def test_unknown_edition_takes_the_earlier_date() -> None:
    end, release = windows_end_of_support(22631, server=False, edition_id=None)
    assert end == date(2025, 11, 11) and release == "Windows 11 23H2"
    end, _ = windows_end_of_support(22631, server=False, edition_id="SomethingNew")
    assert end == date(2025, 11, 11)


def test_server_and_client_of_the_same_build_differ() -> None:
    assert windows_end_of_support(17763, True, "ServerStandard")[0] == date(2029, 1, 9)
    assert windows_end_of_support(17763, False, "Professional")[0] == date(2020, 11, 10)
    assert windows_end_of_support(26100, True, None)[0] == date(2034, 10, 10)
    assert windows_end_of_support(None, False, None) == (None, None)


def test_supported_is_inclusive_of_the_last_day() -> None:
    last = date(2025, 10, 14)
    assert support_status(last, datetime(2025, 10, 14, 23, 59, tzinfo=timezone.utc)) is True
    assert support_status(last, datetime(2025, 10, 15, 0, 0, tzinfo=timezone.utc)) is False
    assert support_status(None, NOW) is None


def test_eol_table_is_well_formed() -> None:
    table = eol_table()
    sources = table["sources"]
    classes = set(table["windows_edition_classes"]) - {"about"}
    for entry in table["windows"]:
        end = date.fromisoformat(entry["end"])
        assert entry["source"] in sources, entry
        assert entry["class"] in classes | {"any"}, entry
        # Microsoft ends servicing on a Patch Tuesday (second Tuesday of the month).
        assert end.weekday() == 1 and 8 <= end.day <= 14, entry
    seen = set()
    for entry in table["linux"]:
        date.fromisoformat(entry["end"])
        assert entry["source"] in sources, entry
        key = (entry["id"], entry["version"], entry.get("stream"))
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
    assert all(url.startswith("https://") for url in sources.values())


@pytest.mark.parametrize(("value", "expected"), [
    ("x86_64", "x86_64"), ("aarch64", "arm64"), ("i686", "x86"), ("64-bit", "x86_64"),
    ("64 bits", "x86_64"), ("32-bit", "x86"), ("ARM 64-bit Processor", "arm64"), (None, None)])
def test_architecture_names(value: str | None, expected: str | None) -> None:
    assert normalise_arch(value) == expected
