"""Dr.Web for Linux: `drweb-ctl --version`, `drweb-ctl baseinfo`, `drweb-ctl license`
(Dr.Web for Linux administrator manual, "Command-line call format", information
commands). Timestamps are UTC."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

from kiemke.agent.parsers.av_common import ParseError, key_values, parse_date, parse_datetime


def parse_version(text: str) -> str:
    m = re.search(r"drweb-ctl\s+([0-9][0-9.]*)", text)
    if not m:
        raise ParseError(f"not `drweb-ctl --version` output: {text.strip()[:80]!r}")
    return m.group(1)


def parse_baseinfo(text: str) -> tuple[str | None, datetime | None]:
    """(virus database timestamp as printed, as datetime)."""
    info = key_values(text)
    stamp = info.get("virus database timestamp")
    if stamp is None:
        raise ParseError("drweb-ctl baseinfo output has no 'Virus database timestamp'")
    return stamp, parse_datetime(stamp)


def parse_license(text: str, now: datetime | None = None) -> tuple[bool | None, date | None]:
    m = re.search(r"expires\s+(\d{4}-[A-Za-z]{3}-\d{1,2}|\d{4}-\d{2}-\d{2})", text)
    if not m:
        if re.search(r"no (license|key)|not found|expired", text, re.IGNORECASE):
            return False, None
        raise ParseError(f"drweb-ctl license output has no expiry: {text.strip()[:80]!r}")
    expiry = parse_date(m.group(1))
    if expiry is None:
        return None, None
    today = (now or datetime.now(timezone.utc)).date()
    return expiry >= today, expiry
