"""ClamAV: signature database headers, `clamscan --version`, clamd/freshclam config.

A .cvd/.cld database starts with a 512-byte ASCII header, space padded:
  ClamAV-VDB:<build time>:<version>:<sigs>:<f-level>:<md5>:<dsig>:<builder>:<stime>
(ClamAV documentation, "ClamAV Virus Database (CVD) file format", and libclamav/cvd.c
cl_cvdparse). <build time> is written by sigtool as "%d %b %Y %H-%M %z" (the minutes
separator is "-" because ":" separates fields); <stime> is the same moment as Unix time
and is what we trust. .cld files (after incremental cdiff updates) keep the same header.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from kiemke.agent.parsers.av_common import ParseError, from_epoch, parse_datetime

HEADER_SIZE = 512
MAGIC = b"ClamAV-VDB:"


class CvdError(ParseError):
    """The file is not a ClamAV database (or is damaged)."""


@dataclass(frozen=True)
class CvdHeader:
    built_at: datetime
    version: int
    signatures: int
    functionality_level: int
    builder: str
    md5: str = ""  # hex MD5 of everything after the header (.cvd only; .cld: stale)


def parse_cvd_header(data: bytes) -> CvdHeader:
    if len(data) < HEADER_SIZE:
        raise CvdError(f"header is {len(data)} bytes, a ClamAV database header is "
                       f"{HEADER_SIZE}")
    head = data[:HEADER_SIZE]
    if not head.startswith(MAGIC):
        raise CvdError("does not start with ClamAV-VDB: (not a ClamAV database)")
    fields = head.decode("ascii", "replace").rstrip(" \0\n").split(":")
    if len(fields) < 8:
        raise CvdError(f"header has {len(fields)} fields, expected at least 8")
    try:
        version, sigs, flevel = int(fields[2]), int(fields[3]), int(fields[4])
    except ValueError as exc:
        raise CvdError(f"version/signature count/level are not numbers: {exc}") from exc
    built = from_epoch(fields[8].strip()) if len(fields) > 8 and fields[8].strip() else None
    if built is None:
        built = parse_datetime(fields[1])
    if built is None:
        raise CvdError(f"build time {fields[1]!r} is unreadable")
    return CvdHeader(built_at=built, version=version, signatures=sigs,
                     functionality_level=flevel, builder=fields[7],
                     md5=fields[5].strip().lower())


def make_cvd_header(built_at: datetime, version: int, signatures: int = 1000,
                    functionality_level: int = 90, builder: str = "kiemke",
                    body: bytes = b"") -> bytes:
    """A valid 512-byte header (the inverse of parse_cvd_header) for a database whose
    body (what follows the header) is `body`."""
    if built_at.tzinfo is None:
        built_at = built_at.replace(tzinfo=timezone.utc)
    stamp = built_at.astimezone(timezone.utc).strftime("%d %b %Y %H-%M %z")
    text = (f"ClamAV-VDB:{stamp}:{version}:{signatures}:{functionality_level}:"
            f"{body_md5([body])}:X:"
            f"{builder}:{int(built_at.timestamp())}")
    return text.encode("ascii").ljust(HEADER_SIZE, b" ")


@dataclass(frozen=True)
class ClamscanVersion:
    engine: str
    database_version: int | None
    database_date: str | None  # clamscan prints ctime() in local time: informational only


_VERSION = re.compile(r"^ClamAV\s+(?P<engine>[0-9][^/\s]*)"
                      r"(?:/(?P<db>\d+)(?:/(?P<date>.+))?)?\s*$")


def parse_clamscan_version(text: str) -> ClamscanVersion:
    """"ClamAV 1.0.7/27450/Mon Nov 18 09:40:01 2024" or "ClamAV 1.4.6" (no database)."""
    for line in text.splitlines():
        m = _VERSION.match(line.strip())
        if m:
            db = m.group("db")
            return ClamscanVersion(engine=m.group("engine"),
                                   database_version=int(db) if db else None,
                                   database_date=(m.group("date") or "").strip() or None)
    raise ParseError(f"not clamscan --version output: {text.strip()[:80]!r}")


def database_directory(conf_text: str) -> str | None:
    """DatabaseDirectory from clamd.conf / freshclam.conf (last one wins, as in ClamAV)."""
    found = None
    for line in conf_text.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0] == "DatabaseDirectory":
            found = parts[1].strip().strip('"')
    return found


def body_md5(chunks: Iterable[bytes]) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def check_cvd_body(header: CvdHeader, md5_of_body: str) -> str | None:
    """The check libclamav's cli_cvdverify makes before loading a .cvd: the MD5 of the
    body must be the header's. None when it matches, else why not. (A .cld, rewritten by
    incremental updates, keeps the old header MD5 and is not checked this way; the
    digital signature over the MD5 is not verified here.)"""
    if not re.fullmatch(r"[0-9a-f]{32}", header.md5):
        return f"the header has no MD5 ({header.md5[:40]!r})"
    if md5_of_body.lower() != header.md5:
        return (f"the database body does not match its header (MD5 {md5_of_body} instead "
                f"of {header.md5}): the file is damaged or incomplete")
    return None
