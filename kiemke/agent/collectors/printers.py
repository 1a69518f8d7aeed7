"""Printers known to this machine (collector and section "printers").

An empty list means the print system answered and has no printer. When the print
system itself is missing or not running the section carries an error instead, because
"no printer" and "cannot tell" count differently in the unit rule "has a printer".
"""

from __future__ import annotations

from typing import Any

from kiemke.agent.collectors.base import (
    Collector,
    Context,
    read_platform,
    register,
)


@register
class PrintersCollector(Collector):
    name = "printers"
    section = "printers"
    default_timeout = 15.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        reading = read_platform("printers", ctx, "printers")
        section: dict[str, Any] = {"printers": list(reading.facts["printers"])[:64]}
        if reading.errors:
            section["errors"] = reading.errors[:32]
        return section
