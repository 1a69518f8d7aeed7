"""`dmidecode` text output -> SMBIOS structures and the hardware facts they hold.

The agent reads /sys/class/dmi/id on Linux (no process, no root for most fields);
this parser serves dumps collected by administrators (`dmidecode > file`) and checks
the sysfs path against the same machines in tests.
"""

from __future__ import annotations

import re
from typing import Any

from kiemke.agent.parsers.chassis import chassis_code
from kiemke.agent.parsers.dmi_sysfs import best_model, clean, parse_bios_date
from kiemke.agent.parsers.errors import ParseError

_HANDLE = re.compile(r"^Handle 0x[0-9A-Fa-f]+, DMI type (\d+), \d+ bytes\.?\s*$")


def parse_dmidecode(text: str) -> list[dict[str, Any]]:
    """Every structure as {"type": int, "title": str, "props": {key: str | list[str]}}.

    A key with an empty value followed by deeper-indented lines (Characteristics,
    Flags) gets those lines as a list. Tabs or spaces both occur in real dumps.
    """
    if not isinstance(text, str) or "DMI type" not in text:
        raise ParseError("has no SMBIOS structures (empty, truncated, or not dmidecode "
                         "output)", source="dmidecode output")
    structures: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    key_indent: int | None = None
    last_key: str | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        m = _HANDLE.match(line)
        if m:
            current = {"type": int(m.group(1)), "title": None, "props": {}}
            structures.append(current)
            key_indent, last_key = None, None
            continue
        if current is None or not line.strip():
            continue
        indent = len(line.expandtabs(8)) - len(line.expandtabs(8).lstrip())
        if current["title"] is None and indent == 0:
            current["title"] = line.strip()
            continue
        if indent == 0:
            continue
        if key_indent is None:
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
    if not structures:
        raise ParseError("has no SMBIOS structures", source="dmidecode output")
    return structures


def _first(structures: list[dict[str, Any]], dmi_type: int) -> dict[str, Any]:
    for s in structures:
        if s["type"] == dmi_type:
            return s["props"]
    return {}


def _mhz(value: object) -> float | None:
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*MHz", str(value or ""))
    # Hypervisors fill in placeholders such as 30000 MHz: no real CPU is above 10 GHz.
    return float(m.group(1)) if m and 0 < float(m.group(1)) <= 10000 else None


def _int(value: object) -> int | None:
    m = re.match(r"^\s*(\d+)\s*$", str(value or ""))
    return int(m.group(1)) if m else None


def dmidecode_facts(structures: list[dict[str, Any]]) -> dict[str, Any]:
    """The same keys as dmi_sysfs.parse_dmi_id, plus the CPU of the type 4 structures."""
    bios, system, chassis = _first(structures, 0), _first(structures, 1), _first(structures, 3)
    manufacturer = clean(system.get("Manufacturer"))
    product = clean(system.get("Product Name"))
    cpus = [s["props"] for s in structures if s["type"] == 4
            and str(s["props"].get("Status", "")).startswith("Populated, Enabled")]
    cores = [_int(c.get("Core Count")) for c in cpus]
    threads = [_int(c.get("Thread Count")) for c in cpus]
    speeds = [_mhz(c.get("Max Speed")) for c in cpus]
    return {
        "manufacturer": manufacturer,
        "model": best_model(manufacturer, product, clean(system.get("Version"))),
        "product_name": product,
        "serial": clean(system.get("Serial Number")),
        "uuid": clean(system.get("UUID")),
        "chassis_type_code": chassis_code(clean(chassis.get("Type"))),
        "chassis_vendor": clean(chassis.get("Manufacturer")),
        "firmware_vendor": clean(bios.get("Vendor")),
        "firmware_version": clean(bios.get("Version")),
        "firmware_date": parse_bios_date(bios.get("Release Date")),
        "cpu_model": clean(cpus[0].get("Version")) if cpus else None,
        "cpu_sockets": len(cpus),
        "cores_physical": sum(cores) if cpus and None not in cores else None,
        "cores_logical": sum(threads) if cpus and None not in threads else None,
        "cpu_max_mhz": max((s for s in speeds if s), default=None),
    }
