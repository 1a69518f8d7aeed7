"""Linux OS facts: /etc/os-release, uname, /proc/stat boot time, install-date evidence.

Install date: the earliest change time (ctime) among files an installation creates
once and that nothing rewrites (the installer's logs, the root filesystem's lost+found
made by mkfs, the machine id written at first boot). ctime cannot be set by tools
(tar and cp keep mtime, not ctime), and later changes only move it later, so the
earliest is the closest bound. Dates before 1995 are an unset clock and are ignored.
"""

from __future__ import annotations

import os
import platform
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil

from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading, iso_utc
from kiemke.agent.collectors.os_info import END_OF_SUPPORT, linux_end_of_support, normalise_arch
from kiemke.agent.parsers.errors import ParseError
from kiemke.agent.parsers.os_release import parse_os_release

ROOT = Path("/")  # tests point this at a tree shaped like /
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
INSTALL_EVIDENCE = ("var/log/installer", "root/anaconda-ks.cfg", "var/log/anaconda",
                    "lost+found", "etc/machine-id")
_PLAUSIBLE_FROM = datetime(1995, 1, 1, tzinfo=timezone.utc)


def install_date(now: datetime) -> datetime | None:
    found: list[datetime] = []
    for rel in INSTALL_EVIDENCE:
        try:
            st = os.lstat(ROOT / rel)
        except OSError:
            continue
        when = datetime.fromtimestamp(st.st_ctime, timezone.utc)
        if _PLAUSIBLE_FROM <= when <= now + timedelta(days=1):
            found.append(when)
    return min(found, default=None)


def read_os_release() -> tuple[dict[str, str], str]:
    for rel in OS_RELEASE:
        path = ROOT / rel
        try:
            text = path.read_text("utf-8", "replace")
        except OSError:
            continue
        try:
            return parse_os_release(text, source=str(path)), str(path)
        except ParseError as exc:
            raise CollectorError.from_parse_error(exc, "the distribution's os-release") from exc
    raise CollectorError("not_found", "neither /etc/os-release nor /usr/lib/os-release "
                         "exists, so the Linux distribution is unknown")


def read(ctx: Context) -> PlatformReading:
    errors: list[dict[str, str]] = []
    uname = platform.uname()
    try:
        rel, _path = read_os_release()
    except CollectorError as exc:
        errors.append(exc.entry("os"))
        rel = {}
    end, _release = linux_end_of_support(rel.get("ID"), rel.get("VERSION_ID"), rel.get("NAME"))
    installed = install_date(ctx.now)
    try:
        boot = datetime.fromtimestamp(psutil.boot_time(), timezone.utc)
    except (OSError, RuntimeError) as exc:
        errors.append(CollectorError("failed", f"boot time unreadable: {exc}").entry("os"))
        boot = None
    facts: dict[str, Any] = {
        "family": "linux",
        "name": rel.get("PRETTY_NAME") or rel.get("NAME"),
        "version": rel.get("VERSION_ID"),
        "build": rel.get("BUILD_ID"),
        "edition": rel.get("VARIANT") or rel.get("VARIANT_ID"),
        "architecture": normalise_arch(uname.machine),
        "kernel": uname.release or None,
        "install_date": iso_utc(installed) if installed else None,
        "last_boot": iso_utc(boot) if boot else None,
    }
    return PlatformReading(facts=facts, errors=errors, dates={END_OF_SUPPORT: end})
