"""Unit facts: aggregates over the machines of one unit (office), for unit rules.

The caller passes the facts of the unit's *active* (non-stale) machines. A unit with
no reporting machine cannot show a printer, Internet or LAN: those facts are then
unknown, and only unit.reporting_machines (0) is known - so "has reporting
computers" fails while the others are unknown, not failed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .values import BOOL, NUMBER, FactDef

UNIT_FACTS: dict[str, FactDef] = {
    "unit.level": FactDef(NUMBER, "depth in the unit tree, 0 for a root (province/ministry)"),
    "unit.reporting_machines": FactDef(NUMBER, "active machines that reported"),
    "unit.printers": FactDef(NUMBER, "distinct physical printers seen by the unit's machines"),
    "unit.printer_machines": FactDef(NUMBER, "machines that see at least one physical printer"),
    "unit.internet_machines": FactDef(NUMBER, "machines whose Internet probe succeeded"),
    "unit.networked_machines": FactDef(NUMBER, "machines with network.networked"),
    "unit.lan_machines": FactDef(NUMBER, "largest number of machines sharing one private "
                                         "subnet behind the same gateway"),
    "unit.lan": FactDef(BOOL, "at least 2 machines share a private subnet and gateway"),
}


def unit_facts(machines: Iterable[Mapping[str, Any]], *, level: int | None = None
               ) -> dict[str, Any]:
    """Aggregate machine facts (see facts.FACTS) into UNIT_FACTS for one unit."""
    count = 0
    printers: set[str] = set()
    printer_machines = internet = networked = 0
    printers_known = internet_known = lan_known = False
    segments: Counter[tuple[str, str]] = Counter()
    for f in machines:
        count += 1
        names = f.get("printers.names")
        if names is not None:
            printers_known = True
            if names:
                printer_machines += 1
                printers.update(n.casefold() for n in names)
        ok = f.get("network.internet_ok")
        if ok is not None:
            internet_known = True
            internet += ok is True
        networked += f.get("network.networked") is True
        subnets = f.get("network.subnets")
        gateway = f.get("network.gateway")
        if subnets is not None:
            lan_known = True
            if gateway:
                for subnet in set(subnets):
                    segments[(subnet, gateway)] += 1
    facts: dict[str, Any] = {"unit.reporting_machines": count,
                             "unit.networked_machines": networked}
    if level is not None:
        facts["unit.level"] = level
    # Positive evidence counts even when some machines could not tell.
    if printers or printers_known:
        facts["unit.printers"] = len(printers)
        facts["unit.printer_machines"] = printer_machines
    if internet or internet_known:
        facts["unit.internet_machines"] = internet
    largest = max(segments.values(), default=0)
    if largest >= 2 or (lan_known and count >= 2):
        facts["unit.lan_machines"] = largest
        facts["unit.lan"] = largest >= 2
    return facts
