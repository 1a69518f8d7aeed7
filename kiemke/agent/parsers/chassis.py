"""SMBIOS chassis types and virtual-machine signatures -> the report's chassis words.

Codes are SMBIOS 3.x (DSP0134) table 7.4.1, "System Enclosure or Chassis Types";
dmidecode prints the same list as names, Win32_SystemEnclosure.ChassisTypes as codes.
"""

from __future__ import annotations

import re

# SMBIOS type code -> the name dmidecode prints for it.
CHASSIS_NAMES: dict[int, str] = {
    1: "Other", 2: "Unknown", 3: "Desktop", 4: "Low Profile Desktop", 5: "Pizza Box",
    6: "Mini Tower", 7: "Tower", 8: "Portable", 9: "Laptop", 10: "Notebook",
    11: "Hand Held", 12: "Docking Station", 13: "All In One", 14: "Sub Notebook",
    15: "Space-saving", 16: "Lunch Box", 17: "Main Server Chassis", 18: "Expansion Chassis",
    19: "Sub Chassis", 20: "Bus Expansion Chassis", 21: "Peripheral Chassis",
    22: "RAID Chassis", 23: "Rack Mount Chassis", 24: "Sealed-case PC", 25: "Multi-system",
    26: "CompactPCI", 27: "AdvancedTCA", 28: "Blade", 29: "Blade Enclosing", 30: "Tablet",
    31: "Convertible", 32: "Detachable", 33: "IoT Gateway", 34: "Embedded PC",
    35: "Mini PC", 36: "Stick PC",
}
_CODE_BY_NAME = {name.lower(): code for code, name in CHASSIS_NAMES.items()}
_CODE_BY_NAME["multi-system chassis"] = 25
_CODE_BY_NAME["blade enclosure"] = 29
_CODE_BY_NAME["all in one"] = 13

_DESKTOP = {3, 4, 5, 6, 7, 15, 16, 24, 34, 35, 36}
_LAPTOP = {8, 9, 10, 11, 14, 30, 31, 32}
_ALL_IN_ONE = {13}
_SERVER = {17, 18, 19, 20, 21, 22, 23, 25, 26, 27, 28, 29}


def chassis_code(value: str | int | None) -> int | None:
    """A chassis type as an SMBIOS code, from a code, a numeric string or a dmidecode name."""
    if value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    text = value.strip()
    if text.isdigit():
        return int(text)
    return _CODE_BY_NAME.get(text.lower())


def chassis_kind(code: int | None, is_virtual: bool | None = None) -> str:
    """desktop / laptop / all-in-one / server / virtual / other / unknown.

    A virtual machine is "virtual" whatever its firmware claims: hypervisors report
    Other (QEMU, VMware) or even Desktop (VirtualBox) and that is not a real box.
    """
    if is_virtual:
        return "virtual"
    if code is None or code == 2:
        return "unknown"
    # The low 7 bits are the type; bit 7 is the "chassis lock present" flag.
    code &= 0x7F
    if code in _DESKTOP:
        return "desktop"
    if code in _LAPTOP:
        return "laptop"
    if code in _ALL_IN_ONE:
        return "all-in-one"
    if code in _SERVER:
        return "server"
    return "other"


# (pattern over "manufacturer product bios-vendor bios-version", hypervisor name),
# first match wins. From the strings hypervisors put in SMBIOS (systemd-detect-virt's
# dmi_vendor_table uses the same ones).
_VM_SIGNATURES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), name) for p, name in (
        (r"vmware", "vmware"),
        (r"virtualbox|innotek", "virtualbox"),
        (r"microsoft corporation.*virtual machine|hyper-v", "hyperv"),
        (r"\bxen\b|hvm domu", "xen"),
        (r"parallels", "parallels"),
        (r"bhyve", "bhyve"),
        (r"amazon ec2", "amazon"),
        (r"google compute engine", "google"),
        (r"openstack|nova", "openstack"),
        (r"\bkvm\b", "kvm"),
        (r"qemu|bochs|seabios|standard pc \(", "qemu"),
        (r"apple virtualization", "apple"),
    ))


def detect_hypervisor(*strings: str | None) -> str | None:
    """The hypervisor named by DMI / WMI vendor and product strings, or None."""
    text = " ".join(s for s in strings if s)
    if not text:
        return None
    for pattern, name in _VM_SIGNATURES:
        if pattern.search(text):
            return name
    return None
