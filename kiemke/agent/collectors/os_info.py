"""Operating system facts and vendor support status (collector "os", section "os").

Support status comes from kiemke/agent/data/os_eol.json, a dated table citing the
vendors' lifecycle pages: `supported` is true while ctx.now is on or before the last
day of security updates, false after it, and null when the release is not in the table
(never guessed).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from kiemke.agent.collectors.base import (
    Collector,
    Context,
    read_platform,
    register,
)

ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "x64": "x86_64",
                 "i386": "x86", "i486": "x86", "i586": "x86", "i686": "x86", "x86": "x86",
                 "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm", "armv6l": "arm"}


# PlatformReading.dates key the OS halves fill: the last day of vendor support.
END_OF_SUPPORT = "end_of_support"


@lru_cache(maxsize=1)
def eol_table() -> dict[str, Any]:
    text = resources.files("kiemke.agent").joinpath("data/os_eol.json").read_text("utf-8")
    return json.loads(text)


def normalise_arch(value: str | None) -> str | None:
    """Kernel machine names and Windows OSArchitecture texts -> x86_64 / x86 / arm64 / arm."""
    if not value:
        return None
    text = value.strip().lower()
    if text in ARCHITECTURES:
        return ARCHITECTURES[text]
    if "arm" in text:
        return "arm64" if "64" in text else "arm"
    if "64" in text:  # "64-bit", "64 bits" (French), "64 Bit" (German)
        return "x86_64"
    if "32" in text:
        return "x86"
    return value.strip()[:64]


def windows_edition_class(edition_id: str | None) -> str | None:
    if not edition_id:
        return None
    for cls, editions in eol_table()["windows_edition_classes"].items():
        if cls != "about" and edition_id.lower() in (e.lower() for e in editions):
            return cls
    return None


def windows_end_of_support(build: int | None, server: bool, edition_id: str | None,
                           service_pack: int | None = None, ubr: int | None = None,
                           caption: str | None = None) -> tuple[date | None, str | None]:
    """(last day of support, release name) for a Windows build; (None, None) if unknown.

    Narrowed, where the table says so, by the service pack (XP, Server 2003, Vista and
    Server 2008 keep one build across service packs), the update build revision
    (Windows 8.1 before its April 2014 update; an unreadable revision counts as updated)
    and, for servers, the channel: a product name without a year ("Windows Server
    Datacenter") is a Semi-Annual Channel release, no name at all counts as LTSC.
    A release that needs the service pack or revision to be told apart and does not have
    it is unknown. When the edition's servicing class is unknown the earliest matching
    date is used, so a machine is never reported supported for longer than it is.
    """
    if build is None:
        return None, None
    kind = "server" if server else "client"
    matches = [e for e in eol_table()["windows"] if e["kind"] == kind and build in e["builds"]]
    if any("service_pack" in e for e in matches):
        if service_pack is None:
            return None, None
        matches = [e for e in matches if e.get("service_pack", service_pack) == service_pack]
    if any("ubr_below" in e or "ubr_from" in e for e in matches):
        if ubr is None:
            # Unreadable revision: the update was required for every later patch, so a
            # machine still patched has it.
            matches = [e for e in matches if "ubr_below" not in e] or matches
        else:
            matches = [e for e in matches if ubr < e.get("ubr_below", ubr + 1)
                       and ubr >= e.get("ubr_from", 0)]
    if server and any("channel" in e for e in matches):
        # No product name: the Long-Term Servicing Channel (SAC was Server Core only).
        channel = "sac" if caption and not re.search(r"\b(19|20)\d\d\b", caption) \
            else "ltsc"
        matches = [e for e in matches if e.get("channel", channel) == channel]
    if not matches:
        return None, None
    cls = windows_edition_class(edition_id)
    exact = [e for e in matches if e["class"] in ("any", cls)]
    if not exact:
        # Unknown edition, or LTSC on a build that only had general-availability releases.
        exact = [e for e in matches if e["class"] in ("any", "home_pro")] or matches
    best = min(exact, key=lambda e: e["end"])
    return date.fromisoformat(best["end"]), best["name"]


def linux_end_of_support(os_id: str | None, version_id: str | None, name: str | None = None
                         ) -> tuple[date | None, str | None]:
    """(last day of support, release name) from os-release ID and VERSION_ID."""
    if not os_id or not version_id:
        return None, None
    stream = "stream" in (name or "").lower()
    for entry in eol_table()["linux"]:
        if entry["id"] != os_id.lower():
            continue
        if "stream" in entry and entry["stream"] != stream:
            continue
        v = entry["version"]
        if version_id == v or version_id.startswith(v + "."):
            return date.fromisoformat(entry["end"]), entry["name"]
    return None, None


def support_status(end: date | None, now: datetime) -> bool | None:
    return None if end is None else now.date() <= end


@register
class OsCollector(Collector):
    name = "os"
    section = "os"
    default_timeout = 20.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        reading = read_platform("os_info", ctx, "OS facts")
        facts = dict(reading.facts)
        end = reading.dates.get(END_OF_SUPPORT)
        facts["supported"] = support_status(end, ctx.now)
        facts["end_of_support"] = end.isoformat() if end else None
        if reading.errors:
            facts["errors"] = reading.errors[:32]
        return facts
