"""Just enough X.509 (DER) to describe a signing certificate without keeping personal data.

Both platforms hand the agent the certificate's DER bytes (NSS `certutil -L -r`, Windows
`X509Certificate2.RawData`), so one parser serves both and no vendor tool's localised
text output is parsed. Only what the reports need is decoded: issuer, subject (to be
hashed, never reported), validity, key usage and extended key usage. The agent stays
free of a crypto library: this reads structure, it verifies nothing.

Every malformed input raises `ParseError` (a ValueError), and nothing else.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass

from kiemke.agent.parsers.errors import ParseError

# RFC 5280 4.2.1.3, bit 0 first.
KEY_USAGE_BITS = ("digital_signature", "non_repudiation", "key_encipherment",
                  "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                  "encipher_only", "decipher_only")
EKU_NAMES = {
    "1.3.6.1.5.5.7.3.1": "server_auth",
    "1.3.6.1.5.5.7.3.2": "client_auth",
    "1.3.6.1.5.5.7.3.3": "code_signing",
    "1.3.6.1.5.5.7.3.4": "email_protection",
    "1.3.6.1.5.5.7.3.8": "time_stamping",
    "1.3.6.1.5.5.7.3.9": "ocsp_signing",
    "1.3.6.1.4.1.311.10.3.12": "document_signing",  # Microsoft "Document Signing"
    "1.2.840.113583.1.1.5": "pdf_signing",  # Adobe Authentic Documents Trust
    "2.5.29.37.0": "any",
}
_ATTR_NAMES = {"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
               "2.5.4.10": "O", "2.5.4.11": "OU", "0.9.2342.19200300.100.1.1": "UID",
               "2.5.4.5": "serialNumber", "1.2.840.113549.1.9.1": "E"}
_KEY_USAGE_OID = "2.5.29.15"
_EKU_OID = "2.5.29.37"
_BASIC_CONSTRAINTS_OID = "2.5.29.19"


@dataclass(frozen=True)
class Certificate:
    issuer: dict[str, str]  # attribute short name -> value (last one wins)
    subject_der: bytes  # the subject Name as encoded: hashed, never reported
    not_before: dt.datetime
    not_after: dt.datetime
    key_usage: tuple[str, ...] | None  # None: no keyUsage extension (any use allowed)
    extended_key_usage: tuple[str, ...] | None
    is_ca: bool

    @property
    def can_sign(self) -> bool:
        """Usable for signatures on documents: digitalSignature or nonRepudiation (or
        no keyUsage at all), not a CA, and no EKU that rules document signing out."""
        if self.is_ca:
            return False
        if self.key_usage is not None and not (
                {"digital_signature", "non_repudiation"} & set(self.key_usage)):
            return False
        if self.extended_key_usage is None:
            return True
        usable = {"email_protection", "client_auth", "document_signing", "pdf_signing", "any"}
        return bool(usable & set(self.extended_key_usage)) or any(
            e.startswith("1.") or e.startswith("2.") for e in self.extended_key_usage)


def _read(data: bytes, pos: int) -> tuple[int, int, int, int]:
    """(tag, content start, content end, next position) of the TLV at pos."""
    if pos + 2 > len(data):
        raise ParseError("truncated DER")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise ParseError("bad DER length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    end = pos + length
    if end > len(data):
        raise ParseError("truncated DER")
    return tag, pos, end, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        tag, s, e, pos = _read(data, pos)
        out.append((tag, s, e))
    if pos != end:
        raise ParseError("DER element overruns its parent")
    return out


def _oid(raw: bytes) -> str:
    if not raw:
        raise ParseError("empty OID")
    first = raw[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _text(tag: int, raw: bytes) -> str:
    try:
        if tag == 0x1E:  # BMPString
            return raw.decode("utf-16-be")
        if tag == 0x1C:  # UniversalString
            return raw.decode("utf-32-be")
        if tag in (0x0C,):  # UTF8String
            return raw.decode("utf-8")
        return raw.decode("latin-1")  # Printable, IA5, Teletex (T.61 ~ latin-1 in practice)
    except UnicodeDecodeError as exc:
        raise ParseError(f"undecodable name attribute: {exc}") from None


def _name(data: bytes, start: int, end: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for _tag, s, e in _children(data, start, end):  # RDN SETs
        for _t, as_, ae in _children(data, s, e):  # AttributeTypeAndValue
            parts = _children(data, as_, ae)
            if len(parts) != 2 or parts[0][0] != 0x06:
                raise ParseError("bad name attribute")
            oid = _oid(data[parts[0][1]:parts[0][2]])
            vt, vs, ve = parts[1]
            out[_ATTR_NAMES.get(oid, oid)] = _text(vt, data[vs:ve])
    return out


def _time(tag: int, raw: bytes) -> dt.datetime:
    text = raw.decode("ascii", "replace")
    try:
        if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ (RFC 5280: YY >= 50 is 19YY)
            parsed = dt.datetime.strptime(text, "%y%m%d%H%M%SZ")
            if parsed.year >= 2050:
                parsed = parsed.replace(year=parsed.year - 100)
        elif tag == 0x18:
            parsed = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ")
        else:
            raise ParseError("bad validity time type")
    except ValueError:
        raise ParseError(f"bad validity time {text!r}") from None
    return parsed.replace(tzinfo=dt.timezone.utc)


def _bits(raw: bytes) -> tuple[str, ...]:
    if not raw:
        raise ParseError("empty BIT STRING")
    bits = raw[1:]
    names = []
    for i, name in enumerate(KEY_USAGE_BITS):
        byte, bit = divmod(i, 8)
        if byte < len(bits) and bits[byte] & (0x80 >> bit):
            names.append(name)
    return tuple(names)


def parse_der(data: bytes) -> Certificate:
    """One DER-encoded certificate -> Certificate. Raises ParseError."""
    if not isinstance(data, (bytes, bytearray)):
        raise ParseError("certificate must be bytes")
    data = bytes(data)
    tag, s, e, _ = _read(data, 0)
    if tag != 0x30:
        raise ParseError("not a DER certificate (no outer SEQUENCE)")
    top = _children(data, s, e)
    if not top or top[0][0] != 0x30:
        raise ParseError("no tbsCertificate")
    tbs = _children(data, top[0][1], top[0][2])
    if tbs and tbs[0][0] == 0xA0:  # [0] version
        tbs = tbs[1:]
    if len(tbs) < 6:
        raise ParseError("tbsCertificate is missing fields")
    _serial, _sig, issuer, validity, subject, _spki = tbs[:6]
    times = _children(data, validity[1], validity[2])
    if len(times) != 2:
        raise ParseError("bad validity")
    key_usage: tuple[str, ...] | None = None
    eku: tuple[str, ...] | None = None
    is_ca = False
    for tag_, es, ee in tbs[6:]:
        if tag_ != 0xA3:  # [3] extensions
            continue
        wrapped = _children(data, es, ee)
        if len(wrapped) != 1 or wrapped[0][0] != 0x30:
            raise ParseError("bad extensions block")
        for _t, xs, xe in _children(data, wrapped[0][1], wrapped[0][2]):
            parts = _children(data, xs, xe)
            if len(parts) < 2 or parts[0][0] != 0x06:
                raise ParseError("bad extension")
            oid = _oid(data[parts[0][1]:parts[0][2]])
            _vt, vs, ve = parts[-1]
            inner = _children(data, vs, ve)
            if not inner:
                continue
            it, ivs, ive = inner[0]
            if oid == _KEY_USAGE_OID and it == 0x03:
                key_usage = _bits(data[ivs:ive])
            elif oid == _EKU_OID and it == 0x30:
                eku = tuple(EKU_NAMES.get(o, o) for o in
                            (_oid(data[a:b]) for _x, a, b in _children(data, ivs, ive)))
            elif oid == _BASIC_CONSTRAINTS_OID and it == 0x30:
                flags = _children(data, ivs, ive)
                is_ca = bool(flags) and flags[0][0] == 0x01 and data[flags[0][1]:flags[0][2]] \
                    not in (b"", b"\x00")
    return Certificate(
        issuer=_name(data, issuer[1], issuer[2]),
        subject_der=data[subject[1]:subject[2]],
        not_before=_time(times[0][0], data[times[0][1]:times[0][2]]),
        not_after=_time(times[1][0], data[times[1][1]:times[1][2]]),
        key_usage=key_usage, extended_key_usage=eku, is_ca=is_ca,
    )


def pem_to_der(text: str) -> list[bytes]:
    """Every certificate block of a PEM text -> DER bytes. Raises ParseError."""
    out = []
    inside = False
    chunk: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line == "-----BEGIN CERTIFICATE-----":
            inside, chunk = True, []
        elif line == "-----END CERTIFICATE-----" and inside:
            try:
                out.append(base64.b64decode("".join(chunk), validate=True))
            except (binascii.Error, ValueError):
                raise ParseError("bad base64 in PEM certificate") from None
            inside = False
        elif inside:
            chunk.append(line)
    return out
