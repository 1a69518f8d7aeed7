"""Signing certificates on Linux: NSS databases (Firefox, Chromium, the system) and PKCS#11.

Each user's NSS databases are read with NSS's own `certutil` (package libnss3-tools):
`certutil -L -d sql:DIR` lists nicknames and trust flags; a certificate with a private
key has the 'u' flag, and `certutil -L -r -n NICK` gives its DER for the shared parser.
Token middleware: the vendors' PKCS#11 libraries (vn_ca.json) and the modules p11-kit
has configured; a token a module reports (other than p11-kit's own trust store) is a
hardware token that is plugged in.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading
from kiemke.agent.collectors.signing import authorities_of, machine_salt, middleware_table
from kiemke.agent.parsers import signing as parse
from kiemke.agent.parsers.x509 import parse_der
from kiemke.agent.runner import run, which

CERTUTIL_TIMEOUT = 5.0
# Relative to each home directory; the first matching NSS databases of each kind.
NSS_DIRS = (".pki/nssdb", ".mozilla/firefox/*", "snap/firefox/common/.mozilla/firefox/*",
            ".var/app/org.mozilla.firefox/.mozilla/firefox/*", ".thunderbird/*")
SYSTEM_NSS_DIRS = ("/etc/pki/nssdb",)
HOME_ROOTS = ("/home", "/root")
_SOFTWARE_MODULES = ("p11-kit-trust", "nssckbi")


def nss_databases(home_roots: tuple[str, ...] = HOME_ROOTS) -> list[Path]:
    found: list[Path] = [Path(d) for d in SYSTEM_NSS_DIRS if (Path(d) / "cert9.db").exists()]
    homes: list[str] = []
    for root in home_roots:
        if os.path.basename(root) == "root":
            homes.append(root)
        else:
            homes.extend(sorted(glob.glob(os.path.join(root, "*"))))
    for home in homes:
        for pattern in NSS_DIRS:
            for d in sorted(glob.glob(os.path.join(home, pattern))):
                if os.path.exists(os.path.join(d, "cert9.db")):
                    found.append(Path(d))
    return found[:32]


def _certutil(args: list[str], certutil: str, raw: bool = False) -> str:
    return run([certutil, *args], timeout=CERTUTIL_TIMEOUT, encoding="latin-1" if raw else
               "utf-8", env={"LC_ALL": "C"})


def read(ctx: Context, home_roots: tuple[str, ...] = HOME_ROOTS) -> PlatformReading:
    authorities = authorities_of(ctx)
    salt = machine_salt(ctx.state_dir)
    errors: list[dict[str, str]] = []
    middleware = _middleware(errors)
    dbs = nss_databases(home_roots)
    certs: list[dict[str, Any]] = []
    if not dbs:
        return PlatformReading({"certificates": certs, "middleware": middleware}, errors)
    certutil = which("certutil")
    if certutil is None:
        errors.append({"collector": "signing", "kind": "not_found",
                       "message": f"{len(dbs)} NSS certificate database(s) found but the "
                                  "certutil command is missing, so their certificates cannot "
                                  "be listed; install the package libnss3-tools"})
        return PlatformReading({"certificates": certs, "middleware": middleware}, errors)
    for db in dbs:
        try:
            rows = parse.parse_nss_listing(_certutil(["-L", "-d", f"sql:{db}"], certutil))
            for nick, on_token in parse.nss_user_certs(rows):
                der = _certutil(["-L", "-d", f"sql:{db}", "-n", nick, "-r"], certutil,
                                raw=True).encode("latin-1")
                cert = parse_der(der)
                if cert.is_ca:
                    continue  # a CA with its key here (a test or private CA): signs no document
                # Without a "Token:" prefix the key is in NSS's own software database.
                certs.append(parse.entry(cert, store="nss", hardware=on_token, salt=salt,
                                         authorities=authorities, now=ctx.now))
        except (CollectorError, ValueError) as exc:
            message = exc.message if isinstance(exc, CollectorError) else str(exc)
            kind = exc.kind if isinstance(exc, CollectorError) else "failed"
            errors.append({"collector": "signing", "kind": kind,
                           "message": f"NSS database {db}: {message}"[:1024]})
    return PlatformReading({"certificates": certs, "middleware": middleware}, errors)


def _middleware(errors: list[dict[str, str]]) -> list[str]:
    names = [m["name"] for m in middleware_table()["linux_modules"]
             if any(os.path.exists(p) for p in m["paths"])]
    p11kit = which("p11-kit")
    if p11kit is not None:
        try:
            modules = parse.parse_p11kit_modules(run([p11kit, "list-modules"], timeout=5.0,
                                                     env={"LC_ALL": "C"}))
        except (CollectorError, ValueError) as exc:
            errors.append({"collector": "signing", "kind": "failed",
                           "message": f"p11-kit list-modules: {exc}"[:1024]})
            modules = []
        for module in modules:
            if module.name in _SOFTWARE_MODULES:
                continue
            names.append(module.description or module.name)
    return names
