"""Facts of the plans' workplace targets: digital signatures, official e-mail, online meetings.

From the report sections `signing`, `email` and `meeting` (docs/facts.md) and the
policy in rules/approved.yml (`signing:`, `email:`, `meeting:`). As everywhere in the
fact builder, unknown is not absent: a section that is missing or reported an error
leaves its facts out (rules see unknown), except where positive evidence was read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from .config import ComplianceConfig
from .values import BOOL, LIST, NUMBER, STRING, FactDef

F = FactDef
WORKPLACE_FACTS: dict[str, FactDef] = {
    # digital signatures (seed 002: chữ ký số)
    "signing.certificates": F(NUMBER, "valid signing certificates from approved CAs"),
    "signing.state": F(STRING, "valid, expiring (within signing.expiring_days), expired or "
                               "none: the best signing certificate from an approved CA"),
    "signing.days_left": F(NUMBER, "days until the best approved signing certificate expires"),
    "signing.hardware_token": F(BOOL, "the best approved certificate's key is on a USB "
                                      "token or smart card"),
    "signing.authorities": F(LIST, "CAs of the valid approved signing certificates"),
    "signing.middleware": F(LIST, "token middleware found (token managers, PKCS#11 modules)"),
    # official e-mail (seeds 000, 002, 003)
    "email.accounts": F(NUMBER, "mail accounts configured in Outlook / Thunderbird"),
    "email.official_accounts": F(NUMBER, "accounts in an official domain of the agency"),
    "email.domains": F(LIST, "domains of the configured accounts"),
    # online meetings (seeds 001, 002, 003)
    "meeting.camera": F(BOOL, "a camera is present and enabled"),
    "meeting.microphone": F(BOOL, "a microphone is present and enabled"),
    "meeting.software": F(LIST, "approved meeting programs installed"),
    "meeting.ready": F(BOOL, "camera, microphone and a meeting program"),
}


def _section(report: dict[str, Any], name: str) -> tuple[dict[str, Any], bool]:
    section = report.get(name)
    if not isinstance(section, dict):
        return {}, False
    errors = section.get("errors") or []
    return section, not any(isinstance(e, dict) and not e.get("product") for e in errors)


def _approved_ca(cert: dict[str, Any], config: ComplianceConfig) -> bool:
    allowed = config.signing_authorities
    return bool(cert.get("ca")) and (cert.get("ca") in allowed or cert.get("ca_kind") in allowed)


def signing_facts(facts: dict[str, Any], report: dict[str, Any], config: ComplianceConfig,
                  today: dt.date) -> None:
    if "signing" not in report:
        return  # an agent older than this section: every signing fact stays unknown
    section, complete = _section(report, "signing")
    certs = [c for c in section.get("certificates") or [] if isinstance(c, dict)]
    approved = [c for c in certs if c.get("can_sign") and _approved_ca(c, config)]
    dated = []
    for cert in approved:
        try:
            start = dt.date.fromisoformat(str(cert.get("not_before") or "0001-01-01"))
            end = dt.date.fromisoformat(str(cert["not_after"]))
        except (KeyError, ValueError):
            continue
        dated.append((start, end, cert))
    valid = [(s, e, c) for s, e, c in dated if s <= today <= e]
    if valid or complete:
        facts["signing.certificates"] = len(valid)
        facts["signing.authorities"] = sorted({str(c.get("issuer") or c["ca"])
                                               for _s, _e, c in valid})
    if valid:
        _start, end, best = max(valid, key=lambda x: x[1])
        left = (end - today).days
        facts["signing.days_left"] = left
        facts["signing.state"] = "expiring" if left <= config.signing_expiring_days else "valid"
        if isinstance(best.get("hardware_token"), bool):
            facts["signing.hardware_token"] = best["hardware_token"]
    elif complete:
        expired = [e for _s, e, _c in dated if e < today]
        facts["signing.state"] = "expired" if expired else "none"
        if expired:
            facts["signing.days_left"] = (max(expired) - today).days
    middleware = section.get("middleware")
    if isinstance(middleware, list) and (middleware or complete):
        facts["signing.middleware"] = [str(m) for m in middleware]


def official_domains(config: ComplianceConfig, unit_codes: Sequence[str]) -> tuple[str, ...]:
    """The domains that count for a machine of the unit whose code chain (the unit and
    its ancestors) is `unit_codes`."""
    extra = [d for code, domains in config.unit_domains if code in unit_codes for d in domains]
    return tuple(config.official_domains) + tuple(extra)


def is_official(domain: str, official: Sequence[str]) -> bool:
    domain = domain.casefold().rstrip(".")
    return any(domain == d or domain.endswith("." + d) for d in official)


def email_facts(facts: dict[str, Any], report: dict[str, Any], config: ComplianceConfig,
                unit_codes: Sequence[str] = ()) -> None:
    if "email" not in report:
        return
    section, complete = _section(report, "email")
    official = official_domains(config, unit_codes)
    accounts = 0
    official_accounts = 0
    domains: set[str] = set()
    for client in section.get("clients") or []:
        if not isinstance(client, dict):
            continue
        accounts += int(client.get("accounts") or 0)
        for entry in client.get("domains") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("domain"), str):
                continue
            domains.add(entry["domain"])
            if is_official(entry["domain"], official):
                official_accounts += int(entry.get("accounts") or 0)
    if complete or official_accounts:
        facts["email.official_accounts"] = official_accounts
    if complete:
        facts["email.accounts"] = accounts
        facts["email.domains"] = sorted(domains)


def meeting_facts(facts: dict[str, Any], report: dict[str, Any],
                  config: ComplianceConfig) -> None:
    if "meeting" not in report:
        return
    section, complete = _section(report, "meeting")
    camera = section.get("cameras_enabled")
    mic = section.get("microphones_enabled")
    cam3 = (camera > 0) if isinstance(camera, int) and (camera > 0 or complete) else None
    mic3 = (mic > 0) if isinstance(mic, int) and (mic > 0 or complete) else None
    if cam3 is not None:
        facts["meeting.camera"] = cam3
    if mic3 is not None:
        facts["meeting.microphone"] = mic3
    software = [str(s) for s in section.get("software") or []]
    if config.meeting_software:
        wanted = {w.casefold() for w in config.meeting_software}
        software = [s for s in software if s.casefold() in wanted]
    software_known = bool(software) or complete
    if software_known:
        facts["meeting.software"] = software
    values = (cam3, mic3, bool(software) if software_known else None)
    if False in values:
        facts["meeting.ready"] = False
    elif None not in values:
        facts["meeting.ready"] = True


def workplace_facts(facts: dict[str, Any], report: dict[str, Any], config: ComplianceConfig,
                    today: dt.date, unit_codes: Sequence[str] = ()) -> None:
    """Add the signing, email and meeting facts of one report to `facts`."""
    signing_facts(facts, report, config, today)
    email_facts(facts, report, config, unit_codes)
    meeting_facts(facts, report, config)
