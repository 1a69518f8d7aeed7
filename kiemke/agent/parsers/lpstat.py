"""CUPS `lpstat -d -v -l -p` output (run with LC_ALL=C) -> printers.

One run of lpstat gives the default destination, every device URI and the long
printer listing (description, location, PPD path). The PPD's *NickName is the driver.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

from kiemke.agent.parsers.errors import ParseError

_DEFAULT = re.compile(r"^system default destination: (?P<name>\S+)\s*$")
_DEVICE = re.compile(r"^device for (?P<name>[^:\s]+): (?P<uri>\S.*?)\s*$")
_PRINTER = re.compile(r"^printer (?P<name>\S+) (?:is (?P<state>idle|printing|processing)\b"
                      r"|(?P<disabled>disabled)\b)(?P<rest>.*)$")
_NICKNAME = re.compile(r'^\*NickName:\s*"(?P<name>[^"]*)"', re.MULTILINE)

# Device URI schemes (CUPS backends) that reach a printer over the network.
NETWORK_SCHEMES = frozenset({"ipp", "ipps", "http", "https", "socket", "lpd", "dnssd", "smb",
                             "mdns", "hp", "hpfax", "beh", "implicitclass", "ipp14"})
LOCAL_SCHEMES = frozenset({"usb", "parallel", "serial", "file", "scsi"})
VIRTUAL_SCHEMES = frozenset({"cups-pdf", "pdf", "cups-brf", "file"})
# Names of writers that produce a file or a fax rather than paper (CUPS and Windows).
_VIRTUAL_NAME = re.compile(r"\bpdf\b|print to pdf|\bxps\b|onenote|\bfax\b|cups-pdf|"
                           r"document writer|\bsnagit\b", re.IGNORECASE)


def lpstat_failure(message: str) -> tuple[str, str] | None:
    """What a failed lpstat run means, as (error kind, message for the operator).
    None: it only said there are no printers."""
    text = message.lower()
    if "no destinations added" in text:
        return None
    if "scheduler is not running" in text or "unable to connect to server" in text:
        return ("not_found", "the CUPS print service (cupsd) is not running, so printers "
                "cannot be listed; start it with 'systemctl start cups' or ignore this on "
                "machines without printing")
    return "failed", f"lpstat could not list printers: {message}"[:1000]


def uri_scheme(uri: str | None) -> str | None:
    if not uri or ":" not in uri:
        return None
    return uri.split(":", 1)[0].strip().lower() or None


def is_network_uri(uri: str | None) -> bool | None:
    """True for ipp/ipps/socket/lpd/dnssd/smb..., False for usb/parallel/serial, else None."""
    scheme = uri_scheme(uri)
    if scheme is None:
        return None
    if scheme in NETWORK_SCHEMES:
        return True
    if scheme in LOCAL_SCHEMES or scheme in VIRTUAL_SCHEMES:
        return False
    return None


def looks_virtual(*texts: str | None) -> bool:
    """A PDF/XPS/OneNote/fax writer, judged from names, drivers and ports."""
    return any(t and _VIRTUAL_NAME.search(t) for t in texts)


def display_uri(uri: str | None) -> str | None:
    """The device URI without credentials (smb://user:pass@host/... happens)."""
    if not uri:
        return None
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri[:512]
    if parts.password or parts.username:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        uri = parts._replace(netloc=host).geturl()
    return unquote(uri)[:512]


def parse_lpstat(text: str) -> dict[str, Any]:
    """{"default": name | None, "printers": [{name, uri, enabled, description, location,
    interface}]}, in the order lpstat lists them."""
    if not isinstance(text, str):
        raise ParseError("is not text", source="lpstat output")
    default: str | None = None
    printers: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    recognised = False

    def entry(name: str) -> dict[str, Any]:
        return printers.setdefault(name, {"name": name, "uri": None, "enabled": None,
                                          "description": None, "location": None,
                                          "interface": None})

    for raw in text.splitlines():
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        if line.startswith(("\t", " ")):
            if current is None:
                continue
            key, sep, value = line.strip().partition(":")
            if sep and key in ("Description", "Location", "Interface"):
                current[key.lower()] = value.strip() or None
            continue
        current = None
        if line.startswith("no system default destination"):
            recognised = True
            continue
        m = _DEFAULT.match(line)
        if m:
            default, recognised = m.group("name"), True
            continue
        m = _DEVICE.match(line)
        if m:
            entry(m.group("name"))["uri"] = m.group("uri")
            recognised = True
            continue
        m = _PRINTER.match(line)
        if m:
            current = entry(m.group("name"))
            current["enabled"] = m.group("disabled") is None
            recognised = True
    if text.strip() and not recognised:
        raise ParseError("lpstat printed something kiemke does not recognise "
                         f"(first line: {text.strip().splitlines()[0][:200]!r}); "
                         "is lpstat from CUPS?")
    return {"default": default, "printers": list(printers.values())}


def ppd_nickname(text: str) -> str | None:
    """The driver name a PPD gives itself (*NickName), e.g. "HP LaserJet Pro M404, ..."."""
    m = _NICKNAME.search(text or "")
    return m.group("name").strip() or None if m else None


def printers_conf_shared(text: str) -> dict[str, bool]:
    """Printer name -> shared, from cupsd's printers.conf (<Printer x> ... Shared Yes)."""
    shared: dict[str, bool] = {}
    name: str | None = None
    for line in (text or "").splitlines():
        line = line.strip()
        m = re.match(r"^<(?:Default)?Printer\s+([^>]+)>$", line)
        if m:
            name = m.group(1).strip()
            continue
        if line == "</Printer>" or line == "</DefaultPrinter>":
            name = None
            continue
        if name and line.lower().startswith("shared "):
            shared[name] = line.split(None, 1)[1].strip().lower() in ("yes", "on", "true")
    return shared
