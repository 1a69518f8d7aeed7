"""Windows printers from Win32_Printer.

Win32_Printer.Network is true only for connections to a shared queue on another
computer (\\\\server\\printer); a local queue on a Standard TCP/IP or WSD port prints over
the network too, so the port name decides as well.
"""

from __future__ import annotations

import re
from typing import Any

from kiemke.agent.collectors.base import Context, PlatformReading
from kiemke.agent.parsers.lpstat import looks_virtual
from kiemke.agent.parsers.wmi import as_bool, normalise_cim
from kiemke.agent.windows import powershell

# WorkOffline/Local are not queried: the report has no field for them.
PROPERTIES = ("Name", "DriverName", "PortName", "Network", "Default", "Shared")
_VIRTUAL_PORT = re.compile(r"^(portprompt:|nul:?|xpsport:|shrfax:|file:|onenote|"
                           r"microsoft\.office\.onenote|.*\.pdf$)", re.IGNORECASE)
_NETWORK_PORT = re.compile(r"^(ip_|wsd|\\\\|https?://|tcpmon|.*\d+\.\d+\.\d+\.\d+)",
                           re.IGNORECASE)
_LOCAL_PORT = re.compile(r"^(usb\d+|lpt\d+:?|com\d+:?|dot4_\d+|ts\d+)$", re.IGNORECASE)


def printer_facts(row: dict[str, Any]) -> dict[str, Any]:
    """Pure: one normalised Win32_Printer instance -> the report's printer entry."""
    name = str(row.get("Name") or "").strip()
    driver = row.get("DriverName") or None
    port = row.get("PortName") or None
    virtual = bool(port and _VIRTUAL_PORT.match(port)) or looks_virtual(name, driver)
    network: bool | None
    if virtual:
        network = False
    elif as_bool(row.get("Network")) or (port and _NETWORK_PORT.match(port)) \
            or name.startswith("\\\\"):
        network = True
    elif port and _LOCAL_PORT.match(port):
        network = False
    else:
        network = None
    return {
        "name": name[:256],
        "driver": driver[:512] if isinstance(driver, str) else None,
        "port": port[:512] if isinstance(port, str) else None,
        "network": network,
        "default": as_bool(row.get("Default")),
        "shared": as_bool(row.get("Shared")),
        "virtual": virtual,
    }


def read(ctx: Context) -> PlatformReading:
    rows = powershell.cim_query("Win32_Printer", properties=PROPERTIES)
    printers = [printer_facts(normalise_cim(r)) for r in rows]
    return PlatformReading(facts={"printers": [p for p in printers if p["name"]]})
