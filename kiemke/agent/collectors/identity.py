"""Section "identity": who this machine is, stable across rename and reinstall.

machine_id is sha256(namespace + source + value) truncated to 32 hex characters, taken
from the strongest source that gives a real (non-placeholder) value:

1. smbios_uuid  - the SMBIOS system UUID: set by the manufacturer, survives OS reinstall,
                  rename and disk swap.
2. serial       - the SMBIOS system serial number, when the UUID is a placeholder.
3. machine_guid - Windows MachineGuid / Linux /etc/machine-id: survives rename and agent
                  reinstall but NOT an OS reinstall, so it only comes after SMBIOS.
4. generated    - a random id created once and kept in the state directory.

The id last used is kept in <state_dir>/identity.json. When a stronger source is
temporarily unreadable (for example the SMBIOS files need root), the stored id is reused
rather than reporting the machine under a new, weaker id.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import uuid
from typing import Any

import kiemke
from kiemke.agent.collectors.base import (
    Collector,
    CollectorError,
    Context,
    read_platform,
    register,
)
from kiemke.agent.probe_policy import resolves_locally
from kiemke.schema.identifiers import normalize_serial

log = logging.getLogger(__name__)

NAMESPACE = b"kiemke-machine-id-v1\0"
SOURCES = ("smbios_uuid", "serial", "machine_guid", "generated")  # strongest first

# UUIDs firmware vendors ship unchanged on many boards (plus any single repeated digit).
JUNK_UUIDS = frozenset({
    "03000200-0400-0500-0006-000700080009",  # AMI default, thousands of boards
    "00020003-0004-0005-0006-000700080009",  # the same, other byte order
    "12345678-1234-5678-90ab-cddeefaabbcc",
    "00000000-0000-0000-0000-000000000001",
    "4c4c4544-0000-1010-8000-80c04f202020",
})
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def normalize_uuid(raw: str | None) -> str | None:
    """The UUID in canonical lower-case form, or None for a missing or placeholder one."""
    if not raw:
        return None
    text = raw.strip().strip("{}").lower()
    try:
        value = str(uuid.UUID(text))
    except ValueError:
        return None
    digits = value.replace("-", "")
    if len(set(digits)) == 1 or value in JUNK_UUIDS:  # all 0, all f, ...
        return None
    return value


def normalize_machine_guid(raw: str | None) -> str | None:
    """Windows MachineGuid or Linux machine-id (32 hex) as 32 lower-case hex, or None."""
    if not raw:
        return None
    text = raw.strip().strip("{}").replace("-", "").lower()
    if not _HEX32.match(text) or len(set(text)) == 1:
        return None
    return text


def derive_machine_id(source: str, value: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"unknown machine id source {source!r}")
    digest = hashlib.sha256(NAMESPACE + source.encode() + b"\0" + value.encode("utf-8"))
    return digest.hexdigest()[:32]


def choose_machine_id(raw: dict[str, str | None], stored: dict[str, Any] | None
                      ) -> tuple[str, str, bool]:
    """Pick (machine_id, source, changed) from raw platform values and the stored choice.

    raw has keys smbios_uuid, serial, machine_guid (any may be None). A generated id is
    used only when none is real and none is stored; changed says the caller must store
    the result.
    """
    candidates = {
        "smbios_uuid": normalize_uuid(raw.get("smbios_uuid")),
        "serial": normalize_serial(raw.get("serial")),
        "machine_guid": normalize_machine_guid(raw.get("machine_guid")),
    }
    best: tuple[str, str] | None = None
    for source in SOURCES[:3]:
        if candidates[source]:
            best = (derive_machine_id(source, candidates[source] or ""), source)
            break
    stored_ok = (stored and isinstance(stored.get("machine_id"), str)
                 and _HEX32.match(stored["machine_id"]) and stored.get("source") in SOURCES)
    if stored_ok:
        assert stored is not None
        stored_pair = (stored["machine_id"], stored["source"])
        if best is None or SOURCES.index(best[1]) > SOURCES.index(stored_pair[1]):
            return stored_pair[0], stored_pair[1], False  # stronger source unreadable now
        return best[0], best[1], best != stored_pair
    if best is None:
        return uuid.uuid4().hex, "generated", True
    return best[0], best[1], True


def split_fqdn(hostname: str, fqdn: str | None) -> tuple[str | None, str | None]:
    """(fqdn, dns domain) from socket.getfqdn(); None when it is not a real FQDN."""
    if not fqdn or "." not in fqdn or fqdn.startswith("localhost"):
        return None, None
    if fqdn.endswith((".localdomain", ".local")) and fqdn.count(".") == 1:
        return fqdn, None
    short, _, domain = fqdn.partition(".")
    return fqdn, domain or None


def local_fqdn(hostname: str) -> str | None:
    """The FQDN without asking DNS: the host name itself when it has a dot, else what the
    hosts file says (socket.getfqdn answers from it). A name only DNS knows is left out:
    collecting must not send anything on the network (docs/agent-network-probes.md)."""
    if "." in hostname:
        return hostname
    if resolves_locally(hostname):
        return socket.getfqdn(hostname)
    return None


@register
class IdentityCollector(Collector):
    name = "identity"
    section = "identity"
    default_timeout = 10.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        errors: list[dict[str, str]] = []
        raw: dict[str, Any] = {}
        try:
            reading = read_platform("identity", ctx, "SMBIOS and machine ids")
            raw = dict(reading.facts)
            errors.extend(reading.errors)
        except CollectorError as exc:
            # Unsupported platform or unreadable sources: the id still comes from the
            # stored or a generated value, and the section says why.
            errors.append(exc.entry(self.name))
        except Exception as exc:  # noqa: BLE001 - identity must never fail
            errors.append({"collector": self.name, "kind": "failed",
                           "message": f"{type(exc).__name__}: {exc}"[:1024]})
        return build_identity(ctx, raw, errors)


def build_identity(ctx: Context, raw: dict[str, Any],
                   errors: list[dict[str, str]]) -> dict[str, Any]:
    from kiemke.agent.state import read_json, write_json  # late: state imports base only

    identity_path = ctx.state_dir / "identity.json"
    stored = read_json(identity_path)
    machine_id, source, changed = choose_machine_id(raw, stored)
    if changed:
        try:
            write_json(identity_path, {"machine_id": machine_id, "source": source})
        except OSError as exc:
            errors.append({"collector": "identity", "kind": "permission",
                           "message": f"cannot store the machine id in {identity_path}: {exc}"})
    hostname = raw.get("hostname") or socket.gethostname() or "unknown"
    # Windows: DNSHostName + the AD domain is the FQDN (the primary DNS suffix).
    domain_fqdn = f"{hostname}.{raw['domain']}" if "." in (raw.get("domain") or "") else None
    fqdn, dns_domain = split_fqdn(hostname, raw.get("fqdn") or local_fqdn(hostname)
                                  or domain_fqdn)
    section: dict[str, Any] = {
        "machine_id": machine_id,
        "machine_id_source": source,
        "hostname": hostname[:255],
        "fqdn": fqdn[:255] if fqdn else None,
        "domain": (raw.get("domain") or dns_domain or None),
        "agent_version": kiemke.__version__,
        "platform": ctx.platform,
        "unit": ctx.config.unit,
        "asset_tag": normalize_serial(raw.get("asset_tag")),
    }
    if section["domain"]:
        section["domain"] = section["domain"][:255]
    if section["asset_tag"]:
        section["asset_tag"] = section["asset_tag"][:128]
    if errors:
        section["errors"] = errors[:32]
    return section
