"""Windows hardware facts: every CIM class in one PowerShell run, plus one registry read.

Virtual machines are recognised by the SMBIOS strings hypervisors write (Model
"Virtual Machine", "VMware Virtual Platform", BIOS "VBOX", ...), not by
Win32_ComputerSystem.HypervisorPresent: that is also true on physical PCs running
Hyper-V or virtualisation-based security (default on Windows 11).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading
from kiemke.agent.parsers.chassis import chassis_kind
from kiemke.agent.parsers.dmi_sysfs import clean
from kiemke.agent.parsers.errors import ParseError
from kiemke.agent.parsers.win_hardware import memory_bytes, processor_facts, system_facts
from kiemke.agent.parsers.wmi import as_int, cim_datetime, normalise_cim
from kiemke.agent.windows import powershell

CONTROL_KEY = r"HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Control"
STORAGE_NS = "root/Microsoft/Windows/Storage"
QUERIES: dict[str, powershell.CimQuery] = {
    "cs": ("Win32_ComputerSystem", "root/cimv2",
           ("Manufacturer", "Model", "SystemFamily", "TotalPhysicalMemory",
            "HypervisorPresent", "PCSystemType")),
    "bios": ("Win32_BIOS", "root/cimv2",
             ("Manufacturer", "SMBIOSBIOSVersion", "Version", "ReleaseDate", "SerialNumber")),
    "enclosure": ("Win32_SystemEnclosure", "root/cimv2", ("ChassisTypes", "SerialNumber")),
    "baseboard": ("Win32_BaseBoard", "root/cimv2", ("Manufacturer", "Product", "SerialNumber")),
    "cpu": ("Win32_Processor", "root/cimv2",
            ("Name", "NumberOfCores", "NumberOfLogicalProcessors", "MaxClockSpeed",
             "SocketDesignation", "ProcessorType", "CpuStatus")),
    "memory": ("Win32_PhysicalMemory", "root/cimv2", ("Capacity",)),
    "disks": ("Win32_DiskDrive", "root/cimv2",
              ("Index", "Model", "Size", "MediaType", "InterfaceType", "PNPDeviceID")),
    "physical_disks": ("MSFT_PhysicalDisk", STORAGE_NS,
                       ("DeviceId", "FriendlyName", "MediaType", "BusType", "Size")),
    "battery": ("BatteryStaticData", "root/WMI", ("ManufactureDate", "DeviceName")),
}
# Classes whose absence is normal: the storage namespace is missing before Windows 8 /
# Server 2012, BatteryStaticData on desktops; the facts are then taken from elsewhere.
OPTIONAL = {"physical_disks", "battery", "baseboard"}
NVME_BUS = 17
MSFT_MEDIA = {3: "hdd", 4: "ssd"}


def _rows(results: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = results.get(key)
    return [normalise_cim(r) for r in value] if isinstance(value, list) else []


def disks_from(drives: list[dict[str, Any]], physical: list[dict[str, Any]]
               ) -> list[dict[str, Any]]:
    """Win32_DiskDrive (fixed disks only) joined to MSFT_PhysicalDisk on Index = DeviceId."""
    by_id = {str(p.get("DeviceId")): p for p in physical if p.get("DeviceId") is not None}
    disks: list[dict[str, Any]] = []
    for d in sorted(drives, key=lambda x: as_int(x.get("Index")) or 0):
        media = str(d.get("MediaType") or "").lower()
        if "removable" in media or "external" in media or d.get("InterfaceType") == "USB":
            continue
        index = as_int(d.get("Index"))
        p = by_id.get(str(index), {})
        model = clean(d.get("Model")) or clean(p.get("FriendlyName"))
        pnp = str(d.get("PNPDeviceID") or "").upper()
        if as_int(p.get("BusType")) == NVME_BUS or "NVME" in pnp or "NVME" in (model or "").upper():
            kind = "nvme"
        else:
            kind = MSFT_MEDIA.get(as_int(p.get("MediaType")) or 0, "unknown")
        size = as_int(d.get("Size")) or as_int(p.get("Size"))
        name = f"PHYSICALDRIVE{index}" if index is not None else (model or "disk")
        disks.append({"name": name, "model": model, "size_bytes": size, "type": kind})
    return disks[:64]


def hardware_facts(results: dict[str, Any], firmware_type: int | None
                   ) -> tuple[dict[str, Any], date | None, date | None]:
    """Pure: cim_batch results -> (facts, firmware date, battery date)."""
    cs = (_rows(results, "cs") or [{}])[0]
    system = system_facts(cs, (_rows(results, "bios") or [{}])[0],
                          (_rows(results, "enclosure") or [{}])[0],
                          (_rows(results, "baseboard") or [{}])[0])
    firmware_date: date | None = system["firmware_date"]
    battery_dates = [cim_datetime(b.get("ManufactureDate")) for b in _rows(results, "battery")]
    battery = min((d.date() for d in battery_dates if d), default=None)
    code = system["chassis_type_code"]
    facts: dict[str, Any] = {
        "manufacturer": system["manufacturer"],
        "model": system["model"],
        "serial": system["serial"],
        "chassis": chassis_kind(code, system["is_virtual"]),
        "chassis_type_code": code,
        "is_virtual": system["is_virtual"],
        "hypervisor": system["hypervisor"],
        "cpu": processor_facts(_rows(results, "cpu")),
        "memory_bytes": memory_bytes(_rows(results, "memory"), cs),
        "disks": disks_from(_rows(results, "disks"), _rows(results, "physical_disks")),
        "firmware": {
            "vendor": system["firmware_vendor"],
            "version": system["firmware_version"],
            "release_date": firmware_date.isoformat() if firmware_date else None,
            "mode": {1: "bios", 2: "uefi"}.get(firmware_type or 0),
        },
    }
    return facts, firmware_date, battery


def read(ctx: Context) -> PlatformReading:
    results = powershell.cim_batch(QUERIES)
    errors = [v.entry("hardware") for k, v in results.items()
              if isinstance(v, CollectorError) and k not in OPTIONAL]
    if len(errors) == len(QUERIES) - len(OPTIONAL):
        raise CollectorError(errors[0]["kind"], "no hardware class could be read: "
                             + errors[0]["message"])
    try:
        firmware_type = as_int(powershell.registry_values(CONTROL_KEY).get("PEFirmwareType"))
    except CollectorError as exc:
        errors.append(exc.entry("hardware"))
        firmware_type = None
    try:
        facts, firmware_date, battery = hardware_facts(results, firmware_type)
    except ParseError as exc:
        raise CollectorError.from_parse_error(exc, "the hardware CIM classes") from exc
    return PlatformReading(facts=facts, errors=errors, dates={
        "firmware_date": firmware_date, "battery_date": battery})
