"""Identity on Linux: SMBIOS values from /sys/class/dmi/id, machine-id from /etc."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from kiemke.agent.collectors.base import Context, PlatformReading

DMI = Path("/sys/class/dmi/id")
MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))


def _read(path: Path, errors: list[dict[str, str]], what: str) -> str | None:
    try:
        return path.read_text("utf-8", "replace").strip() or None
    except FileNotFoundError:
        return None  # no DMI (containers, ARM boards): not an error, the next source is used
    except PermissionError:
        errors.append({"collector": "identity", "kind": "permission",
                       "message": f"cannot read {what} ({path}): run the agent as root"})
    except OSError as exc:
        if exc.errno != errno.ENODEV:
            errors.append({"collector": "identity", "kind": "failed",
                           "message": f"cannot read {what} ({path}): {exc.strerror}"})
    return None


def read(ctx: Context, dmi: Path = DMI,
         machine_id_files: tuple[Path, ...] = MACHINE_ID_FILES) -> PlatformReading:
    errors: list[dict[str, str]] = []
    raw: dict[str, Any] = {
        "smbios_uuid": _read(dmi / "product_uuid", errors, "the SMBIOS system UUID"),
        "serial": _read(dmi / "product_serial", errors, "the SMBIOS serial number"),
        "asset_tag": _read(dmi / "chassis_asset_tag", [], "the asset tag"),
        "machine_guid": None,
        # Linux has no SMBIOS-independent domain source: identity falls back to the FQDN.
        "hostname": None,
        "domain": None,
    }
    for path in machine_id_files:
        value = _read(path, [], "the machine id")
        if value:
            raw["machine_guid"] = value
            break
    return PlatformReading(facts=raw, errors=errors)
