"""The agent's state directory: credentials, identity, status counters, the spool.

Layout (docs/agent-config.md):
    <state_dir>/              0700 on POSIX; on Windows only Administrators and SYSTEM
        credentials.json      agent_id + secret from enrolment (0600 / SYSTEM+Administrators)
        identity.json         the machine id last used and its source (keeps it stable)
        status.json           last attempt / success / error, last full inventory
        sequence.json         the last report sequence number given out (never reused)
        agent.log             log of `kiemke-agent run` (rotated, bounded)
        spool/                unsent reports, see spool.py; spool/rejected/ for refused ones

Every write is atomic (temporary file, fsync, rename) so a power cut leaves either the
old or the new file, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kiemke.agent.collectors.base import CollectorError
from kiemke.agent.filelock import LockBusy, exclusive

log = logging.getLogger(__name__)

IS_WINDOWS = sys.platform.startswith("win")
# Well-known SIDs, not names: "Administrators" is "Quản trị viên" on a Vietnamese Windows.
_WINDOWS_OWNERS = ("*S-1-5-32-544:(OI)(CI)F", "*S-1-5-18:(OI)(CI)F")


class StateError(Exception):
    """The state directory cannot be used; the message says which path and what to do."""


def user_state_dir() -> Path:
    """Per-user fallback when the system state dir is not writable (unprivileged runs)."""
    if IS_WINDOWS:
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "kiemke"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kiemke"


def restrict_windows_acl(path: Path) -> None:
    """Leave only Administrators and SYSTEM on path (inheritance removed), via icacls."""
    from kiemke.agent.runner import run  # late import: only used on Windows

    try:
        run(["icacls", str(path), "/inheritance:r", "/grant:r", *_WINDOWS_OWNERS], timeout=30)
    except CollectorError as exc:
        log.warning("could not restrict access to %s with icacls: %s", path, exc.message)


def _fsync_dir(path: Path) -> None:
    if IS_WINDOWS:
        return  # directories cannot be opened for fsync on Windows; NTFS journals renames
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write data to path via a temporary file in the same directory, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if not IS_WINDOWS:
                os.fchmod(fh.fileno(), mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def write_json(path: Path, data: Any, mode: int = 0o600) -> None:
    atomic_write(path, json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8"), mode)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in path, or None when it is missing or damaged (logged)."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable state file %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


@dataclass
class Credentials:
    server: str
    agent_id: str
    secret: str
    machine_id: str
    unit: dict[str, Any]
    enrolled_at: str

    def bearer(self) -> str:
        return f"Bearer {self.agent_id}.{self.secret}"


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


class StateDir:
    """Paths and small JSON files under the agent's state directory."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def open(cls, configured: Path, allow_fallback: bool = False) -> tuple[StateDir, bool]:
        """The configured dir, created 0700; with allow_fallback a per-user dir when the
        configured one is not writable. Returns (state, fell_back)."""
        if _writable(configured):
            state = cls(configured)
            state.secure()
            return state, False
        if not allow_fallback:
            raise StateError(
                f"the state directory {configured} cannot be written. Run the agent as "
                "root/Administrator, or set state_dir in the [agent] section of the "
                "configuration to a writable directory.")
        fallback = user_state_dir()
        if not _writable(fallback):
            raise StateError(f"neither {configured} nor {fallback} can be written; set "
                             "state_dir in the configuration to a writable directory.")
        state = cls(fallback)
        state.secure()
        return state, True

    def secure(self) -> None:
        if IS_WINDOWS:
            marker = self.path / ".acl"
            if not marker.exists():  # icacls once, not on every run
                restrict_windows_acl(self.path)
                atomic_write(marker, b"restricted to Administrators and SYSTEM\n")
            return
        try:
            os.chmod(self.path, 0o700)
        except OSError as exc:
            log.warning("could not set mode 0700 on %s: %s", self.path, exc)

    # -- paths
    @property
    def credentials_path(self) -> Path:
        return self.path / "credentials.json"

    @property
    def identity_path(self) -> Path:
        return self.path / "identity.json"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def spool_dir(self) -> Path:
        return self.path / "spool"

    @property
    def log_path(self) -> Path:
        return self.path / "agent.log"

    # -- credentials
    def load_credentials(self) -> Credentials | None:
        data = read_json(self.credentials_path)
        if not data:
            return None
        try:
            return Credentials(**{k: data[k] for k in Credentials.__dataclass_fields__})
        except (KeyError, TypeError):
            log.warning("%s is incomplete; enrol again", self.credentials_path)
            return None

    def save_credentials(self, creds: Credentials) -> None:
        write_json(self.credentials_path, asdict(creds), mode=0o600)
        if IS_WINDOWS:
            restrict_windows_acl(self.credentials_path)

    # -- report sequence numbers
    @property
    def sequence_path(self) -> Path:
        return self.path / "sequence.json"

    def next_sequence(self) -> int | None:
        """The next report sequence number (1, 2, ...), saved before it is returned so a
        restart never gives it out again; None when it cannot be saved (full or read-only
        disk, another agent process holding the counter for 10 s): the report then goes
        without one and the collector orders it by time (docs/report-format.md)."""
        try:
            with exclusive(self.path / "sequence.lock", wait=10.0):
                last = self._last_sequence()
                if last is None:
                    return None
                write_json(self.sequence_path, {"last": last + 1}, mode=0o600)
        except (OSError, LockBusy) as exc:
            log.warning("cannot save the report counter in %s (%s); this report is sent "
                        "without a sequence number", self.sequence_path, exc)
            return None
        return last + 1

    def _last_sequence(self) -> int | None:
        """0 when there is no counter yet; None (logged) when the file is damaged: starting
        again from 1 would make the collector ignore every later report of this machine."""
        try:
            data = json.loads(self.sequence_path.read_text("utf-8"))
        except FileNotFoundError:
            return 0
        except (OSError, ValueError):
            data = None
        last = data.get("last") if isinstance(data, dict) else None
        if isinstance(last, int) and not isinstance(last, bool) and last >= 0:
            return last
        log.error("%s is damaged, so reports are sent without a sequence number (the "
                  "collector then orders them by time). Restore the file from a backup, or "
                  "enrol this agent again (a new credential starts a new counter) and "
                  "delete the file.", self.sequence_path)
        return None

    # -- status (last attempt / success, last full inventory)
    def status(self) -> dict[str, Any]:
        return read_json(self.status_path) or {}

    def update_status(self, **fields: Any) -> dict[str, Any]:
        data = self.status()
        data.update(fields)
        write_json(self.status_path, data, mode=0o600)
        return data
