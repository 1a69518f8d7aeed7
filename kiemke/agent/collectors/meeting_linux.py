"""Cameras (V4L2 in /sys), microphones (ALSA /proc/asound/pcm), meeting programs (.desktop)."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from kiemke.agent.collectors.base import Context, PlatformReading
from kiemke.agent.collectors.meeting import wanted_of
from kiemke.agent.parsers.media_devices import (
    Device,
    ParseError,
    asound_microphones,
    desktop_entry_name,
    match_software,
    v4l_cameras,
)

V4L = Path("/sys/class/video4linux")
ASOUND_PCM = Path("/proc/asound/pcm")
APPLICATION_DIRS = ("/usr/share/applications", "/usr/local/share/applications",
                    "/var/lib/flatpak/exports/share/applications",
                    "/var/lib/snapd/desktop/applications")
HOME_APPLICATIONS = ("/home/*/.local/share/applications",
                     "/home/*/.local/share/flatpak/exports/share/applications")


def _text(path: Path) -> str | None:
    try:
        return path.read_text("utf-8", "replace").strip()
    except OSError:
        return None


def cameras(v4l: Path = V4L) -> list[Device]:
    if not v4l.is_dir():
        return []  # no video4linux class: the kernel has no camera driver loaded
    nodes = [(p.name, _text(p / "name"), _text(p / "index")) for p in sorted(v4l.iterdir())]
    return v4l_cameras(nodes)


def microphones(pcm: Path, errors: list[dict[str, str]]) -> list[Device]:
    try:
        text = pcm.read_text("utf-8", "replace")
    except FileNotFoundError:
        return []  # no ALSA sound card at all
    except OSError as exc:
        errors.append({"collector": "meeting", "kind": "failed",
                       "message": f"cannot read {pcm}: {exc.strerror}"})
        return []
    try:
        return asound_microphones(text)
    except ParseError as exc:
        errors.append({"collector": "meeting", "kind": "failed", "message": str(exc)})
        return []


def installed_programs(dirs: tuple[str, ...] = APPLICATION_DIRS,
                       home_dirs: tuple[str, ...] = HOME_APPLICATIONS) -> list[str]:
    names: list[str] = []
    patterns = [os.path.join(d, "*.desktop") for d in dirs] + \
        [os.path.join(d, "*.desktop") for d in home_dirs]
    for pattern in patterns:
        for path in sorted(glob.glob(pattern))[:2000]:
            names.append(os.path.basename(path)[:-len(".desktop")])
            text = _text(Path(path))
            if text and (name := desktop_entry_name(text)):
                names.append(name)
    return names


def read(ctx: Context, v4l: Path = V4L, pcm: Path = ASOUND_PCM,
         app_dirs: tuple[str, ...] = APPLICATION_DIRS,
         home_dirs: tuple[str, ...] = HOME_APPLICATIONS) -> PlatformReading:
    wanted = wanted_of(ctx)
    errors: list[dict[str, str]] = []
    devices = cameras(v4l) + microphones(pcm, errors)
    software = match_software(installed_programs(app_dirs, home_dirs), wanted)
    return PlatformReading({"devices": devices, "software": software}, errors)
