"""Report validation: the JSON Schema compiled once, errors turned into field paths."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastjsonschema

from kiemke.schema import SCHEMA_VERSION, load_schema


@dataclass(frozen=True)
class Invalid:
    error: str
    field: str
    message: str


# The compiled schema: returns the report, raises JsonSchemaValueException.
Validator = Callable[[Any], Any]


# fastjsonschema names array items in its generated code with
# `"...[{data__x}]...".format(**locals())`, also on the success path (the name prefix handed
# to a $ref'd definition: every nullable string, date and time inside an array item).
# locals() of the generated function copies its hundreds of variables into a dict each
# time: half the cost of validating a report (216 -> 100 us per report, in-process).
# The same template as an f-string gives the same text from the same variables.
_FORMAT_LOCALS = re.compile(r'"((?:[^"\\{}]|\{[A-Za-z_][A-Za-z0-9_]*\})*)"'
                            r"\.format\(\*\*locals\(\)\)")


def compile_validator() -> Validator:
    """The report schema as a Python function (fastjsonschema's code, its error names
    built with f-strings instead of format(**locals()))."""
    schema = load_schema(SCHEMA_VERSION)
    code = _FORMAT_LOCALS.sub(lambda m: f'f"{m.group(1)}"',
                              fastjsonschema.compile_to_code(schema))
    if "locals()" in code:  # a fastjsonschema release that generates something else
        return fastjsonschema.compile(schema)
    namespace: dict[str, Any] = {}
    exec(compile(code, "<report-v1 schema>", "exec"), namespace)  # noqa: S102 - our schema
    name = "validate_" + re.sub(r"[^a-zA-Z0-9_]", "_", schema["$id"])
    validator: Validator = namespace[name]
    return validator


def _dotted(path: list[Any]) -> str:
    """['hardware', 'disks', 0, 'size_bytes'] -> 'hardware.disks[0].size_bytes'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _path_of(exc: fastjsonschema.JsonSchemaValueException) -> list[Any]:
    # exc.name is "data.hardware.disks[0].size_bytes"; split it back into keys and indexes.
    path: list[Any] = []
    for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", exc.name or ""):
        path.append(int(index) if index else key)
    return path


def check_report(validate: Validator, report: Any) -> Invalid | None:
    """None when valid, else the first problem with the JSON path of the field."""
    if isinstance(report, dict) and "schema_version" in report \
            and report["schema_version"] != SCHEMA_VERSION:
        return Invalid("unsupported_schema_version", "schema_version",
                       f"schema_version {report['schema_version']!r} is not supported: this "
                       f"collector accepts version {SCHEMA_VERSION}; update the collector or "
                       f"install an agent that matches it")
    try:
        validate(report)
    except fastjsonschema.JsonSchemaValueException as exc:
        return _describe(exc)
    return None


def _describe(exc: fastjsonschema.JsonSchemaValueException) -> Invalid:
    path = _path_of(exc)
    rule, value = exc.rule, exc.value
    if rule == "required" and isinstance(value, dict):
        missing = [k for k in (exc.rule_definition or []) if k not in value]
        name = _dotted([*path, missing[0]]) if missing else _dotted(path)
        return Invalid("missing_field", name, f"the report has no {name!r}; this field is "
                       f"required (the agent may be too old or damaged: reinstall it)")
    if rule == "additionalProperties" and isinstance(value, dict):
        allowed = set((exc.definition or {}).get("properties", {}))
        extra = sorted(k for k in value if k not in allowed)
        name = _dotted([*path, extra[0]]) if extra else _dotted(path)
        return Invalid("unknown_field", name, f"{name!r} is not a field of report format "
                       f"version {SCHEMA_VERSION}")
    name = _dotted(path) or "body"
    if rule == "pattern" and str(exc.rule_definition).startswith("^[0-9]{4}"):
        example = "2024-05-06T08:00:00Z" if "T" in str(exc.rule_definition) else "2024-05-06"
        return Invalid("invalid_field", name, f"{name} must be a date/time like {example}, "
                       f"got {value!r}")
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    detail = exc.message.replace("data.", "", 1).replace("data ", "the report ", 1)
    return Invalid("invalid_field", name, f"{name} has an invalid value {shown}: {detail}")
