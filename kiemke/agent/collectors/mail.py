"""Official e-mail configured on this PC (collector "email", section "email").

Plans 002 (VPCP 1935/QĐ-VPCP), 003 (Hưng Yên) and 000 (452/QĐ-TLĐ) ask that staff have
and use an official mailbox. A PC shows that a mail client is set up with an account,
and in which domain: the report keeps per client the number of profiles, of accounts,
and of accounts per domain — never an address. Whether a domain is the agency's own is
decided by the collector (rules/approved.yml `email.official_domains`), so the list is
managed in one place. Thunderbird is read on both platforms; Outlook (classic) from the
logged-on users' registry on Windows. Windows Mail and the new Outlook keep accounts in
an encrypted per-user store the agent does not open (docs/facts.md).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from kiemke.agent.collectors.base import Collector, Context, read_platform, register
from kiemke.agent.parsers.mail_clients import (
    ParseError,
    client_entry,
    parse_profiles_ini,
    prefs_addresses,
)

MAX_PROFILES = 32


def thunderbird(profile_roots: list[str]) -> tuple[dict[str, Any] | None, list[dict[str, str]]]:
    """Thunderbird profiles under each root (a directory holding profiles.ini)."""
    errors: list[dict[str, str]] = []
    profiles = 0
    addresses: list[str] = []
    for root in profile_roots:
        ini = Path(root) / "profiles.ini"
        try:
            listed = parse_profiles_ini(ini.read_text("utf-8", "replace"))
        except FileNotFoundError:
            continue
        except (OSError, ParseError) as exc:
            errors.append({"collector": "email", "kind": "failed",
                           "message": f"{ini}: {exc}"[:1024]})
            continue
        for profile in listed[:MAX_PROFILES]:
            path = Path(root) / profile.path if profile.is_relative else Path(profile.path)
            try:
                text = (path / "prefs.js").read_text("utf-8", "replace")
            except FileNotFoundError:
                continue  # listed but never started: no accounts
            except OSError as exc:
                errors.append({"collector": "email", "kind": "permission"
                               if isinstance(exc, PermissionError) else "failed",
                               "message": f"{path / 'prefs.js'}: {exc.strerror}"[:1024]})
                continue
            profiles += 1
            addresses.extend(prefs_addresses(text))
    if not profiles:
        return None, errors
    return client_entry("thunderbird", profiles, addresses), errors


def user_dirs(roots: tuple[str, ...], relative: tuple[str, ...]) -> list[str]:
    """Existing `<home>/<relative>` directories for every home under roots."""
    out: list[str] = []
    for root in roots:
        homes = [root] if os.path.basename(root) == "root" else sorted(
            glob.glob(os.path.join(root, "*")))
        for home in homes:
            for rel in relative:
                candidate = os.path.join(home, rel)
                if os.path.isdir(candidate):
                    out.append(candidate)
    return out


@register
class EmailCollector(Collector):
    name = "email"
    section = "email"
    default_timeout = 15.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        reading = read_platform("mail", ctx, "mail clients")
        section: dict[str, Any] = {"clients": list(reading.facts["clients"])[:8]}
        if reading.errors:
            section["errors"] = reading.errors[:16]
        return section
