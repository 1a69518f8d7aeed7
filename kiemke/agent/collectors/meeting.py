"""Online-meeting readiness (collector and section "meeting").

Plans 001 (Bắc Giang: online meetings for over 60% of meetings), 002 and 003 (meetings
with the government held online) need PCs that can join: a camera and a microphone
that are present and enabled, and the meeting software the agency uses. The list of
programs is configurable ([meeting] software = Name:match1|match2, ...); by default the
common ones below. Device names are kept in the full inventory only.
"""

from __future__ import annotations

from typing import Any

from kiemke.agent.collectors.base import (
    Collector,
    CollectorError,
    Context,
    read_platform,
    register,
)
from kiemke.agent.parsers.media_devices import Device, section

# (display name, case-insensitive substrings of the installed program's name)
DEFAULT_SOFTWARE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Zoom", ("zoom",)),
    ("Microsoft Teams", ("microsoft teams", "teams-for-linux", "msteams")),
    ("Cisco Webex", ("webex",)),
    ("Jitsi Meet", ("jitsi",)),
    ("Skype", ("skype",)),
)


def wanted_of(ctx: Context) -> list[tuple[str, tuple[str, ...]]]:
    return wanted_software(list(ctx.config.meeting_software))


def wanted_software(specs: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    if not specs:
        return list(DEFAULT_SOFTWARE)
    out = []
    for spec in specs:
        name, sep, matches = spec.partition(":")
        patterns = tuple(m.strip() for m in matches.split("|") if m.strip())
        if not sep or not name.strip() or not patterns:
            raise CollectorError("failed", f"[meeting] software entry {spec!r} is not "
                                 "Name:match1|match2; fix agent.conf")
        out.append((name.strip(), patterns))
    return out


@register
class MeetingCollector(Collector):
    name = "meeting"
    section = "meeting"
    default_timeout = 15.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        reading = read_platform("meeting", ctx, "cameras and microphones")
        devices: list[Device] = list(reading.facts["devices"])
        out = section(devices, list(reading.facts["software"]))
        if reading.errors:
            out["errors"] = reading.errors[:16]
        return out
