"""`kiemke-agent configure`: write installer settings into agent.conf, keep a pending token.

Installers (the MSI, scripts run by Group Policy or SCCM) call this once per install or
upgrade. Only the settings given are written; everything else in agent.conf (comments,
keys an administrator added) stays as it is, so an upgrade without properties keeps the
existing configuration. The enrolment token is not written to agent.conf: it goes to
`enroll-token` in the state directory (mode 0600; on Windows the directory is limited to
Administrators and SYSTEM), and `kiemke-agent run` enrols with it at its first start and
then deletes it (see pending_enrolment).
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from kiemke.agent.config import ConfigError
from kiemke.agent.state import StateDir, atomic_write

TOKEN_FILE = "enroll-token"  # noqa: S105 - a file name, not a secret

# option name -> (section, key) in agent.conf; the option names are the installers' own.
SETTINGS: dict[str, tuple[str, str]] = {
    "server": ("agent", "server"),
    "unit": ("agent", "unit"),
    "interval": ("agent", "interval"),
    "ca_bundle": ("agent", "ca_bundle"),
    "proxy": ("agent", "proxy"),
    "allow_insecure_http": ("agent", "allow_insecure_http"),
    "gateway_check": ("network", "gateway_check"),
    "internet_probes": ("network", "internet_probes"),
    "dns_names": ("network", "dns_names"),
}

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")


def set_ini_values(text: str, values: dict[tuple[str, str], str]) -> str:
    """Set `key = value` in their sections of INI text, keeping every other line.

    An existing (uncommented) key is replaced where it is; a missing key is added at the
    end of its section; a missing section is appended.
    """
    lines = text.splitlines()
    pending = dict(values)
    section: str | None = None
    section_end: dict[str, int] = {}  # section -> index after its last non-blank line
    out: list[str] = []
    for line in lines:
        match = _SECTION.match(line)
        if match:
            section = match.group(1).strip()
            out.append(line)
            section_end[section] = len(out)
            continue
        key = line.split("=", 1)[0].strip().lower() if "=" in line else None
        if section is not None and key and not line.lstrip().startswith(("#", ";")) \
                and (section, key) in pending:
            out.append(f"{key} = {pending.pop((section, key))}")
        else:
            out.append(line)
        if section is not None and line.strip():
            section_end[section] = len(out)
    # Insert from the bottom up so earlier indexes stay valid.
    additions: dict[str, list[str]] = {}
    for (sec, key), value in pending.items():
        additions.setdefault(sec, []).append(f"{key} = {value}")
    for sec in sorted((s for s in additions if s in section_end),
                      key=lambda s: section_end[s], reverse=True):
        out[section_end[sec]:section_end[sec]] = additions.pop(sec)
    for sec, new_lines in additions.items():
        if out and out[-1].strip():
            out.append("")
        out.append(f"[{sec}]")
        out.extend(new_lines)
    return "\n".join(out) + "\n"


@dataclass
class ConfigureResult:
    config_path: Path
    written: list[str]
    token_path: Path | None


def configure(config_path: Path, state: StateDir, settings: dict[str, str | None],
              token: str | None) -> ConfigureResult:
    """Write the given settings (None: leave alone) and store the token for `run`."""
    values: dict[tuple[str, str], str] = {}
    for name, value in settings.items():
        if value is None:
            continue
        if "\n" in value or "\r" in value:
            raise ConfigError(f"the value of {name} has a line break; give it on one line")
        values[SETTINGS[name]] = value.strip()
    existing = ""
    if config_path.exists():
        existing = config_path.read_text("utf-8-sig")
    if values or not config_path.exists():
        text = set_ini_values(existing or "# kiemke agent configuration: docs/agent-config.md\n",
                              values)
        # 0600 on Linux; on Windows the directory's ACL (Administrators, SYSTEM) applies.
        atomic_write(config_path, text.encode("utf-8"), mode=0o600)
    token_path = None
    if token:
        token_path = state.path / TOKEN_FILE
        atomic_write(token_path, (token.strip() + "\n").encode("utf-8"), mode=0o600)
    return ConfigureResult(config_path, [f"[{s}] {k}" for s, k in values], token_path)


def pending_token(state: StateDir) -> str | None:
    """The enrolment token an installer left for the first start, if any."""
    path = state.path / TOKEN_FILE
    try:
        token = path.read_text("utf-8").strip()
    except FileNotFoundError:
        return None
    return token or None


def forget_token(state: StateDir) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state.path / TOKEN_FILE)
