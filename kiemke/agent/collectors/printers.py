"""Printers known to this machine (collector and section "printers").

An empty list means the print system answered and has no printer. When the print
system itself is missing or not running the section carries an error instead, because
"no printer" and "cannot tell" count differently in the unit rule "has a printer".
"""

from __future__ import annotations

from typing import Any

from kiemke.agent.collectors.base import Collector, CollectorError, Context, register


@register
class PrintersCollector(Collector):
    name = "printers"
    section = "printers"
    default_timeout = 15.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        if ctx.platform == "linux":
            from kiemke.agent.collectors import printers_linux as platform_module
        elif ctx.platform == "windows":
            from kiemke.agent.collectors import printers_windows as platform_module
        else:
            raise CollectorError("unsupported", f"printers are not read on {ctx.platform}")
        printers, errors = platform_module.read(ctx)
        section: dict[str, Any] = {"printers": printers[:64]}
        if errors:
            section["errors"] = errors[:32]
        return section
