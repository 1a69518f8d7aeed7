"""Shared pieces of the antivirus parsers: the product record and date handling."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

# The one documented parser error (kiemke/agent/parsers/errors.py): vendor output that
# does not contain what the parser needs. Any other exception out of an antivirus parser
# is a bug; tests/test_av_parsers_properties.py checks that.
from kiemke.agent.parsers.errors import ParseError as ParseError

# Exactly the keys of report-v1.json antivirus.products[].
PRODUCT_KEYS = ("name", "vendor", "version", "enabled", "state", "up_to_date",
                "signatures_version", "signatures_date", "signatures_age_days", "licensed",
                "licence_expiry", "product_state", "detected_by")
STATES = ("on", "off", "snoozed", "expired", "passive", "unknown")


def product_record(name: str, detected_by: str, **facts: Any) -> dict[str, Any]:
    """A products[] entry with every schema key present (unknown facts are None)."""
    unknown = set(facts) - set(PRODUCT_KEYS)
    if unknown:
        raise KeyError(f"not antivirus product facts: {sorted(unknown)}")
    record: dict[str, Any] = dict.fromkeys(PRODUCT_KEYS)
    record.update(facts)
    record["name"] = name[:256]
    record["detected_by"] = detected_by
    if record["state"] is None:
        record["state"] = "unknown"
    if record["state"] not in STATES:
        raise ValueError(f"state {record['state']!r} is not one of {STATES}")
    return record


def iso_z(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def age_days(then: datetime | None, now: datetime) -> float | None:
    """Days from `then` to `now`, one decimal; a clock a little behind gives 0, not < 0."""
    if then is None:
        return None
    return max(0.0, round((now - then).total_seconds() / 86400.0, 1))


def fill_signature_age(record: dict[str, Any], signatures_at: datetime | None,
                       now: datetime, max_age_days: float) -> None:
    """Set signatures_date/_age_days, and up_to_date when the vendor did not say."""
    if signatures_at is None:
        return
    record["signatures_date"] = iso_z(signatures_at)
    record["signatures_age_days"] = age_days(signatures_at, now)
    if record.get("up_to_date") is None:
        record["up_to_date"] = record["signatures_age_days"] <= max_age_days


def from_epoch(seconds: float | int | str | None) -> datetime | None:
    try:
        value = float(seconds)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if value <= 0 or value >= 0xFFFFFFFF * 1000:
        return None
    if value > 1e11:  # milliseconds (mdatp, Get-CimInstance /Date(ms)/)
        value /= 1000.0
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


_GMT_OFFSET = re.compile(r"GMT([+-])(\d{1,2})(?::?(\d{2}))?$")


def parse_datetime(text: str | None) -> datetime | None:
    """The date formats vendor tools print, to an aware UTC datetime (None if unreadable).

    Naive times are taken as UTC: the vendors whose output has no zone (KESL, Dr.Web)
    document it as UTC."""
    if not text:
        return None
    text = text.strip()
    m = re.fullmatch(r"/Date\((-?\d+)\)/", text)  # Windows PowerShell 5.1 ConvertTo-Json
    if m:
        return from_epoch(int(m.group(1)))
    # bduitool: "2023-08-24 at 11:44:37 GMT+2"
    m = _GMT_OFFSET.search(text)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        tz = timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0)))
        text = text[:m.start()].strip()
        parsed = parse_datetime(text.replace(" at ", " "))
        return parsed.replace(tzinfo=tz).astimezone(timezone.utc) if parsed else None
    candidate = text.replace(" at ", " ")
    if candidate.endswith("Z"):
        candidate = candidate[:-1] + "+00:00"
    # Fractions longer than microseconds (.NET prints 7 digits) break fromisoformat on 3.10.
    candidate = re.sub(r"(\.\d{6})\d+", r"\1", candidate)
    for attempt in (candidate, candidate.replace(" ", "T", 1)):
        try:
            dt = datetime.fromisoformat(attempt)
        except ValueError:
            continue
        return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(
            timezone.utc)
    for fmt in ("%Y%m%d%H%M%S", "%Y%m%d", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y", "%Y-%b-%d",
                "%a %b %d %H:%M:%S %Y", "%d %b %Y %H-%M %z", "%d %b %Y %H:%M %z",
                "%d %B %Y", "%B %d, %Y", "%m/%d/%Y", "%Y/%m/%d",
                "%a, %d %b %Y %H:%M:%S GMT"):
        try:
            dt = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(
            timezone.utc)
    return None


def parse_date(text: str | None) -> date | None:
    dt = parse_datetime(text)
    return dt.date() if dt else None


def key_values(text: str, sep: str = ":") -> dict[str, str]:
    """"Key: value" lines -> {lower-cased key: value}; the first occurrence wins."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, found, value = line.partition(sep)
        key = key.strip().lstrip("-").strip().lower()
        if found and key and key not in out:
            out[key] = value.strip()
    return out




# The rule every product record passes through before it is reported: the vendor's own
# flags never beat the evidence (issue 14, classes 8 and 9).


def reconcile(record: dict[str, Any], now: datetime, max_age_days: float
              ) -> list[tuple[str, str]]:
    """Make one products[] record consistent with its evidence; return the
    disagreements found as (kind, message) for the section's errors.

    - signatures older than max_age_days are not up to date, whatever the vendor says;
      the age is counted from `now`, the report's collection time, so an old capture
      replayed later is judged at replay time;
    - a licence whose expiry date has passed is not licensed; an expired state is not
      licensed;
    - `enabled` is true only with a state "on" read from a status source; a product
      seen only as a running service or process has state "unknown", enabled unknown.
    """
    problems: list[tuple[str, str]] = []
    name = record.get("name") or "antivirus"
    sig_text, expiry_text = record.get("signatures_date"), record.get("licence_expiry")
    signed = parse_datetime(sig_text) if isinstance(sig_text, str) else None
    if signed is not None:
        record["signatures_age_days"] = age_days(signed, now)
        stale = record["signatures_age_days"] > max_age_days
        vendor = record.get("up_to_date")
        if stale and vendor is True:
            problems.append(("failed", f"{name} reports its signatures up to date, but they "
                             f"are {record['signatures_age_days']:g} days old (more than the "
                             f"configured maximum of {max_age_days:g}): counted as not up "
                             "to date; check that the product can reach its update server"))
        if stale or vendor is None:
            record["up_to_date"] = not stale
    expiry = parse_date(expiry_text) if isinstance(expiry_text, str) else None
    if record.get("state") == "expired":
        record["licensed"] = False
    if expiry is not None:
        lapsed = expiry < now.astimezone(timezone.utc).date()
        if lapsed and record.get("licensed") is True:
            problems.append(("failed", f"{name} reports a valid licence, but it expired on "
                             f"{expiry.isoformat()}: counted as not licensed; renew the "
                             "licence"))
        if lapsed or record.get("licensed") is None:
            record["licensed"] = not lapsed
    state = record.get("state") or "unknown"
    if state == "on":
        record["enabled"] = True
    elif state in ("off", "snoozed", "expired", "passive"):
        record["enabled"] = False
    else:
        record["state"] = "unknown"
        if record.get("enabled") is True:
            record["enabled"] = None  # no status read: running is not "protecting"
    return problems


@dataclass
class VendorStatus:
    """What one vendor CLI told us; None = the tool did not say."""

    name: str | None = None
    version: str | None = None
    enabled: bool | None = None
    state: str | None = None
    up_to_date: bool | None = None
    signatures_version: str | None = None
    signatures_at: datetime | None = None
    licensed: bool | None = None
    licence_expiry: date | None = None
