"""`dmidecode` text output -> SMBIOS structures and the hardware facts they hold.

The agent reads /sys/class/dmi/id on Linux (no process, no root for most fields) and,
when it runs as root and dmidecode is installed, one `dmidecode` run for what sysfs does
not show (sockets, installed memory modules). This parser also serves dumps collected by
administrators (`dmidecode > file`).

Two layouts exist. dmidecode 2.7 and later:

    Handle 0x0000, DMI type 0, 24 bytes
    BIOS Information
    <TAB>Vendor: Dell Inc.

and the 2.0-2.6 layout (RHEL 3/4, ESX 2.x, some appliances), with other key names:

    Handle 0x0000
    <TAB>DMI type 0, 20 bytes.
    <TAB>BIOS Information Block
    <TAB><TAB>Vendor: IBM
    <TAB><TAB>Release: 12/11/2002

Both become the same structures; `_ALIASES` maps the old key names to the new ones.
A dump is checked for completeness: the header of a full dump announces how many
structures follow ("40 structures occupying 1146 bytes") or, for SMBIOS 3 tables, the
dump ends with the End Of Table structure. A dump that stops early is reported
(`DmiTable.problem`), never silently taken as the whole machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kiemke.agent.parsers.chassis import chassis_code, detect_hypervisor
from kiemke.agent.parsers.dmi_sysfs import best_model, clean, cpu_name, parse_bios_date
from kiemke.agent.parsers.errors import ParseError

_HANDLE = re.compile(r"^Handle 0x(?P<h>[0-9A-Fa-f]+), DMI type (?P<t>\d+), \d+ bytes\.?\s*$")
_HANDLE_OLD = re.compile(r"^Handle 0x(?P<h>[0-9A-Fa-f]+)\s*$")
_TYPE_OLD = re.compile(r"^\s+DMI type (?P<t>\d+), \d+ bytes\.?\s*$")
_SMBIOS = re.compile(r"^SMBIOS (?P<major>\d+)\.(?P<minor>\d+)(?:\.\d+)? present", re.MULTILINE)
_COUNT = re.compile(r"^(?P<n>\d+) structures occupying \d+ bytes", re.MULTILINE)
_TABLE_AT = re.compile(r"^(?:DMI )?[Tt]able at 0x", re.MULTILINE)
END_OF_TABLE = 127
# The 2.0-2.6 layout's key names -> today's, per structure type.
_ALIASES: dict[int, dict[str, str]] = {
    0: {"Release": "Release Date"},
    1: {"Vendor": "Manufacturer", "Product": "Product Name"},
    2: {"Vendor": "Manufacturer", "Product": "Product Name"},
    3: {"Vendor": "Manufacturer", "Chassis Type": "Type"},
    4: {"Processor Version": "Version", "Processor Manufacturer": "Manufacturer",
        "Processor Family": "Family", "Processor Type": "Type"},
}
_SIZE = re.compile(r"^\s*(?P<n>\d+)\s*(?P<unit>bytes|[kKMGT]B|[kKMGT]byte)\b")
_UNITS = {"bytes": 1, "k": 1 << 10, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_CPU_FAMILY_JUNK = {"other", "unknown"}


@dataclass
class DmiTable:
    """A parsed dump: the structures, the SMBIOS version, and what is missing from it."""

    structures: list[dict[str, Any]]
    smbios_version: tuple[int, int] | None = None
    announced: int | None = None
    problem: str | None = None  # set when the dump stopped before its end
    notes: list[str] = field(default_factory=list)


def _indent(line: str) -> int:
    expanded = line.expandtabs(8)
    return len(expanded) - len(expanded.lstrip())


def parse_dmidecode_table(text: str) -> DmiTable:
    """Every structure as {"type", "handle", "title", "props"}, plus completeness.

    A key with an empty value followed by deeper-indented lines (Characteristics,
    Flags) gets those lines as a list. Tabs or spaces both occur in real dumps.
    Raises ParseError when the text holds no SMBIOS structure at all.
    """
    if not isinstance(text, str) or "DMI type" not in text:
        raise ParseError("has no SMBIOS structures (empty, truncated, or not dmidecode "
                         "output)", source="dmidecode output")
    structures: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    title_indent = key_indent = 0
    last_key: str | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        m = _HANDLE.match(line)
        old = None if m else _HANDLE_OLD.match(line)
        if m or old:
            handle = (m or old).group("h").lower()  # type: ignore[union-attr]
            current = {"type": int(m.group("t")) if m else None, "handle": handle,
                       "title": None, "props": {}}
            structures.append(current)
            title_indent, key_indent, last_key = 0, 0, None
            continue
        if current is None or not line.strip():
            continue
        if current["type"] is None:
            t = _TYPE_OLD.match(line)
            if t:
                current["type"] = int(t.group("t"))
                continue
        indent = _indent(line)
        if current["title"] is None:
            current["title"] = line.strip()
            title_indent = indent
            continue
        if indent <= title_indent:
            continue  # hex dumps of OEM structures, stray text
        if not key_indent:
            key_indent = indent
        if indent > key_indent and last_key is not None:
            value = current["props"].get(last_key)
            if not isinstance(value, list):
                value = [] if value in (None, "") else [value]
                current["props"][last_key] = value
            value.append(line.strip())
            continue
        key, sep, value = line.strip().partition(":")
        if not sep:
            continue
        last_key = key.strip()
        current["props"][last_key] = value.strip()
    structures = [s for s in structures if s["type"] is not None]
    if not structures:
        raise ParseError("has no SMBIOS structures", source="dmidecode output")
    for s in structures:
        for old_key, new_key in _ALIASES.get(s["type"], {}).items():
            if old_key in s["props"] and new_key not in s["props"]:
                s["props"][new_key] = s["props"].pop(old_key)
    table = DmiTable(structures=structures)
    version = _SMBIOS.search(text)
    if version:
        table.smbios_version = (int(version.group("major")), int(version.group("minor")))
    count = _COUNT.search(text)
    if count:
        table.announced = int(count.group("n"))
        if len(structures) < table.announced:
            table.problem = (f"holds {len(structures)} of the {table.announced} SMBIOS "
                             "structures its header announces: the dump was cut short")
    elif _TABLE_AT.search(text) and not any(s["type"] == END_OF_TABLE for s in structures):
        table.problem = ("ends before the SMBIOS End Of Table structure: the dump was cut "
                         "short")
    return table


def parse_dmidecode(text: str) -> list[dict[str, Any]]:
    """The structures of a dump (see parse_dmidecode_table)."""
    return parse_dmidecode_table(text).structures


def _value(props: dict[str, Any], key: str) -> str | None:
    """A property as text: the first line when dmidecode printed a list under it."""
    value = props.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) else None


def _first(structures: list[dict[str, Any]], dmi_type: int) -> dict[str, Any]:
    for s in structures:
        if s["type"] == dmi_type:
            return dict(s["props"])
    return {}


def _mhz(value: object) -> float | None:
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*MHz", str(value or ""))
    # Hypervisors fill in placeholders such as 30000 MHz: no real CPU is above 10 GHz.
    return float(m.group(1)) if m and 0 < float(m.group(1)) <= 10000 else None


def _count(value: object) -> int | None:
    m = re.match(r"^\s*(\d+)\s*$", str(value or ""))
    return int(m.group(1)) if m and int(m.group(1)) > 0 else None


def size_bytes(value: object) -> int | None:
    """"8192 MB", "16 GB", "512 kB", "256Mbyte", "1024 MB (Single-bank Connection)" ->
    bytes; None for "No Module Installed", "Not Installed", "Unknown", 0."""
    if not isinstance(value, str):
        return None
    m = _SIZE.match(value)
    if not m:
        return None
    n = int(m.group("n")) * _UNITS[m.group("unit")[0] if m.group("unit") != "bytes"
                                   else "bytes"]
    return n or None


def _populated(cpu: dict[str, Any]) -> bool:
    status = _value(cpu, "Status")
    if status is not None:
        # "Populated, Idle" is a server's second socket at rest: a working processor.
        # "Disabled By BIOS/User" does not run (VMware lists every unused vCPU slot so).
        return status.lower() in ("populated, enabled", "populated, idle")
    # The 2.x layout has no Status: an empty socket has zeroed strings.
    return bool(clean(_value(cpu, "Version")) or clean(_value(cpu, "Manufacturer")))


def cpu_facts(structures: list[dict[str, Any]]) -> dict[str, Any]:
    """Sockets, model(s), cores and threads from the type 4 structures."""
    cpus = [s["props"] for s in structures if s["type"] == 4
            and (_value(s["props"], "Type") or "Central Processor") == "Central Processor"
            and _populated(s["props"])]
    models: list[str] = []
    for c in cpus:
        model = cpu_name(_value(c, "Version"))
        if model is None:
            family = clean(_value(c, "Family"))
            model = family if family and family.lower() not in _CPU_FAMILY_JUNK else None
        if model and model not in models:
            models.append(model)
    cores = [_count(_value(c, "Core Count")) for c in cpus]
    threads = [_count(_value(c, "Thread Count")) for c in cpus]
    speeds = [_mhz(_value(c, "Max Speed")) for c in cpus]
    physical = sum(c for c in cores if c) if cpus and None not in cores else None
    logical = sum(t for t in threads if t) if cpus and None not in threads else None
    if physical is not None and logical is not None and logical < physical:
        physical = logical = None  # contradictory counts (some hypervisors): unknown
    return {
        # Two different processors in one machine: both named.
        "cpu_model": " + ".join(models) if models else None,
        "cpu_sockets": len(cpus) or None,
        "cores_physical": physical,
        "cores_logical": logical,
        "cpu_max_mhz": max((s for s in speeds if s), default=None),
    }


def memory_facts(structures: list[dict[str, Any]]) -> dict[str, Any]:
    """Installed memory: the type 17 devices of the system-memory arrays (type 16), else
    the mapped ranges (type 19), else the old type 6 memory modules."""
    def key(handle: str) -> str:
        return handle.lower().removeprefix("0x").lstrip("0")

    not_ram = {key(s["handle"]) for s in structures if s["type"] == 16
               and (_value(s["props"], "Use") or "System Memory") != "System Memory"}
    devices = [s["props"] for s in structures if s["type"] == 17 and s["props"]]
    sized: list[int] = []
    for d in devices:
        if key(_value(d, "Array Handle") or "") in not_ram:
            continue  # flash or video memory arrays are not RAM
        size = size_bytes(_value(d, "Size"))
        if size:
            sized.append(size)
    if sized:
        return {"memory_bytes": sum(sized), "memory_modules": len(sized)}
    if any("Size" in d for d in devices):
        return {"memory_bytes": None, "memory_modules": 0}
    ranges = [size_bytes(_value(s["props"], "Range Size")) for s in structures
              if s["type"] == 19]
    if any(ranges):
        return {"memory_bytes": sum(r for r in ranges if r), "memory_modules": None}
    banks = [size_bytes(_value(s["props"], "Installed Size")) for s in structures
             if s["type"] == 6]
    if any(banks):
        installed = [b for b in banks if b]
        return {"memory_bytes": sum(installed), "memory_modules": len(installed)}
    return {"memory_bytes": None, "memory_modules": None}


def dmidecode_facts(structures: list[dict[str, Any]],
                    smbios_version: tuple[int, int] | None = None) -> dict[str, Any]:
    """The same keys as dmi_sysfs.parse_dmi_id, plus CPU, memory and hypervisor.

    Placeholders count as absent everywhere: the serial comes from the system (type 1),
    else the chassis (type 3, where Dell keeps the service tag on some models), else the
    baseboard (type 2); make and model fall back to the baseboard the same way.
    """
    bios, system = _first(structures, 0), _first(structures, 1)
    board, chassis = _first(structures, 2), _first(structures, 3)
    manufacturer = clean(_value(system, "Manufacturer")) or clean(_value(board, "Manufacturer"))
    product = clean(_value(system, "Product Name"))
    model = best_model(manufacturer, product, clean(_value(system, "Version"))) \
        or clean(_value(board, "Product Name"))
    firmware_vendor = clean(_value(bios, "Vendor"))
    firmware_version = clean(_value(bios, "Version"))
    two_digit = smbios_version is not None and smbios_version < (2, 3)
    facts: dict[str, Any] = {
        "manufacturer": manufacturer,
        "model": model,
        "product_name": product,
        "serial": (clean(_value(system, "Serial Number"))
                   or clean(_value(chassis, "Serial Number"))
                   or clean(_value(board, "Serial Number"))),
        "uuid": clean(_value(system, "UUID")),
        "chassis_type_code": chassis_code(clean(_value(chassis, "Type"))),
        "chassis_vendor": clean(_value(chassis, "Manufacturer")),
        "firmware_vendor": firmware_vendor,
        "firmware_version": firmware_version,
        "firmware_date": parse_bios_date(_value(bios, "Release Date"), two_digit),
        "hypervisor": detect_hypervisor(clean(_value(system, "Manufacturer")), product,
                                        firmware_vendor, firmware_version,
                                        clean(_value(board, "Manufacturer"))),
    }
    facts.update(cpu_facts(structures))
    facts.update(memory_facts(structures))
    return facts


def read_dmidecode(text: str) -> tuple[dict[str, Any], str | None]:
    """(facts, problem): problem says the dump was cut short (facts are then partial)."""
    table = parse_dmidecode_table(text)
    return dmidecode_facts(table.structures, table.smbios_version), table.problem
