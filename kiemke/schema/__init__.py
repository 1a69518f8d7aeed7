"""The report format: one JSON Schema file is the single source of truth."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_VERSION = 1


@cache
def load_schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """Return the JSON Schema of report format `version`."""
    text = resources.files(__package__).joinpath(f"report-v{version}.json").read_text("utf-8")
    return json.loads(text)


SECTIONS: tuple[str, ...] = (
    "identity",
    "hardware",
    "os",
    "antivirus",
    "security_monitoring",
    "network",
    "printers",
    "extras",
)
