"""Cameras, microphones and meeting software: what an online meeting needs on this PC.

Windows: Win32_PnPEntity rows of the PnP classes Camera, Image and AudioEndpoint (a
disabled device reports ConfigManagerErrorCode 22). An audio endpoint's device id says
its direction without depending on the display language: `SWD\\MMDEVAPI\\{0.0.1.…}` is a
capture endpoint (microphone), `{0.0.0.…}` a render endpoint (speaker). The Image class
also holds scanners, so an Image device counts as a camera only when its name says so.
Linux: /sys/class/video4linux (one camera may expose several nodes; node index 0 is the
capture node) and ALSA's /proc/asound/pcm (`capture N` marks a capture device);
PipeWire and PulseAudio sit on top of ALSA, so ALSA sees what they can use.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kiemke.agent.parsers.errors import ParseError

_CAPTURE_ENDPOINT = re.compile(r"^SWD\\MMDEVAPI\\\{0\.0\.1\.", re.IGNORECASE)
_RENDER_ENDPOINT = re.compile(r"^SWD\\MMDEVAPI\\\{0\.0\.0\.", re.IGNORECASE)
_CAMERA_WORDS = ("camera", "webcam", "cam ", "facetime", "video", "uvc", "ir camera")
_ASOUND_PCM = re.compile(r"^(?P<card>\d+)-(?P<dev>\d+): (?P<rest>.*)$")
DISABLED_CODE = 22  # CM_PROB_DISABLED
# Device setup class GUIDs (devguid.h): present on every Windows since 7.
CLASS_GUIDS = {
    "{ca3e7ab9-b4c3-4ae6-8251-579ef933890f}": "camera",
    "{6bdd1fc6-810f-11d0-bec7-08002be2092f}": "image",
    "{c166523c-fe0c-4a94-a586-f1a80cfbbf3e}": "audioendpoint",
}


@dataclass(frozen=True)
class Device:
    kind: str  # camera | microphone
    name: str
    enabled: bool | None


def _enabled(row: dict[str, Any]) -> bool | None:
    code = row.get("ConfigManagerErrorCode")
    status = str(row.get("Status") or "").strip().upper()
    if code == DISABLED_CODE:
        return False
    if code == 0 and status in ("OK", ""):
        return True
    if status == "OK":
        return True
    if status in ("ERROR", "DEGRADED") or isinstance(code, int):
        return False
    return None


def windows_devices(rows: Iterable[dict[str, Any]]) -> list[Device]:
    """Win32_PnPEntity rows (Name, PNPClass, PNPDeviceID, Status, ConfigManagerErrorCode)."""
    out = []
    for row in rows:
        if not isinstance(row, dict):
            raise ParseError("PnP rows must be objects")
        cls = str(row.get("PNPClass") or "").casefold() or \
            CLASS_GUIDS.get(str(row.get("ClassGuid") or "").casefold(), "")
        name = str(row.get("Name") or "").strip()
        dev_id = str(row.get("PNPDeviceID") or "")
        if cls == "camera" or (cls == "image" and
                               any(w in f"{name.casefold()} " for w in _CAMERA_WORDS)):
            out.append(Device("camera", name[:256], _enabled(row)))
        elif cls == "audioendpoint" and _CAPTURE_ENDPOINT.match(dev_id):
            out.append(Device("microphone", name[:256], _enabled(row)))
        elif cls == "audioendpoint" and not _RENDER_ENDPOINT.match(dev_id):
            # Neither direction in the id: a driver of another shape; do not guess.
            continue
    return out


def asound_microphones(pcm_text: str) -> list[Device]:
    """/proc/asound/pcm -> one microphone per ALSA PCM device that can capture."""
    out = []
    for line in pcm_text.splitlines():
        if not line.strip():
            continue
        m = _ASOUND_PCM.match(line)
        if m is None:
            raise ParseError(f"unexpected /proc/asound/pcm line: {line[:80]!r}")
        fields = [f.strip() for f in m["rest"].split(" : ")]
        if any(f.startswith("capture") for f in fields[2:]):
            out.append(Device("microphone", (fields[1] if len(fields) > 1 else fields[0])[:256],
                              True))
    return out


def v4l_cameras(nodes: Sequence[tuple[str, str | None, str | None]]) -> list[Device]:
    """(node name, `name` file, `index` file) per /sys/class/video4linux entry -> cameras.

    A UVC camera exposes a capture node (index 0) and a metadata node (index 1): only
    index-0 nodes count. Capture cards and loopback devices also appear here; their
    names are kept so the officer can tell."""
    out = []
    for _node, name, index in nodes:
        if index is not None and index.strip() not in ("", "0"):
            continue
        label = (name or "").strip()
        if "loopback" in label.casefold() or "dummy" in label.casefold():
            continue
        out.append(Device("camera", label[:256] or "video device", True))
    return out


def desktop_entry_name(text: str) -> str | None:
    """The Name= of a .desktop file's [Desktop Entry] group."""
    in_entry = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            in_entry = line == "[Desktop Entry]"
        elif in_entry and line.startswith("Name="):
            return line[5:].strip() or None
    return None


def match_software(installed: Iterable[str], wanted: Sequence[tuple[str, Sequence[str]]]
                   ) -> list[str]:
    """Names from `wanted` ((display name, match substrings)) found among installed names."""
    names = [n.casefold() for n in installed if n]
    found = []
    for display, patterns in wanted:
        if any(p.casefold() in n for p in patterns for n in names):
            found.append(display)
    return found


def section(devices: Sequence[Device], software: Sequence[str]) -> dict[str, Any]:
    """The report's meeting section from the devices and meeting programs found."""
    def count(kind: str, enabled: bool | None = None) -> int:
        return sum(1 for d in devices if d.kind == kind and
                   (enabled is None or d.enabled is enabled))

    return {
        "cameras": count("camera"),
        "cameras_enabled": count("camera", True),
        "microphones": count("microphone"),
        "microphones_enabled": count("microphone", True),
        "devices": [{"kind": d.kind, "name": d.name, "enabled": d.enabled}
                    for d in devices][:16],
        "software": list(software)[:16],
    }
