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
    platform_module,
    register,
)


@register
class PrintersCollector(Collector):
    name = "printers"
    section = "printers"
    default_timeout = 15.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        printers, errors = platform_module("printers", ctx.platform, "printers").read(ctx)
        section: dict[str, Any] = {"printers": printers[:64]}
        if errors:
            section["errors"] = errors[:32]
        return section
