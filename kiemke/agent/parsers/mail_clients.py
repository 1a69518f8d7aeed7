"""Mail-client accounts -> counts per e-mail domain. Addresses never leave this module.

Sources: Thunderbird's `profiles.ini` and each profile's `prefs.js` (one
`user_pref("mail.identity.idN.useremail", "...")` per identity), and the Outlook
profile values that the Windows collector's PowerShell script prints (one object per
account with the `Account Name` / `Email` values decoded from REG_BINARY UTF-16).
The report keeps, per client, how many profiles and accounts there are and how many
accounts use each domain: the domain is the agency's, not the person's.
"""

from __future__ import annotations

import configparser
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kiemke.agent.parsers.errors import ParseError

_PREF = re.compile(r'^\s*user_pref\(\s*"(?P<key>[^"]+)"\s*,\s*(?P<value>.+?)\s*\)\s*;\s*$')
_IDENTITY_EMAIL = re.compile(r"^mail\.identity\.(?P<id>[A-Za-z0-9_]+)\.useremail$")
_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}\.)+[a-z0-9-]{2,63}$")
MAX_DOMAINS = 8


@dataclass(frozen=True)
class Profile:
    path: str
    is_relative: bool


def parse_profiles_ini(text: str) -> list[Profile]:
    """Thunderbird/Firefox profiles.ini -> the profiles it lists."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ParseError(f"profiles.ini is not an INI file: {exc}") from None
    out = []
    for section in parser.sections():
        if not section.lower().startswith("profile"):
            continue
        path = parser.get(section, "Path", fallback="").strip()
        if path:
            relative = parser.get(section, "IsRelative", fallback="1").strip() != "0"
            out.append(Profile(path, relative))
    return out


def _string_value(raw: str) -> str | None:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1].encode("utf-8").decode("unicode_escape", "replace") \
            if "\\" in raw else raw[1:-1]
    return None


def prefs_addresses(text: str) -> list[str]:
    """The e-mail address of every identity configured in a prefs.js."""
    out = []
    for line in text.splitlines():
        m = _PREF.match(line)
        if m is None or not _IDENTITY_EMAIL.match(m["key"]):
            continue
        value = _string_value(m["value"])
        if value and "@" in value:
            out.append(value)
    return out


def domain_of(address: str) -> str | None:
    """The domain of an address, lower-case NFC, or None when it is not one."""
    _local, at, domain = address.strip().rpartition("@")
    if not at:
        return None
    domain = unicodedata.normalize("NFC", domain.strip().rstrip(".").casefold())
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return domain if _DOMAIN.match(ascii_domain) else None


def client_entry(client: str, profiles: int, addresses: Iterable[str]) -> dict[str, Any]:
    """The report's entry for one mail client: counts and domains only."""
    domains = Counter(d for d in (domain_of(a) for a in addresses) if d)
    accounts = sum(domains.values())
    return {
        "client": client,
        "profiles": profiles,
        "accounts": accounts,
        "domains": [{"domain": d, "accounts": n}
                    for d, n in sorted(domains.items(), key=lambda x: (-x[1], x[0]))
                    ][:MAX_DOMAINS],
    }


def outlook_addresses(rows: Iterable[dict[str, Any]]) -> tuple[int, list[str]]:
    """PowerShell rows {Sid, Profile, AccountName, Email} -> (profiles, addresses)."""
    profiles: set[tuple[str, str]] = set()
    addresses = []
    for row in rows:
        if not isinstance(row, dict):
            raise ParseError("Outlook account rows must be objects")
        profiles.add((str(row.get("Sid") or ""), str(row.get("Profile") or "")))
        for key in ("Email", "AccountName"):
            value = row.get(key)
            if isinstance(value, str) and "@" in value:
                addresses.append(value)
                break
    return len(profiles), addresses
