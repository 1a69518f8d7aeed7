"""Every collector module registers itself on import; this imports them all."""

from __future__ import annotations

import importlib

from kiemke.agent.collectors.base import REGISTRY, Collector, CollectorError, Context, register

# One line per fact area: a new fact is one new module plus its test.
MODULES = (
    "identity",
    "hardware",
    "os",
    "antivirus",
    "security_monitoring",
    "network",
    "printers",
)


def load_all() -> dict[str, type[Collector]]:
    for mod in MODULES:
        importlib.import_module(f"{__name__}.{mod}")
    return dict(REGISTRY)


__all__ = ["REGISTRY", "Collector", "CollectorError", "Context", "load_all", "register"]
