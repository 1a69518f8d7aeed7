"""Every collector module registers itself on import; this imports them all."""

from __future__ import annotations

import importlib
import logging

from kiemke.agent.collectors.base import REGISTRY, Collector, CollectorError, Context, register

log = logging.getLogger(__name__)

# One line per fact area: a new fact is one new module plus its test.
MODULES = (
    "identity",
    "hardware",
    "os_info",  # collector "os": the module is not named os.py to keep `import os` unambiguous
    "antivirus",
    "security_monitoring",
    "network",
    "printers",
    "signing",
    "mail",  # collector "email": not named email.py, to keep `import email` unambiguous
    "meeting",
)

# Modules whose name is not their report section's (os.py and email.py would shadow the
# standard library's modules of those names).
_RENAMED = {"os_info": "os", "mail": "email"}


def module_section(module: str) -> str:
    """The report section that collector module `module` fills."""
    return _RENAMED.get(module, module)


# Modules that could not be imported, with the reason: the report shows it as an
# error entry for that section instead of the agent crashing on a broken module.
LOAD_ERRORS: dict[str, str] = {}


def load_all() -> dict[str, type[Collector]]:
    for mod in MODULES:
        if mod in LOAD_ERRORS:
            continue
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except Exception as exc:  # noqa: BLE001 - one broken module must not stop the agent
            LOAD_ERRORS[mod] = f"{type(exc).__name__}: {exc}"
            log.error("collector module %s could not be loaded: %s", mod, LOAD_ERRORS[mod])
    return dict(REGISTRY)


__all__ = ["LOAD_ERRORS", "REGISTRY", "Collector", "CollectorError", "Context", "load_all",
           "module_section", "register"]
