"""Cameras and microphones from Win32_PnPEntity; meeting programs from the Uninstall keys.

The PnP classes are selected by class GUID, which every Windows version since 7 has
(PNPClass, the name, exists only from Windows 8 on): Camera, Image, AudioEndpoint.
"""

from __future__ import annotations

from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading
from kiemke.agent.collectors.meeting import wanted_of
from kiemke.agent.collectors.signing_windows import installed_programs
from kiemke.agent.parsers.media_devices import (
    CLASS_GUIDS,
    Device,
    match_software,
    windows_devices,
)
from kiemke.agent.windows import powershell

PNP_SCRIPT = (
    "Get-CimInstance -ClassName Win32_PnPEntity -Filter \""
    + " OR ".join(f"ClassGuid='{guid}'" for guid in CLASS_GUIDS)
    + "\" -ErrorAction Stop | Select-Object Name,PNPClass,ClassGuid,PNPDeviceID,Status,"
    "ConfigManagerErrorCode | ConvertTo-Json -Compress"
)


def read(ctx: Context) -> PlatformReading:
    wanted = wanted_of(ctx)
    errors: list[dict[str, str]] = []
    devices: list[Device] = []
    try:
        devices = windows_devices(powershell.script_rows("pnp_media", PNP_SCRIPT,
                                                         "cameras and microphones"))
    except CollectorError as exc:
        errors.append({"collector": "meeting", "kind": exc.kind, "message": exc.message})
    software: list[str] = []
    try:
        software = match_software(installed_programs(), wanted)
    except CollectorError as exc:
        errors.append({"collector": "meeting", "kind": exc.kind, "product": "software",
                       "message": exc.message})
    return PlatformReading({"devices": devices, "software": software}, errors)
