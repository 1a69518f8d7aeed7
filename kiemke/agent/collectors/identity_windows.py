"""Identity on Windows: Win32_ComputerSystemProduct, Win32_SystemEnclosure, registry."""

from __future__ import annotations

import contextlib
from typing import Any

from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading
from kiemke.agent.windows import powershell

CRYPTOGRAPHY_KEY = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Cryptography"


def parse_product(rows: list[dict[str, Any]]) -> dict[str, str | None]:
    """UUID and IdentifyingNumber (the serial) from Win32_ComputerSystemProduct rows."""
    row = rows[0] if rows else {}
    return {"smbios_uuid": row.get("UUID"), "serial": row.get("IdentifyingNumber")}


def parse_enclosure(rows: list[dict[str, Any]]) -> str | None:
    """SMBIOSAssetTag of the first Win32_SystemEnclosure that has one."""
    for row in rows:
        tag = row.get("SMBIOSAssetTag")
        if isinstance(tag, str) and tag.strip():
            return tag.strip()
    return None


def parse_computer_system(rows: list[dict[str, Any]]) -> dict[str, str | None]:
    """Domain (or workgroup) and DNS host name from Win32_ComputerSystem."""
    row = rows[0] if rows else {}
    domain = row.get("Domain") if row.get("PartOfDomain") else (row.get("Workgroup")
                                                                 or row.get("Domain"))
    return {"domain": domain or None, "hostname": row.get("DNSHostName") or row.get("Name")}


def read(ctx: Context) -> PlatformReading:
    errors: list[dict[str, str]] = []
    raw: dict[str, Any] = {"smbios_uuid": None, "serial": None, "machine_guid": None,
                           "asset_tag": None, "hostname": None, "domain": None}
    try:
        raw.update(parse_product(powershell.cim_query(
            "Win32_ComputerSystemProduct", properties=("UUID", "IdentifyingNumber"))))
    except CollectorError as exc:
        errors.append(exc.entry("identity"))
    with contextlib.suppress(CollectorError):  # the asset tag is optional
        raw["asset_tag"] = parse_enclosure(powershell.cim_query(
            "Win32_SystemEnclosure", properties=("SMBIOSAssetTag",)))
    try:
        cs = parse_computer_system(powershell.cim_query(
            "Win32_ComputerSystem",
            properties=("Name", "DNSHostName", "Domain", "PartOfDomain", "Workgroup")))
        raw.update({k: v for k, v in cs.items() if v})
    except CollectorError as exc:
        errors.append(exc.entry("identity"))
    try:
        raw["machine_guid"] = powershell.registry_values(CRYPTOGRAPHY_KEY).get("MachineGuid")
    except CollectorError as exc:
        errors.append(exc.entry("identity"))
    return PlatformReading(facts=raw, errors=errors)
