"""Mail clients on Linux: Thunderbird (deb, snap and flatpak profile locations)."""

from __future__ import annotations

from kiemke.agent.collectors.base import Context, PlatformReading
from kiemke.agent.collectors.mail import thunderbird, user_dirs

HOME_ROOTS = ("/home", "/root")
THUNDERBIRD_DIRS = (".thunderbird", "snap/thunderbird/common/.thunderbird",
                    ".var/app/org.mozilla.Thunderbird/.thunderbird")


def read(ctx: Context, home_roots: tuple[str, ...] = HOME_ROOTS) -> PlatformReading:
    entry, errors = thunderbird(user_dirs(home_roots, THUNDERBIRD_DIRS))
    return PlatformReading({"clients": [entry] if entry else []}, errors)
