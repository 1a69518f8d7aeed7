"""Linux printers from CUPS: one `lpstat -d -v -l -p` run, plus the PPD files for drivers.

cupsd keeps each queue's PPD in <ServerRoot>/ppd/<name>.ppd and its sharing flag in
<ServerRoot>/printers.conf (root-readable: the agent runs as root); when those cannot
be read the driver and shared fields are null, not guessed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading
from kiemke.agent.parsers.errors import ParseError
from kiemke.agent.parsers.lpstat import (
    VIRTUAL_SCHEMES,
    display_uri,
    is_network_uri,
    looks_virtual,
    lpstat_failure,
    parse_lpstat,
    ppd_nickname,
    printers_conf_shared,
    uri_scheme,
)
from kiemke.agent.runner import run, which

LPSTAT_TIMEOUT = 5.0


def server_root() -> Path:
    return Path(os.environ.get("CUPS_SERVERROOT") or "/etc/cups")


def run_lpstat() -> str:
    """lpstat's output; "" when CUPS runs but has no printer. Errors say what to do."""
    lpstat = which("lpstat")
    if lpstat is None:
        raise CollectorError("not_found", "CUPS is not installed (no lpstat command), so "
                             "printers cannot be listed; install the 'cups' package to "
                             "print from this machine")
    try:
        return run([lpstat, "-d", "-v", "-l", "-p"], timeout=LPSTAT_TIMEOUT,
                   env={"LC_ALL": "C", "LANG": "C"})
    except CollectorError as exc:
        if exc.kind != "failed":
            raise
        failure = lpstat_failure(exc.message)
        if failure is not None:
            raise CollectorError(*failure) from exc
        return ""


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text("utf-8", "replace")
    except OSError:
        return None


def read(ctx: Context) -> PlatformReading:
    try:
        listing = parse_lpstat(run_lpstat())
    except ParseError as exc:
        raise CollectorError.from_parse_error(exc, "lpstat's printer list") from exc
    root = server_root()
    conf = _read_text(root / "printers.conf")
    shared = printers_conf_shared(conf) if conf is not None else {}
    printers: list[dict[str, Any]] = []
    for p in listing["printers"]:
        name, uri = p["name"], p["uri"]
        ppd = _read_text(root / "ppd" / f"{name}.ppd")
        driver = ppd_nickname(ppd) if ppd else None
        virtual = uri_scheme(uri) in VIRTUAL_SCHEMES or looks_virtual(name, driver)
        printers.append({
            "name": name[:256],
            "driver": driver,
            "port": display_uri(uri),
            "network": False if virtual else is_network_uri(uri),
            "default": name == listing["default"],
            "shared": shared.get(name) if conf is not None else None,
            "virtual": virtual,
        })
    return PlatformReading(facts={"printers": printers})
