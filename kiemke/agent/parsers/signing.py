"""Digital-signature certificates: from store listings to report entries without personal data.

A report entry keeps the issuing CA, key usage, validity dates, whether the key sits
on a hardware token and a salted hash of the subject; never the holder's name, never
the serial number (which identifies the holder at the CA). The hash lets the collector
tell one certificate from two on the same machine, and nothing else: the salt is a
secret of this machine (kept in the agent's state directory), so the hash cannot be
matched to a name from a list of staff, nor across machines.

Inputs are the raw outputs of NSS `certutil -L` (Linux) and the `Blob` values of the
Windows certificate stores in the registry (HKLM/HKU ...\\SystemCertificates\\My\\
Certificates\\<thumbprint>), both handed over untouched so parsing is tested on Linux.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import struct
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kiemke.agent.parsers.errors import ParseError
from kiemke.agent.parsers.x509 import Certificate

# Windows serialized store element properties (wincrypt.h CERT_*_PROP_ID).
_PROP_KEY_PROV_INFO = 2
_PROP_CERT = 32
_SOFTWARE_PROVIDERS = ("microsoft enhanced", "microsoft strong", "microsoft base cryptographic",
                       "microsoft software key storage", "microsoft rsa schannel",
                       "microsoft dh schannel", "microsoft enhanced rsa and aes",
                       "microsoft platform crypto")  # TPM: not removable, not a token
_HARDWARE_HINTS = ("smart card", "smartcard", "token", "etoken", "epass", "safenet",
                   "gemalto", "idprime", "feitian", "bit4id", "yubikey", "pkcs11", "pkcs#11",
                   "vnpt", "viettel", "bkav", "fpt", "csp11", "usb")


@dataclass(frozen=True)
class Authority:
    id: str
    name: str
    kind: str  # government | public | other
    match: tuple[str, ...]


def fold(text: str) -> str:
    """Lower-case ASCII folding for matching Vietnamese names (đ -> d, diacritics off)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def classify_issuer(issuer: dict[str, str], authorities: Sequence[Authority]
                    ) -> Authority | None:
    haystack = fold(" | ".join(issuer.get(k, "") for k in ("O", "OU", "CN")))
    for ca in authorities:
        if any(fold(m) in haystack for m in ca.match):
            return ca
    return None


def subject_hash(subject_der: bytes, salt: bytes) -> str:
    """Salted, truncated SHA-256 of the encoded subject: stable on this machine only."""
    return hashlib.sha256(salt + subject_der).hexdigest()[:16]


def entry(cert: Certificate, *, store: str, hardware: bool | None, salt: bytes,
          authorities: Sequence[Authority], now: dt.datetime) -> dict[str, object]:
    """The report's certificate entry (schema: signing.certificates[])."""
    ca = classify_issuer(cert.issuer, authorities)
    days_left = (cert.not_after - now).total_seconds() / 86400
    state = ("not_yet_valid" if cert.not_before > now else
             "expired" if days_left < 0 else "valid")
    return {
        "store": store,
        "ca": ca.id if ca else None,
        "ca_kind": ca.kind if ca else None,
        "issuer": (cert.issuer.get("CN") or cert.issuer.get("O") or "")[:256] or None,
        "issuer_org": (cert.issuer.get("O") or "")[:256] or None,
        "key_usage": list(cert.key_usage) if cert.key_usage is not None else None,
        "can_sign": cert.can_sign,
        "not_before": cert.not_before.date().isoformat(),
        "not_after": cert.not_after.date().isoformat(),
        "state": state,
        "hardware_token": hardware,
        "subject_hash": subject_hash(cert.subject_der, salt),
    }


# ---------------------------------------------------------------------------- NSS

_NSS_TRUST = re.compile(r"^(?P<nick>.+?)\s+(?P<trust>[pPcCTuwa]*,[pPcCTuwa]*,[pPcCTuwa]*)\s*$")


def parse_nss_listing(text: str) -> list[tuple[str, str]]:
    """`certutil -L -d DIR` -> [(nickname, trust flags)]. Raises ValueError on other text."""
    rows: list[tuple[str, str]] = []
    lines = text.splitlines()
    if not any("Trust Attributes" in line for line in lines[:4]):
        if not text.strip():
            return []
        raise ParseError("not a certutil -L listing (no 'Trust Attributes' header)")
    for line in lines:
        if not line.strip() or "Trust Attributes" in line or "SSL,S/MIME" in line:
            continue
        m = _NSS_TRUST.match(line.rstrip())
        if m is None:
            raise ParseError(f"unexpected certutil -L line: {line.strip()[:80]!r}")
        rows.append((m["nick"].strip(), m["trust"]))
    return rows


def nss_user_certs(rows: Iterable[tuple[str, str]]) -> list[tuple[str, bool]]:
    """Certificates with a private key ('u' in the trust flags), and whether the key is
    on a token other than NSS's own software database ("Token Name:nickname")."""
    out = []
    for nick, trust in rows:
        if "u" not in trust:
            continue
        token, sep, _rest = nick.partition(":")
        on_token = bool(sep) and token.strip() not in ("", "NSS Certificate DB",
                                                       "NSS Generic Crypto Services")
        out.append((nick, on_token))
    return out


_P11_MODULE = re.compile(r"^(?P<name>[^\s:][^:]*):\s*(?P<path>\S.*)?$")
_P11_FIELD = re.compile(r"^(?P<indent>\s+)(?P<key>[a-z-]+):\s*(?P<value>.*)$")


@dataclass
class Pkcs11Module:
    name: str
    path: str | None
    description: str | None = None
    tokens: list[str] | None = None


def parse_p11kit_modules(text: str) -> list[Pkcs11Module]:
    """`p11-kit list-modules` -> modules with the labels of their present tokens.

    Top-level lines are `name: library`; indented `key: value` lines describe the
    module, `token: LABEL` opens a token whose own fields (and the `flags:` words) are
    indented deeper. Raises ValueError on text of another shape."""
    modules: list[Pkcs11Module] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            m = _P11_MODULE.match(line)
            if m is None:
                raise ParseError(f"unexpected p11-kit line: {line.strip()[:80]!r}")
            modules.append(Pkcs11Module(m["name"].strip(), (m["path"] or "").strip() or None,
                                        tokens=[]))
            continue
        if not modules:
            raise ParseError("p11-kit output starts with an indented line")
        f = _P11_FIELD.match(line)
        if f is None:
            continue  # a flag word under `flags:`
        module = modules[-1]
        if f["key"] == "token" and module.tokens is not None:
            module.tokens.append(f["value"].strip())
        elif f["key"] == "library-description" and len(f["indent"]) <= 4:
            module.description = f["value"].strip()
    return modules


# ---------------------------------------------------------------------------- Windows

def parse_store_blob(blob: bytes) -> tuple[bytes, str | None]:
    """A Windows store element (the registry `Blob`) -> (certificate DER, key provider).

    The blob is a list of properties: DWORD id, DWORD 1, DWORD length, data. The
    certificate is property 32; property 2 (CRYPT_KEY_PROV_INFO, serialised with
    32-bit offsets) names the key's provider, which tells a token from software."""
    der: bytes | None = None
    provider: str | None = None
    pos = 0
    while pos + 12 <= len(blob):
        prop, _one, length = struct.unpack_from("<III", blob, pos)
        pos += 12
        if pos + length > len(blob):
            raise ParseError("truncated certificate store element")
        data = blob[pos:pos + length]
        pos += length
        if prop == _PROP_CERT:
            der = data
        elif prop == _PROP_KEY_PROV_INFO and len(data) >= 28:
            provider = _prov_name(data)
    if pos != len(blob):
        raise ParseError("trailing bytes after the certificate store element")
    if der is None:
        raise ParseError("certificate store element without a certificate")
    return der, provider


def _prov_name(data: bytes) -> str | None:
    _container, name_off = struct.unpack_from("<II", data, 0)
    if not 28 <= name_off < len(data):
        return None
    end = name_off
    while end + 1 < len(data) and data[end:end + 2] != b"\x00\x00":
        end += 2
    try:
        return data[name_off:end].decode("utf-16-le") or None
    except UnicodeDecodeError:
        return None


def provider_is_hardware(provider: str | None) -> bool | None:
    """True for smart-card/token providers, False for Windows' software providers,
    None when the provider is not known (no private key info, or an unknown name)."""
    if not provider:
        return None
    name = provider.casefold()
    if any(name.startswith(p) for p in _SOFTWARE_PROVIDERS) and "smart card" not in name:
        return False
    if any(h in name for h in _HARDWARE_HINTS):
        return True
    return None
