"""Digital-signature certificates and token middleware (collector and section "signing").

Plans 002 (VPCP 1935/QĐ-VPCP) and 003 ask that every official has a digital signature.
A PC shows it by a certificate with a private key, usable for signing, issued by a
Vietnamese CA (kiemke/agent/data/vn_ca.json, extended by [signing] extra_authorities).
Per certificate only the CA, key usage, validity, token flag and a salted hash of the
subject are reported (kiemke/agent/parsers/signing.py says why and how).
"""

from __future__ import annotations

import json
import os
import secrets
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from kiemke.agent.collectors.base import (
    Collector,
    CollectorError,
    Context,
    read_platform,
    register,
)
from kiemke.agent.parsers.signing import Authority

MAX_CERTIFICATES = 8
SALT_FILE = "signing.salt"


@cache
def _table() -> dict[str, Any]:
    text = resources.files("kiemke.agent").joinpath("data/vn_ca.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def authorities(extra: list[str]) -> tuple[Authority, ...]:
    """The built-in CA table, then [signing] extra_authorities ("id:Name:kind:m1|m2")."""
    found = [Authority(a["id"], a["name"], a["kind"], tuple(a["match"]))
             for a in _table()["authorities"]]
    for spec in extra:
        parts = spec.split(":")
        if len(parts) != 4 or not all(p.strip() for p in parts):
            raise CollectorError("failed", f"[signing] extra_authorities entry {spec!r} is not "
                                 "id:Name:kind:match1|match2; fix agent.conf")
        ca_id, name, kind, matches = (p.strip() for p in parts)
        found.insert(0, Authority(ca_id, name, kind,
                                  tuple(m.strip() for m in matches.split("|") if m.strip())))
    return tuple(found)


def authorities_of(ctx: Context) -> tuple[Authority, ...]:
    return authorities(list(ctx.config.signing_extra_authorities))


def middleware_table() -> dict[str, Any]:
    table: dict[str, Any] = _table()["token_middleware"]
    return table


def machine_salt(state_dir: Path) -> bytes:
    """This machine's secret salt for subject hashes (created once, mode 0600). Where the
    state directory cannot be written (an unprivileged `collect`), a salt for this run."""
    path = state_dir / SALT_FILE
    try:
        return bytes.fromhex(path.read_text("ascii").strip())
    except (OSError, ValueError):
        pass
    salt = secrets.token_bytes(32)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(salt.hex())
    except FileExistsError:
        return machine_salt(state_dir)
    except OSError:
        pass
    return salt


@register
class SigningCollector(Collector):
    name = "signing"
    section = "signing"
    default_timeout = 15.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        reading = read_platform("signing", ctx, "signing certificates")
        certs: list[dict[str, Any]] = list(reading.facts["certificates"])
        middleware: list[str] = list(reading.facts["middleware"])
        errors = reading.errors
        # Signing-capable, then newest expiry first: what the rules look at is kept.
        certs.sort(key=lambda c: c["not_after"], reverse=True)
        certs.sort(key=lambda c: not c["can_sign"])
        section: dict[str, Any] = {"certificates": certs[:MAX_CERTIFICATES],
                                   "middleware": sorted(set(middleware))[:8]}
        if len(certs) > MAX_CERTIFICATES:
            section["certificates_total"] = len(certs)
        if errors:
            section["errors"] = errors[:16]
        return section
