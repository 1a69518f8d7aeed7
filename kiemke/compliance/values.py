"""Fact value types shared by the fact registries, the expression checker and rule tests.

A fact's value is one of: bool, number (int/float), string, date (datetime.date) or a list
of strings. A fact that could not be established is absent from the facts dict (or None):
the expression language reads that as UNKNOWN.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

BOOL = "bool"
NUMBER = "number"
STRING = "string"
DATE = "date"
LIST = "list[string]"
LIST_NUMBER = "list[number]"  # only list literals in expressions
TYPES = (BOOL, NUMBER, STRING, DATE, LIST)


@dataclass(frozen=True)
class FactDef:
    """One named fact: its type and what it means (shown in docs/rules.md)."""

    type: str
    description: str


def coerce(value: Any, type_: str) -> Any:
    """Convert a value written in a YAML test case to the fact's Python type.

    Raises ValueError with a message for IT staff when it does not fit.
    """
    if value is None:
        return None
    if type_ == BOOL:
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true or false, got {value!r}")
    if type_ == NUMBER:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return value
        raise ValueError(f"expected a number, got {value!r}")
    if type_ == STRING:
        if isinstance(value, str):
            return value
        raise ValueError(f"expected text in quotes, got {value!r}")
    if type_ == DATE:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value[:10])
            except ValueError:
                pass
        raise ValueError(f"expected a date like 2024-12-31, got {value!r}")
    if type_ == LIST:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ValueError(f"expected a list of texts like [\"a\", \"b\"], got {value!r}")
    raise ValueError(f"unknown type {type_}")
