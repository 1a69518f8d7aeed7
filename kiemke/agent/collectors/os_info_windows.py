"""Windows OS facts: Win32_OperatingSystem (CIM) plus the CurrentVersion registry key.

Caption gives the name ("Microsoft Windows 11 Pro": the registry's ProductName still
says "Windows 10" on Windows 11). The registry gives the feature release (DisplayVersion
"23H2", ReleaseId on builds before 20H2), the edition (EditionID) and the patch level
(UBR). ProductType 1 is a client; 2 (domain controller) and 3 are servers.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading, iso_utc
from kiemke.agent.collectors.os_info import (
    END_OF_SUPPORT,
    normalise_arch,
    windows_end_of_support,
)
from kiemke.agent.parsers.wmi import as_int, first
from kiemke.agent.windows import powershell

CURRENT_VERSION = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT\CurrentVersion"
OS_PROPERTIES = ("Caption", "Version", "BuildNumber", "InstallDate", "LastBootUpTime",
                 "OSArchitecture", "ProductType", "OperatingSystemSKU",
                 "ServicePackMajorVersion", "CSDVersion")
# Win32_OperatingSystem.OperatingSystemSKU -> EditionID, for when the registry is unreadable.
SKU_EDITIONS = {4: "Enterprise", 27: "EnterpriseN", 48: "Professional", 49: "ProfessionalN",
                98: "CoreN", 99: "CoreCountrySpecific", 100: "CoreSingleLanguage",
                101: "Core", 121: "Education", 122: "EducationN", 125: "EnterpriseS",
                126: "EnterpriseSN", 161: "ProfessionalWorkstation",
                164: "ProfessionalEducation", 175: "ServerRdsh", 188: "IoTEnterprise",
                191: "IoTEnterpriseS", 7: "ServerStandard", 8: "ServerDatacenter",
                10: "ServerEnterprise", 1: "Ultimate", 2: "HomeBasic", 3: "HomePremium",
                6: "Business"}


def os_facts(os_row: dict[str, Any], reg: dict[str, Any]) -> tuple[dict[str, Any], date | None]:
    """Pure: a normalised Win32_OperatingSystem instance and CurrentVersion values -> facts."""
    version_build = str(os_row.get("Version") or "").split(".")
    build = as_int(os_row.get("BuildNumber")) or as_int(reg.get("CurrentBuildNumber")) \
        or as_int(reg.get("CurrentBuild")) \
        or (as_int(version_build[2]) if len(version_build) == 3 else None)
    ubr = as_int(reg.get("UBR"))
    product_type = as_int(os_row.get("ProductType"))
    edition = reg.get("EditionID") or SKU_EDITIONS.get(
        as_int(os_row.get("OperatingSystemSKU")) or -1)
    caption = os_row.get("Caption") or reg.get("ProductName")
    # Without ProductType the edition or the product name says server or client.
    server = product_type in (2, 3) if product_type is not None \
        else (str(edition or "").lower().startswith("server")
              or "windows server" in str(caption or "").lower())
    service_pack = as_int(os_row.get("ServicePackMajorVersion"))
    if service_pack is None and os_row:
        csd = re.search(r"(\d+)", str(os_row.get("CSDVersion") or ""))
        service_pack = int(csd.group(1)) if csd else (0 if "CSDVersion" in os_row else None)
    end, _release = windows_end_of_support(build, server, edition, service_pack, ubr,
                                           caption if isinstance(caption, str) else None)
    install = os_row.get("InstallDate")
    boot = os_row.get("LastBootUpTime")
    facts: dict[str, Any] = {
        "family": "windows",
        "name": caption.strip()[:512] if isinstance(caption, str) else None,
        "version": reg.get("DisplayVersion") or reg.get("ReleaseId") or os_row.get("Version"),
        "build": (f"{build}.{ubr}" if build and ubr is not None else
                  str(build) if build else None),
        "edition": edition,
        "architecture": normalise_arch(os_row.get("OSArchitecture")),
        "kernel": os_row.get("Version"),
        "install_date": iso_utc(install) if isinstance(install, datetime) else None,
        "last_boot": iso_utc(boot) if isinstance(boot, datetime) else None,
    }
    return facts, end


def read(ctx: Context) -> PlatformReading:
    errors: list[dict[str, str]] = []
    try:
        os_row = first(powershell.cim_query("Win32_OperatingSystem", properties=OS_PROPERTIES))
    except CollectorError as exc:
        errors.append(exc.entry("os"))
        os_row = {}
    try:
        reg = powershell.registry_values(CURRENT_VERSION)
    except CollectorError as exc:
        errors.append(exc.entry("os"))
        reg = {}
    if not os_row and not reg:
        raise CollectorError(errors[0]["kind"] if errors else "failed",
                             "Windows version unreadable: neither Win32_OperatingSystem nor "
                             "the CurrentVersion registry key answered"
                             + (f" ({errors[0]['message']})" if errors else ""))
    facts, end = os_facts(os_row, reg)
    return PlatformReading(facts=facts, errors=errors, dates={END_OF_SUPPORT: end})
