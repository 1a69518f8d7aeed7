"""Section "antivirus": every antivirus product this machine has, with its state.

Plan 001 (Bắc Giang 251/KH-LĐLĐ) asks for licensed antivirus on 100% of networked
computers; the rules decide compliance from these facts. A query that fails is an error
entry next to the products that were found: an empty list is only reported as "no
antivirus" when every source answered.
"""

from __future__ import annotations

from typing import Any

from kiemke.agent.collectors.base import (
    Collector,
    CollectorError,
    Context,
    platform_module,
    register,
)
from kiemke.agent.parsers.av_vendors import VendorConfigError, VendorTable, table_with_extras


def vendor_table(ctx: Context) -> VendorTable:
    try:
        return table_with_extras(getattr(ctx.config, "antivirus_extra", ()) or (),
                                 getattr(ctx.config, "monitoring_agents", ()) or ())
    except VendorConfigError as exc:
        source = getattr(ctx.config, "source", None)
        where = f"{source}: " if source else "agent configuration: "
        raise CollectorError("failed", where + str(exc)) from exc


def max_signature_age(ctx: Context) -> float:
    return float(getattr(ctx.config, "max_signature_age_days", 7.0) or 7.0)


@register
class AntivirusCollector(Collector):
    name = "antivirus"
    section = "antivirus"
    default_timeout = 15.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        table = vendor_table(ctx)
        return platform_module("antivirus", ctx.platform, "antivirus facts").collect(ctx, table)
