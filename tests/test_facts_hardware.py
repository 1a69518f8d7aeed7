"""Hardware facts: live on this Linux machine, checked against independent sources
(/proc/meminfo, os.cpu_count, lscpu, lsblk, /sys/class/dmi/id); the sysfs reader on a
tree built from a real dmidecode dump; the manufacture-date estimate and first-seen."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from conftest import missing_component
from test_parsers_dmidecode import sysfs_files

from kiemke.agent.collectors import hardware_linux
from kiemke.agent.collectors.base import Context
from kiemke.agent.collectors.hardware import (
    FIRST_SEEN_FILE,
    HardwareCollector,
    estimate_manufacture_date,
    read_first_seen,
)
from kiemke.agent.config import AgentConfig
from kiemke.agent.parsers.dmi_sysfs import parse_bios_date

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
DMI = Path("/sys/class/dmi/id")


def collect(state_dir: Path, results: dict | None = None) -> dict:
    ctx = Context(config=AgentConfig(), state_dir=state_dir, platform="linux", now=NOW)
    if results:
        ctx.results.update(results)
    return HardwareCollector().collect(ctx)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return collect(tmp_path_factory.mktemp("state"))


def test_memory_matches_proc_meminfo(live: dict) -> None:
    line = next(x for x in Path("/proc/meminfo").read_text().splitlines()
                if x.startswith("MemTotal:"))
    assert live["memory_bytes"] == int(line.split()[1]) * 1024


def test_logical_cores_match_os_cpu_count(live: dict) -> None:
    assert live["cpu"]["cores_logical"] == os.cpu_count()


def test_physical_cores_match_lscpu(live: dict) -> None:
    if shutil.which("lscpu") is None:
        missing_component("lscpu (util-linux) is not installed")
    out = subprocess.run(["lscpu", "-p=CORE,SOCKET"], capture_output=True, text=True,
                         check=True).stdout
    cores = {line for line in out.splitlines() if line and not line.startswith("#")}
    assert live["cpu"]["cores_physical"] == len(cores)


def test_cpu_model_is_the_one_in_proc_cpuinfo(live: dict) -> None:
    text = Path("/proc/cpuinfo").read_text()
    names = {" ".join(line.split(":", 1)[1].split()) for line in text.splitlines()
             if line.lower().startswith("model name")}
    if names:
        assert live["cpu"]["model"] in names
    else:
        assert live["cpu"]["model"] is None or isinstance(live["cpu"]["model"], str)


def test_disks_match_lsblk(live: dict) -> None:
    if shutil.which("lsblk") is None:
        missing_component("lsblk (util-linux) is not installed")
    out = subprocess.run(["lsblk", "-b", "-d", "-n", "-o", "NAME,SIZE,RM,TYPE"],
                         capture_output=True, text=True, check=True).stdout
    expected = {}
    for line in out.splitlines():
        name, size, removable, kind = line.split()
        if kind == "disk" and removable == "0" and int(size) > 0 \
                and not name.startswith(("zram", "loop", "ram", "nbd")):
            expected[name] = int(size)
    assert {d["name"]: d["size_bytes"] for d in live["disks"]} == expected


def test_firmware_matches_sysfs_or_is_reported_missing(live: dict) -> None:
    if (DMI / "bios_date").exists():
        want = parse_bios_date((DMI / "bios_date").read_text())
        assert live["firmware"]["release_date"] == (want.isoformat() if want else None)
        assert not any(e["kind"] == "not_found" for e in live.get("errors", []))
    else:
        # A VM without SMBIOS (this one boots its kernel directly): an explicit error,
        # and every DMI-sourced fact null rather than guessed.
        kinds = {(e["kind"], "DMI" in e["message"]) for e in live["errors"]}
        assert ("not_found", True) in kinds
        assert live["manufacturer"] is None and live["serial"] is None
        assert live["firmware"] == {"vendor": None, "version": None, "release_date": None,
                                    "mode": "uefi" if Path("/sys/firmware/efi").is_dir()
                                    else None}
        assert live["chassis_type_code"] is None


def test_virtualisation_matches_the_cpu_flag(live: dict) -> None:
    flagged = "hypervisor" in Path("/proc/cpuinfo").read_text().split()
    if flagged:
        assert live["is_virtual"] is True and live["chassis"] == "virtual"
    if shutil.which("systemd-detect-virt"):
        vm = subprocess.run(["systemd-detect-virt", "--vm"], capture_output=True,
                            text=True).stdout.strip()
        assert live["is_virtual"] is (vm != "none")
        if vm in ("kvm", "vmware", "xen", "oracle", "microsoft") and live["hypervisor"]:
            assert live["hypervisor"] == {"oracle": "virtualbox",
                                          "microsoft": "hyperv"}.get(vm, vm)


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_sysfs_tree_of_a_real_thinkpad(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    dmi = {f"sys/class/dmi/id/{k}": v + "\n" for k, v in
           sysfs_files("lenovo-thinkpad.txt").items()}
    write_tree(root, {
        **dmi,
        "proc/cpuinfo": "processor\t: 0\nmodel name\t: Intel(R) Core(TM) i5-2450M CPU @ "
                        "2.50GHz\nflags\t\t: fpu vme de pse tsc msr\n",
        "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq": "3100000\n",
        "sys/block/sda/size": "976773168\n", "sys/block/sda/removable": "0\n",
        "sys/block/sda/queue/rotational": "1\n", "sys/block/sda/device/model": "ST500LT012-1DG14\n",
        "sys/block/nvme0n1/size": "1000215216\n", "sys/block/nvme0n1/removable": "0\n",
        "sys/block/nvme0n1/queue/rotational": "0\n",
        "sys/block/nvme0n1/device/model": "Samsung SSD 970 EVO Plus 500GB        \n",
        "sys/block/sdb/size": "60088320\n", "sys/block/sdb/removable": "1\n",
        "sys/block/sdb/queue/rotational": "1\n",
        "sys/block/loop0/size": "8\n",
        "sys/devices/virtual/block/vdz/size": "100\n",
        "sys/class/power_supply/BAT0/manufacture_year": "2011\n",
        "sys/class/power_supply/BAT0/manufacture_month": "10\n",
        "sys/class/power_supply/BAT0/manufacture_day": "3\n",
        "sys/class/power_supply/AC/online": "1\n",
    })
    (root / "sys/block/vdz").symlink_to(root / "sys/devices/virtual/block/vdz")
    (root / "sys/firmware/efi").mkdir(parents=True)
    monkeypatch.setattr(hardware_linux, "ROOT", root)
    hw = collect(tmp_path / "state", {"os": {"install_date": "2012-01-20T03:04:05Z"}})
    assert (hw["manufacturer"], hw["model"], hw["serial"]) == ("LENOVO", "ThinkPad Edge E320",
                                                               "LR9NKZ7")
    assert (hw["chassis"], hw["chassis_type_code"]) == ("laptop", 10)
    assert hw["is_virtual"] is False and hw["hypervisor"] is None
    assert hw["cpu"]["model"] == "Intel(R) Core(TM) i5-2450M CPU @ 2.50GHz"
    assert hw["cpu"]["max_mhz"] == 3100.0
    assert hw["firmware"] == {"vendor": "LENOVO", "version": "8NET32WW (1.16 )",
                              "release_date": "2011-12-01", "mode": "uefi"}
    assert hw["disks"] == [
        {"name": "nvme0n1", "model": "Samsung SSD 970 EVO Plus 500GB",
         "size_bytes": 1000215216 * 512, "type": "nvme"},
        {"name": "sda", "model": "ST500LT012-1DG14", "size_bytes": 976773168 * 512,
         "type": "hdd"}]
    assert hw["manufacture_date"] == {"value": "2011-10-03", "estimated": True, "evidence": [
        {"source": "firmware_date", "date": "2011-12-01"},
        {"source": "battery_manufacture_date", "date": "2011-10-03"},
        {"source": "os_install_date", "date": "2012-01-20"},
        {"source": "first_seen", "date": "2026-11-22"}]}
    assert "errors" not in hw


def test_unreadable_serial_is_a_permission_error(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    files = sysfs_files("dell-r640.txt")
    del files["product_serial"]  # root-only: absent for an unprivileged agent
    write_tree(tmp_path / "root", {f"sys/class/dmi/id/{k}": v for k, v in files.items()})
    (tmp_path / "root/sys/block").mkdir(parents=True)
    monkeypatch.setattr(hardware_linux, "ROOT", tmp_path / "root")
    hw = collect(tmp_path / "state")
    assert hw["serial"] is None and hw["model"] == "PowerEdge R640" and hw["chassis"] == "server"
    assert [e["kind"] for e in hw["errors"]] == ["permission"]
    assert "product_serial" in hw["errors"][0]["message"]
    assert hw["firmware"]["mode"] == "bios"


def test_virtual_machines_ignore_hypervisor_firmware_dates(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    write_tree(tmp_path / "root", {f"sys/class/dmi/id/{k}": v for k, v in
                                   sysfs_files("vmware.txt").items()})
    (tmp_path / "root/sys/block").mkdir(parents=True)
    monkeypatch.setattr(hardware_linux, "ROOT", tmp_path / "root")
    hw = collect(tmp_path / "state", {"os": {"install_date": "2019-05-02T00:00:00Z"}})
    assert hw["is_virtual"] is True and hw["hypervisor"] == "vmware"
    assert hw["firmware"]["release_date"] == "2008-07-22"  # reported, but not age evidence
    assert hw["manufacture_date"]["value"] == "2019-05-02"
    assert [e["source"] for e in hw["manufacture_date"]["evidence"]] == ["os_install_date",
                                                                         "first_seen"]


def test_estimate_is_the_earliest_plausible_evidence() -> None:
    today = date(2026, 11, 22)
    est = estimate_manufacture_date([("firmware_date", date(2023, 6, 1)),  # BIOS updated
                                     ("battery_manufacture_date", date(2019, 3, 4)),
                                     ("os_install_date", date(1970, 1, 1)),  # unset clock
                                     ("first_seen", date(2030, 1, 1)),  # future: wrong clock
                                     ("asset_register", None)], today)
    assert est == {"value": "2019-03-04", "estimated": True, "evidence": [
        {"source": "firmware_date", "date": "2023-06-01"},
        {"source": "battery_manufacture_date", "date": "2019-03-04"}]}
    assert estimate_manufacture_date([], today) == {"value": None, "estimated": True,
                                                    "evidence": []}


def test_first_seen_is_written_once(tmp_path: Path) -> None:
    assert read_first_seen(tmp_path / "state", NOW) == date(2026, 11, 22)
    later = datetime(2027, 3, 1, tzinfo=timezone.utc)
    assert read_first_seen(tmp_path / "state", later) == date(2026, 11, 22)
    assert (tmp_path / "state" / FIRST_SEEN_FILE).read_text().strip() == "2026-11-22"
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [FIRST_SEEN_FILE]


def test_unwritable_state_dir_drops_first_seen_without_failing(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state dir should be")
    assert read_first_seen(blocker / "state", NOW) is None
    hw = collect(blocker / "state")
    assert all(e["source"] != "first_seen" for e in hw["manufacture_date"]["evidence"])
