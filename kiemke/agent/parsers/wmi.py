"""WMI data in its two wire forms -> plain dicts with Python values.

1. `wmic PATH <class> GET /format:list` dumps: UTF-16LE with a BOM, `Name=Value` lines,
   instances separated by blank lines, arrays as {"a","b"}, booleans TRUE/FALSE.
2. CIM objects from PowerShell `Get-CimInstance ... | ConvertTo-Json`: dates appear as
   "/Date(1396310400000)/" (Windows PowerShell 5.1), as ISO 8601 strings (PowerShell 7),
   or as {"value": "/Date(...)/", "DateTime": "..."} when PowerShell adds its note
   properties; the CIM bookkeeping properties (CimClass, CimInstanceProperties, ...)
   are noise.
CIM's own datetime text is "yyyymmddHHMMSS.mmmmmmsUUU" (UUU = UTC offset in minutes).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from kiemke.agent.parsers.errors import ParseError

_CIM_DATETIME = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})(?P<d>\d{2})(?P<h>\d{2})(?P<mi>\d{2})(?P<s>\d{2})"
    r"\.(?P<us>\d{6})(?P<sign>[+-])(?P<off>\d{3})$")
_JSON_DATE = re.compile(r"^/Date\((?P<ms>-?\d+)(?P<off>[+-]\d{4})?\)/$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_NOISE = {"CimClass", "CimInstanceProperties", "CimSystemProperties", "PSComputerName",
          "PSShowComputerName", "PSSourceJobInstanceId"}
# Dates before this are placeholders ("never"), not facts.
_EPOCH_FLOOR = datetime(1980, 1, 2, tzinfo=timezone.utc)


def cim_datetime(value: Any) -> datetime | None:
    """Any WMI date form -> aware UTC datetime; None for empty, zero or unparseable."""
    if isinstance(value, dict):
        value = value.get("value", value.get("DateTime"))
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc)
    if not isinstance(value, str):
        return None
    text = value.strip().replace("\\/", "/")
    found: datetime | None = None
    m = _CIM_DATETIME.match(text)
    if m:
        try:
            local = datetime(int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]),
                             int(m["s"]), int(m["us"]))
        except ValueError:
            return None
        offset = int(m["off"]) * (1 if m["sign"] == "+" else -1)
        found = (local - timedelta(minutes=offset)).replace(tzinfo=timezone.utc)
    elif (m := _JSON_DATE.match(text)) is not None:
        # Milliseconds since the Unix epoch, UTC; the optional offset is informational.
        found = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(
            milliseconds=int(m["ms"]))
    elif _ISO.match(text):
        try:
            found = datetime.fromisoformat(_trim_fraction(text.replace("Z", "+00:00")))
        except ValueError:
            return None
        if found.tzinfo is None:
            # PowerShell 7 prints Kind=Local dates with an offset; without one it is UTC.
            found = found.replace(tzinfo=timezone.utc)
        found = found.astimezone(timezone.utc)
    if found is None or found < _EPOCH_FLOOR:
        return None
    return found


def _trim_fraction(text: str) -> str:
    # .NET prints 7 fraction digits; Python before 3.11 accepts at most 6.
    return re.sub(r"(\.\d{6})\d+", r"\1", text)


def _list_value(text: str) -> list[str]:
    inner = text[1:-1]
    return [item.strip().strip('"') for item in re.findall(r'"(?:[^"]*)"|[^,]+', inner)]


def _wmic_value(text: str) -> Any:
    text = text.strip()
    if text == "":
        return None
    if text == "TRUE":
        return True
    if text == "FALSE":
        return False
    if text.startswith("{") and text.endswith("}"):
        return _list_value(text)
    return text


def decode_wmic(data: bytes | str) -> str:
    """wmic writes UTF-16LE with a BOM when redirected; plain text passes through.

    UTF-16 with an odd number of bytes was cut in the middle of a character: ParseError,
    never UnicodeDecodeError (and never a silently shortened text).
    """
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) > 1
                                                            and data[1:2] == b"\x00")
    if utf16:
        if len(data) % 2:
            raise ParseError(f"is UTF-16 with an odd number of bytes ({len(data)}): it was "
                             "cut in the middle of a character", source="wmic output")
        codec = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-16-le"
        try:
            return data.decode(codec).lstrip("\ufeff")
        except UnicodeDecodeError as exc:  # a lone surrogate: damaged text
            raise ParseError(f"is not valid UTF-16: {exc.reason} at byte {exc.start}",
                             source="wmic output") from None
    return data.decode("utf-8", "replace").lstrip("\ufeff")


def parse_wmic_list(data: bytes | str) -> list[dict[str, Any]]:
    """`wmic ... /format:list` output -> one dict per instance, values typed.

    A property name seen again starts a new instance: wmic separates instances by
    blank lines but also prints blank lines inside, so blank lines alone are not enough.
    wmic prints the same properties for every instance, so a last instance with fewer
    properties than the first means the output was cut short: ParseError.
    """
    text = decode_wmic(data)
    instances: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for lineno, raw in enumerate(text.replace("\r", "").split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ParseError(f"is not Name=Value: {line[:120]!r}", source="wmic output",
                             line=lineno)
        if key in current:
            instances.append(current)
            current = {}
        current[key] = _wmic_value(value)
    if current:
        instances.append(current)
    if len(instances) > 1 and len(instances[-1]) < len(instances[0]):
        missing = sorted(set(instances[0]) - set(instances[-1]))
        raise ParseError(f"was cut short: the last of {len(instances)} instances lacks "
                         f"{', '.join(missing[:5])}", source="wmic output")
    return instances


def normalise_cim(obj: dict[str, Any]) -> dict[str, Any]:
    """One ConvertTo-Json CIM object -> dict without CIM bookkeeping, dates as datetimes.

    Values are kept as JSON gave them except dates (every form above) and strings that
    are only whitespace (WMI pads some fields), which become None.
    """
    if not isinstance(obj, dict):
        raise ParseError(f"is a {type(obj).__name__}, not a CIM object",
                         source="Get-CimInstance output")
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if key in _NOISE:
            continue
        if isinstance(value, dict) and "value" in value and ("DateTime" in value
                                                             or "DisplayHint" in value):
            value = cim_datetime(value)
        elif isinstance(value, str):
            stripped = value.strip()
            if not stripped:
                value = None
            elif stripped.startswith(("/Date(", "\\/Date(")) or _CIM_DATETIME.match(stripped):
                value = cim_datetime(stripped)
        out[key] = value
    return out


def first(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The first instance normalised, {} when the class had none."""
    return normalise_cim(rows[0]) if rows else {}


def as_int(value: Any) -> int | None:
    """WMI integers arrive as numbers or (uint64) strings."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().upper() in ("TRUE", "FALSE"):
        return value.strip().upper() == "TRUE"
    if isinstance(value, int):
        return bool(value)
    return None
