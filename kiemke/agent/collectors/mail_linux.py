"""Mail clients on Linux: Thunderbird (deb, snap and flatpak profile locations)."""

from __future__ import annotations

from typing import Any

from kiemke.agent.collectors.base import Context
from kiemke.agent.collectors.mail import thunderbird, user_dirs

HOME_ROOTS = ("/home", "/root")
THUNDERBIRD_DIRS = (".thunderbird", "snap/thunderbird/common/.thunderbird",
                    ".var/app/org.mozilla.Thunderbird/.thunderbird")


def read(ctx: Context, home_roots: tuple[str, ...] = HOME_ROOTS
         ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    entry, errors = thunderbird(user_dirs(home_roots, THUNDERBIRD_DIRS))
    return ([entry] if entry else []), errors
