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
    PlatformReading,
    read_platform,
    register,
)
from kiemke.agent.parsers.av_vendors import VendorConfigError, VendorTable, table_with_extras

MAX_PRODUCTS = 32


def vendor_table(ctx: Context) -> VendorTable:
    """The built-in vendor table plus the site's [antivirus] extra_products and
    [security_monitoring] agents."""
    try:
        return table_with_extras(ctx.config.antivirus_extra, ctx.config.monitoring_agents)
    except VendorConfigError as exc:
        source = ctx.config.source
        where = f"{source}: " if source else "agent configuration: "
        raise CollectorError("failed", where + str(exc)) from exc


def max_signature_age(ctx: Context) -> float:
    return float(ctx.config.max_signature_age_days or 7.0)


def as_section(reading: PlatformReading) -> dict[str, Any]:
    """The report section from a platform half's reading (bounded lists)."""
    section: dict[str, Any] = {"products": list(reading.facts["products"])[:MAX_PRODUCTS]}
    if reading.errors:
        section["errors"] = reading.errors[:32]
    return section


@register
class AntivirusCollector(Collector):
    name = "antivirus"
    section = "antivirus"
    default_timeout = 15.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        return as_section(read_platform("antivirus", ctx, "antivirus facts"))
