"""Linux hardware facts from /sys and /proc only: no process, a few dozen small reads."""

from __future__ import annotations

import os
import re
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import psutil

from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading
from kiemke.agent.parsers.chassis import chassis_kind, detect_hypervisor
from kiemke.agent.parsers.dmi_sysfs import clean, parse_dmi_id
from kiemke.agent.parsers.dmidecode import read_dmidecode
from kiemke.agent.parsers.errors import ParseError
from kiemke.agent.runner import run, which

# Tests point this at a directory tree shaped like / (sys/, proc/).
ROOT = Path("/")
DMIDECODE_TIMEOUT = 5.0

DMI_FILES = ("sys_vendor", "product_name", "product_version", "product_serial",
             "chassis_type", "chassis_vendor", "chassis_serial", "board_vendor",
             "board_name", "board_serial", "bios_vendor", "bios_version", "bios_date")
# Block devices that are not disks: loop, RAM disks, compressed swap, optical, floppy.
_NOT_A_DISK = re.compile(r"^(loop|ram|zram|sr|fd|nbd|dm-|md)\d*")


def _read(path: Path) -> str | None:
    try:
        return path.read_text("utf-8", "replace").strip()
    except OSError:
        return None


def read_dmi() -> dict[str, str | None] | None:
    """The /sys/class/dmi/id files that exist; None when the machine has no DMI table."""
    base = ROOT / "sys/class/dmi/id"
    if not base.is_dir():
        return None
    return {name: _read(base / name) for name in DMI_FILES}


def read_cpuinfo() -> dict[str, Any]:
    """Model name, whether the CPU says it runs under a hypervisor, rated GHz in the name."""
    text = _read(ROOT / "proc/cpuinfo") or ""
    model = None
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if model is None and key in ("model name", "hardware", "cpu model", "processor") \
                and not value.strip().isdigit():
            model = clean(" ".join(value.split()))
        elif not flags and key in ("flags", "features"):
            flags = set(value.split())
        if model and flags:
            break
    return {"model": model, "hypervisor_flag": "hypervisor" in flags}


def cpu_max_mhz(model: str | None) -> float | None:
    """cpufreq's maximum; without cpufreq (most VMs) the rated speed in the model name."""
    khz = _read(ROOT / "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if khz and khz.isdigit() and int(khz) > 0:
        return round(int(khz) / 1000, 1)
    m = re.search(r"@\s*(\d+(?:\.\d+)?)\s*GHz", model or "")
    return round(float(m.group(1)) * 1000, 1) if m else None


def cpu_sockets() -> int | None:
    """Distinct physical packages in /sys/devices/system/cpu/cpu*/topology (no root)."""
    base = ROOT / "sys/devices/system/cpu"
    try:
        names = [n for n in os.listdir(base) if re.fullmatch(r"cpu\d+", n)]
    except OSError:
        return None
    packages = {_read(base / n / "topology/physical_package_id") for n in names}
    packages.discard(None)
    return len(packages) or None


def read_smbios(errors: list[dict[str, str]]) -> dict[str, Any]:
    """Sockets and installed memory from `dmidecode`, where the agent is root and
    dmidecode is installed (sysfs shows neither); {} otherwise. The table does not change
    while the machine runs, so it is read once per agent process."""
    facts, found = _smbios_once()
    errors.extend(found)
    return facts


@lru_cache(maxsize=1)
def _smbios_once() -> tuple[dict[str, Any], list[dict[str, str]]]:
    errors: list[dict[str, str]] = []
    return _run_dmidecode(errors), errors


def _run_dmidecode(errors: list[dict[str, str]]) -> dict[str, Any]:
    """A dump that stops early is an error entry and its figures are not used."""
    if os.geteuid() != 0:
        return {}
    binary = which("dmidecode")
    if binary is None:
        return {}
    try:
        facts, problem = read_dmidecode(run([binary], timeout=DMIDECODE_TIMEOUT,
                                            env={"LC_ALL": "C"}))
    except CollectorError as exc:
        errors.append(exc.entry("hardware"))
        return {}
    except ParseError as exc:
        errors.append(CollectorError.from_parse_error(exc, "dmidecode output").entry("hardware"))
        return {}
    if problem:
        errors.append(CollectorError("failed", f"dmidecode output {problem}; installed "
                                     "memory and sockets are left unknown").entry("hardware"))
        return {}
    return facts


def read_disks() -> list[dict[str, Any]]:
    """Fixed physical disks from /sys/block: virtual, removable and empty devices skipped."""
    disks: list[dict[str, Any]] = []
    block = ROOT / "sys/block"
    try:
        names = sorted(os.listdir(block))
    except OSError as exc:
        raise CollectorError("failed", f"cannot list {block}: {exc.strerror}") from exc
    for name in names:
        if _NOT_A_DISK.match(name):
            continue
        dev = block / name
        try:
            if "/devices/virtual/" in os.path.realpath(dev):
                continue
        except OSError:
            continue
        if _read(dev / "removable") == "1":
            continue
        sectors = _read(dev / "size")
        size = int(sectors) * 512 if sectors and sectors.isdigit() else None
        if not size:
            continue
        rotational = _read(dev / "queue/rotational")
        if name.startswith("nvme"):
            kind = "nvme"
        elif name.startswith(("vd", "xvd")):
            kind = "unknown"  # paravirtual disks report rotational=1 whatever backs them
        elif rotational == "0":
            kind = "ssd"
        elif rotational == "1":
            kind = "hdd"
        else:
            kind = "unknown"
        model = clean(_read(dev / "device/model"))
        disks.append({"name": name, "model": model, "size_bytes": size, "type": kind})
    return disks[:64]


# Paravirtual clocks a kernel registers only when it runs under that hypervisor.
_PV_CLOCKS = (("kvm-clock", "kvm"), ("hyperv_clocksource", "hyperv"), ("xen", "xen"))


def clock_hypervisor() -> str | None:
    """The hypervisor named by the kernel's paravirtual clock sources, if any."""
    text = _read(ROOT / "sys/devices/system/clocksource/clocksource0/available_clocksource")
    for clock in (text or "").split():
        for prefix, name in _PV_CLOCKS:
            if clock.startswith(prefix):
                return name
    return None


def read_battery_date() -> date | None:
    """The earliest manufacture date any battery reports (power_supply sysfs ABI)."""
    found: list[date] = []
    base = ROOT / "sys/class/power_supply"
    try:
        names = os.listdir(base)
    except OSError:
        return None
    for name in names:
        if not name.startswith("BAT"):
            continue
        y = _read(base / name / "manufacture_year")
        if not (y and y.isdigit()):
            continue
        m = _read(base / name / "manufacture_month") or "1"
        d = _read(base / name / "manufacture_day") or "1"
        try:
            found.append(date(int(y), int(m) if m.isdigit() else 1, int(d) if d.isdigit() else 1))
        except ValueError:
            continue
    return min(found, default=None)


def read(ctx: Context) -> PlatformReading:
    errors: list[dict[str, str]] = []
    dmi_raw = read_dmi()
    dmi: dict[str, Any] = parse_dmi_id(dmi_raw) if dmi_raw is not None else {}
    if dmi_raw is None:
        errors.append(CollectorError(
            "not_found", "this machine exposes no SMBIOS/DMI table (/sys/class/dmi/id is "
            "missing), so manufacturer, model, serial, chassis and firmware are unknown"
        ).entry("hardware"))
    elif dmi_raw.get("product_serial") is None:
        errors.append(CollectorError(
            "permission", "the serial number (/sys/class/dmi/id/product_serial) is readable "
            "only by root; run the kiemke agent as root to report it").entry("hardware"))
    cpuinfo = read_cpuinfo()
    xen = _read(ROOT / "sys/hypervisor/type")
    hypervisor = detect_hypervisor(dmi.get("manufacturer"), dmi.get("product_name"),
                                   dmi.get("firmware_vendor"), dmi.get("firmware_version"),
                                   dmi.get("board_vendor"))
    if hypervisor is None and xen:
        hypervisor = xen.lower()
    if hypervisor is not None:
        is_virtual: bool | None = True
    elif cpuinfo["hypervisor_flag"]:
        # The CPU says it is virtualised; without DMI strings (Firecracker, some clouds)
        # the kernel's paravirtual clock still names the hypervisor.
        is_virtual = True
        hypervisor = clock_hypervisor()
    else:
        is_virtual = False
    code = dmi.get("chassis_type_code")
    try:
        disks = read_disks()
    except CollectorError as exc:
        errors.append(exc.entry("hardware"))
        disks = []
    efi = (ROOT / "sys/firmware/efi").is_dir()
    mode = "uefi" if efi else ("bios" if dmi_raw is not None else None)
    smbios = read_smbios(errors)
    # Installed memory (SMBIOS) when dmidecode could be read; else what the kernel
    # manages, a little less than installed.
    memory = smbios.get("memory_bytes") or psutil.virtual_memory().total
    firmware_date: date | None = dmi.get("firmware_date")
    facts: dict[str, Any] = {
        "manufacturer": dmi.get("manufacturer"),
        "model": dmi.get("model"),
        "serial": dmi.get("serial"),
        "chassis": chassis_kind(code, is_virtual),
        "chassis_type_code": code,
        "is_virtual": is_virtual,
        "hypervisor": hypervisor,
        "cpu": {
            "model": cpuinfo["model"],
            "sockets": smbios.get("cpu_sockets") or cpu_sockets(),
            "cores_physical": psutil.cpu_count(logical=False),
            "cores_logical": os.cpu_count(),
            "max_mhz": cpu_max_mhz(cpuinfo["model"]),
        },
        "memory_bytes": int(memory) if memory else None,
        "disks": disks,
        "firmware": {
            "vendor": dmi.get("firmware_vendor"),
            "version": dmi.get("firmware_version"),
            "release_date": firmware_date.isoformat() if firmware_date else None,
            "mode": mode,
        },
    }
    return PlatformReading(facts=facts, errors=errors, dates={
        "firmware_date": firmware_date, "battery_date": read_battery_date()})
