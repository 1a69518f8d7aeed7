"""Windows hardware classes (Win32_Processor, Win32_PhysicalMemory, Win32_ComputerSystem,
Win32_BIOS, Win32_SystemEnclosure, Win32_BaseBoard) -> hardware facts.

Input rows are CIM instances as `Get-CimInstance | ConvertTo-Json` or `wmic /format:list`
give them (numbers may be text: every value goes through wmi.as_int).

Win32_Processor is one instance per socket on Windows Vista / Server 2008 and later,
and on XP SP3 / Server 2003 with KB932370. Before that hotfix there is one instance per
logical processor and no NumberOfCores: sockets are then the distinct socket names, the
logical count is the number of instances, and physical cores are unknown (hyper-threading
cannot be told apart). Counts that contradict each other (more cores than logical
processors, as some hypervisors report) are unknown, not guessed.
"""

from __future__ import annotations

from typing import Any

from kiemke.agent.parsers.chassis import chassis_code, detect_hypervisor
from kiemke.agent.parsers.dmi_sysfs import best_model, clean, cpu_name, parse_bios_date
from kiemke.agent.parsers.wmi import as_int, cim_datetime

_CENTRAL_PROCESSOR = 3  # Win32_Processor.ProcessorType
# Win32_Processor.CpuStatus: 1 enabled, 4 idle (a working socket); 2 and 3 are disabled
# by the user or the BIOS, 0 unknown (kept: older Windows leave it 0).
_CPU_RUNNING = {None, 0, 1, 4}


def processor_facts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """{"model", "sockets", "cores_physical", "cores_logical", "max_mhz"}."""
    cpus = [r for r in rows
            if as_int(r.get("ProcessorType")) in (None, _CENTRAL_PROCESSOR)
            and as_int(r.get("CpuStatus")) in _CPU_RUNNING]
    models: list[str] = []
    for c in cpus:
        name = cpu_name(c.get("Name"))
        if name and name not in models:
            models.append(name)
    speeds = [as_int(c.get("MaxClockSpeed")) for c in cpus]
    facts: dict[str, Any] = {
        "model": " + ".join(models) if models else None,
        "sockets": None, "cores_physical": None, "cores_logical": None,
        "max_mhz": float(max(s for s in speeds if s)) if any(speeds) else None,
    }
    if not cpus:
        return facts
    cores = [as_int(c.get("NumberOfCores")) for c in cpus]
    logical = [as_int(c.get("NumberOfLogicalProcessors")) for c in cpus]
    if all(c is None for c in cores) and all(n is None for n in logical):
        # Before KB932370: one instance per logical processor.
        sockets = {clean(c.get("SocketDesignation")) for c in cpus}
        facts["sockets"] = len(sockets) if None not in sockets else None
        facts["cores_logical"] = len(cpus)
        return facts
    facts["sockets"] = len(cpus)
    physical = sum(c for c in cores if c) if None not in cores and all(cores) else None
    threads = sum(n for n in logical if n) if None not in logical and all(logical) else None
    if physical is not None and threads is not None and threads < physical:
        return facts  # contradictory counts: unknown
    facts["cores_physical"] = physical
    facts["cores_logical"] = threads
    return facts


def memory_bytes(modules: list[dict[str, Any]], computer_system: dict[str, Any]) -> int | None:
    """Installed memory: the modules' capacities; TotalPhysicalMemory (usable memory,
    a little less than installed) only when no module reports a capacity."""
    sizes = [as_int(m.get("Capacity")) for m in modules]
    total = sum(s for s in sizes if s and s > 0)
    return total or as_int(computer_system.get("TotalPhysicalMemory")) or None


def system_facts(cs: dict[str, Any], bios: dict[str, Any], enclosure: dict[str, Any],
                 board: dict[str, Any]) -> dict[str, Any]:
    """Make, model, serial, chassis and firmware. Placeholders count as absent: the
    serial comes from the BIOS, else the enclosure (Dell's service tag on some models),
    else the baseboard; make and model fall back to the baseboard."""
    manufacturer = clean(cs.get("Manufacturer")) or clean(board.get("Manufacturer"))
    model = best_model(manufacturer, clean(cs.get("Model")), clean(cs.get("SystemFamily"))) \
        or clean(board.get("Product"))
    version = clean(bios.get("SMBIOSBIOSVersion")) or clean(bios.get("Version"))
    hypervisor = detect_hypervisor(clean(cs.get("Manufacturer")), clean(cs.get("Model")),
                                   clean(bios.get("Manufacturer")), version,
                                   clean(bios.get("Version")))
    types = enclosure.get("ChassisTypes")
    first = types[0] if isinstance(types, list) and types else types
    released = cim_datetime(bios.get("ReleaseDate"))
    if released is None and isinstance(bios.get("ReleaseDate"), str):
        # Some firmware puts the SMBIOS text (mm/dd/yyyy) where CIM wants a datetime.
        firmware_date = parse_bios_date(bios.get("ReleaseDate"))
    else:
        firmware_date = released.date() if released else None
    return {
        "manufacturer": manufacturer,
        "model": model,
        "serial": (clean(bios.get("SerialNumber")) or clean(enclosure.get("SerialNumber"))
                   or clean(board.get("SerialNumber"))),
        "chassis_type_code": chassis_code(as_int(first) if first is not None else None),
        "hypervisor": hypervisor,
        "is_virtual": (hypervisor is not None) if cs or bios else None,
        "firmware_vendor": clean(bios.get("Manufacturer")),
        "firmware_version": version,
        "firmware_date": firmware_date,
    }
