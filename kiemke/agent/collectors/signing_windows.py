"""Signing certificates on Windows: the machine's and each loaded user's personal store.

The stores are read from the registry, where Windows keeps each certificate of
Cert:\\LocalMachine\\My and Cert:\\CurrentUser\\My as a serialised store element (value
`Blob` under ...\\SystemCertificates\\My\\Certificates\\<thumbprint>). The agent runs as
SYSTEM, so HKEY_USERS holds the personal stores of the users who are logged on (their
hives are loaded); certificates that Windows copies from a plugged-in smart card or USB
token land there too. The blob carries the DER and the key provider's name, which tells
a token from a software key. Token middleware: installed programs named in vn_ca.json.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading
from kiemke.agent.collectors.signing import authorities_of, machine_salt, middleware_table
from kiemke.agent.parsers import signing as parse
from kiemke.agent.parsers.media_devices import match_software
from kiemke.agent.parsers.x509 import ParseError, parse_der
from kiemke.agent.windows import powershell

_USERS = ("Get-ChildItem Registry::HKEY_USERS -ErrorAction SilentlyContinue | "
          "Where-Object { $_.PSChildName -match '^S-1-5-21-[0-9-]+$' }")
STORE_SCRIPT = (
    "$roots = @(@{s='machine'; k='Registry::HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\"
    "SystemCertificates\\MY\\Certificates'}); "
    f"{_USERS} | ForEach-Object {{ $roots += @{{s='user'; k=('Registry::HKEY_USERS\\' + "
    "$_.PSChildName + '\\Software\\Microsoft\\SystemCertificates\\My\\Certificates')} }; "
    "$r = @(); foreach ($root in $roots) { Get-ChildItem -Path $root.k -ErrorAction "
    "SilentlyContinue | ForEach-Object { $b = (Get-ItemProperty -Path $_.PSPath -Name Blob "
    "-ErrorAction SilentlyContinue).Blob; if ($b) { $r += [pscustomobject]@{Store=$root.s; "
    "Blob=[Convert]::ToBase64String([byte[]]$b)} } } }; "
    "ConvertTo-Json -InputObject @($r) -Compress"
)
PROGRAMS_SCRIPT = (
    "$keys = @('Registry::HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\"
    "Uninstall\\*', 'Registry::HKEY_LOCAL_MACHINE\\SOFTWARE\\WOW6432Node\\Microsoft\\Windows\\"
    "CurrentVersion\\Uninstall\\*'); "
    f"{_USERS} | ForEach-Object {{ $keys += ('Registry::HKEY_USERS\\' + $_.PSChildName + "
    "'\\Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\*') }; "
    "@(Get-ItemProperty -Path $keys -ErrorAction SilentlyContinue | Where-Object "
    "{ $_.DisplayName } | ForEach-Object { [string]$_.DisplayName }) | ConvertTo-Json -Compress"
)


def store_entries(rows: list[dict[str, Any]], ctx: Context,
                  authorities: tuple[parse.Authority, ...], salt: bytes
                  ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Pure: the store script's rows -> certificate entries (and errors for bad blobs)."""
    certs: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for row in rows:
        try:
            blob = base64.b64decode(str(row.get("Blob") or ""), validate=True)
            der, provider = parse.parse_store_blob(blob)
            cert = parse_der(der)
        except (binascii.Error, ParseError, ValueError) as exc:
            errors.append({"collector": "signing", "kind": "failed",
                           "message": f"a certificate in the {row.get('Store')} store "
                                      f"cannot be read: {exc}"[:1024]})
            continue
        if provider is None or cert.is_ca:
            continue  # no private key on this machine (it cannot sign here), or a CA
        certs.append(parse.entry(cert, store=str(row.get("Store") or "user"),
                                 hardware=parse.provider_is_hardware(provider), salt=salt,
                                 authorities=authorities, now=ctx.now))
    return certs, errors


def installed_programs() -> list[str]:
    return powershell.script_strings("installed_programs", PROGRAMS_SCRIPT,
                                     "the list of installed programs")


def read(ctx: Context) -> PlatformReading:
    rows = powershell.script_rows("signing_stores", STORE_SCRIPT, "the personal certificate stores")
    certs, errors = store_entries(rows, ctx, authorities_of(ctx),
                                  machine_salt(ctx.state_dir))
    middleware: list[str] = []
    try:
        wanted = [(m["name"], m["match"]) for m in middleware_table()["windows_programs"]]
        middleware = match_software(installed_programs(), wanted)
    except CollectorError as exc:
        errors.append({"collector": "signing", "kind": exc.kind, "product": "middleware",
                       "message": exc.message})
    return PlatformReading({"certificates": certs, "middleware": middleware}, errors)
