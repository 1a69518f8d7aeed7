"""Mail clients on Windows: Outlook (classic) profiles of the logged-on users, Thunderbird.

Outlook keeps each account of a profile under HKCU\\Software\\Microsoft\\Office\\<ver>\\
Outlook\\Profiles\\<profile>\\9375CFF0413111d3B88A00104B2A6676\\<nnnnnnnn>, with the
address in `Email` or `Account Name` (REG_BINARY, UTF-16). The agent runs as SYSTEM and
reads HKEY_USERS\\<SID>\\... for every user whose hive is loaded (logged on). The script
prints the values; only their domains are kept (kiemke/agent/parsers/mail_clients.py).
"""

from __future__ import annotations

import os
from typing import Any

from kiemke.agent.collectors.base import CollectorError, Context, PlatformReading
from kiemke.agent.collectors.mail import thunderbird, user_dirs
from kiemke.agent.parsers.mail_clients import ParseError, client_entry, outlook_addresses
from kiemke.agent.windows import powershell

OUTLOOK_SCRIPT = (
    "$dec = { param($x) if ($x -is [byte[]]) { [Text.Encoding]::Unicode.GetString($x)"
    ".TrimEnd([char]0) } elseif ($x) { [string]$x } }; $r = @(); "
    "Get-ChildItem Registry::HKEY_USERS -ErrorAction SilentlyContinue | Where-Object "
    "{ $_.PSChildName -match '^S-1-5-21-[0-9-]+$' } | ForEach-Object { $sid = $_.PSChildName; "
    "foreach ($v in '16.0','15.0') { Get-ChildItem -Path ('Registry::HKEY_USERS\\' + $sid + "
    "'\\Software\\Microsoft\\Office\\' + $v + '\\Outlook\\Profiles') -ErrorAction "
    "SilentlyContinue | ForEach-Object { $prof = $_.PSChildName; Get-ChildItem -Path "
    "($_.PSPath + '\\9375CFF0413111d3B88A00104B2A6676') -ErrorAction SilentlyContinue | "
    "ForEach-Object { $p = Get-ItemProperty -Path $_.PSPath -ErrorAction SilentlyContinue; "
    "$r += [pscustomobject]@{Sid=$sid; Profile=$prof; AccountName=(& $dec $p.'Account Name'); "
    "Email=(& $dec $p.'Email')} } } } }; ConvertTo-Json -InputObject @($r) -Compress"
)


def users_root() -> str:
    return os.path.join(os.environ.get("SYSTEMDRIVE", "C:") + os.sep, "Users")


def read(ctx: Context) -> PlatformReading:
    clients: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    try:
        profiles, addresses = outlook_addresses(
            powershell.script_rows("outlook_accounts", OUTLOOK_SCRIPT, "the Outlook profiles"))
        if profiles:
            clients.append(client_entry("outlook", profiles, addresses))
    except (CollectorError, ParseError) as exc:
        kind = exc.kind if isinstance(exc, CollectorError) else "failed"
        errors.append({"collector": "email", "kind": kind,
                       "message": str(exc)[:1024]})
    entry, tb_errors = thunderbird(user_dirs((users_root(),),
                                             (os.path.join("AppData", "Roaming", "Thunderbird"),)))
    if entry:
        clients.append(entry)
    return PlatformReading({"clients": clients}, errors + tb_errors)
