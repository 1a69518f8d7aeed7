"""Hardware facts: make, model, serial, chassis, CPU, memory, disks, firmware, age.

Platform code reads (hardware_linux from /sys and /proc, no process; hardware_windows
from CIM in one PowerShell run); this module adds what both share: the estimated
manufacture date and the agent's own first-seen date.

Manufacture date estimate: the EARLIEST of the evidence dates. Every piece of evidence
can only be later than the real manufacture date, never earlier: firmware is built
before the machine ships and a BIOS update only moves its date later; a battery is made
for the machine (a replacement battery is newer); the OS is installed after the machine
is built and reinstalls are later; the agent is installed later still. So the minimum
is the closest bound. Hypervisor firmware and battery dates say nothing about a virtual
machine's age and are left out there.
"""

from __future__ import annotations

import contextlib
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

from kiemke.agent.collectors.base import (
    Collector,
    Context,
    read_platform,
    register,
)

FIRST_SEEN_FILE = "first_seen"
# Evidence before this is a firmware with an unset clock or a placeholder.
_PLAUSIBLE_FROM = date(1995, 1, 1)


# PlatformReading.dates keys the hardware halves fill (dated evidence of age).
FIRMWARE_DATE = "firmware_date"
BATTERY_DATE = "battery_date"


def _iso_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def read_first_seen(state_dir: Path, now: datetime) -> date | None:
    """The date the agent first ran here, written once to <state_dir>/first_seen.

    A read-only or missing state dir is not an error: the evidence is then left out.
    """
    path = Path(state_dir) / FIRST_SEEN_FILE
    try:
        found = _iso_date(path.read_text("utf-8").strip())
        if found:
            return found
    except OSError:
        pass
    today = now.date()
    tmp = path.with_name(FIRST_SEEN_FILE + f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(today.isoformat() + "\n", "utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return None
    return today


def estimate_manufacture_date(evidence: list[tuple[str, date | None]], today: date
                              ) -> dict[str, Any]:
    """{"value": earliest plausible date, "estimated": True, "evidence": [...]}."""
    kept = [{"source": source, "date": d.isoformat()} for source, d in evidence
            if d is not None and _PLAUSIBLE_FROM <= d <= today]
    value = min((e["date"] for e in kept), default=None)
    return {"value": value, "estimated": True, "evidence": kept}


@register
class HardwareCollector(Collector):
    name = "hardware"
    section = "hardware"
    # The OS install date is evidence of age: read it from the os section.
    after = ("os",)
    default_timeout = 20.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        reading = read_platform("hardware", ctx, "hardware facts")
        facts = dict(reading.facts)
        virtual = facts.get("is_virtual") is True
        os_install = _iso_date((ctx.results.get("os") or {}).get("install_date"))
        evidence = [
            ("firmware_date", None if virtual else reading.dates.get(FIRMWARE_DATE)),
            ("battery_manufacture_date", None if virtual else reading.dates.get(BATTERY_DATE)),
            ("os_install_date", os_install),
            ("first_seen", read_first_seen(ctx.state_dir, ctx.now)),
        ]
        facts["manufacture_date"] = estimate_manufacture_date(evidence, ctx.now.date())
        if reading.errors:
            facts["errors"] = reading.errors[:32]
        return facts
