"""The large /metrics states saved to files, so a new process starts from them.

A process builds the rule families from the database on its first scrape: at 100,000
machines that reads every failing result and renders ~130,000 series (seconds). A
provider whose state has a `SnapshotStore` saves that state (its blocks, texts, counts
and the change versions they reflect) to `<data_dir>/metrics-state/<name>.pickle` after
a scrape changed it, at most every SAVE_EVERY seconds, in a background thread. A new
process of the same collector (a gunicorn worker started or restarted, a restart) loads
it on its first scrape and then goes the usual incremental way from the saved versions
to the database's (kiemke/collector/changes.py): the log names the unit x rule blocks
changed since, a unit tree change or a gap in the log rebuilds everything, exactly as for
a process that kept its state in memory. So the snapshot changes no scraped byte, only
how long the first scrape takes.

A snapshot is used only by the same code and configuration on the same database: its
file name and header hold a key made of the source of the modules that build the
families, the rule set's fingerprint and the stale window (`extra`), and the database's
identity (PostgreSQL: the cluster's system identifier and the database's oid; SQLite:
the file's device and inode), so a recreated database, another rule set or an upgraded
collector never reads an old one. A file that cannot be read is ignored (a fresh build).
The files are written by this collector only (data_dir, like the SQLite database);
pickle is used because they are this process's own objects.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

log = logging.getLogger(__name__)

SAVE_EVERY = 10.0  # seconds between two saves of one state
FORMAT = 1  # bump when what a state saves changes shape


def _code_key() -> str:
    """The source of the modules whose objects a snapshot holds or whose code built it."""
    from kiemke.collector import changes, exposition, metrics, scrape
    from kiemke.collector.evaluation import figures
    from kiemke.collector.evaluation import metrics as rule_metrics

    digest = hashlib.sha256(str(FORMAT).encode())
    for module in (changes, exposition, metrics, scrape, figures, rule_metrics):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()


def database_identity(conn: Connection) -> str:
    """What tells this database from any other, even one recreated under the same URL."""
    if conn.dialect.name == "postgresql":
        row = conn.execute(text(
            "SELECT (SELECT system_identifier FROM pg_control_system()), oid "
            "FROM pg_database WHERE datname = current_database()")).one()
        return f"postgresql:{row[0]}:{row[1]}"
    if conn.dialect.name == "sqlite":
        found = conn.execute(text("PRAGMA database_list")).all()
        path = next((row[2] for row in found if row[1] == "main"), "")
        if path:
            st = os.stat(path)
            return f"sqlite:{st.st_dev}:{st.st_ino}"
        return f"sqlite-memory:{id(conn.engine)}"  # never the same in another process
    return f"{conn.dialect.name}:{conn.engine.url.render_as_string(hide_password=True)}"


class SnapshotStore:
    """The saved state of one provider; see the module docstring."""

    def __init__(self, directory: Path, name: str, extra: str) -> None:
        self.path = Path(directory) / f"{name}.pickle"
        self.extra = extra
        self._key: str | None = None
        self._saved_at = 0.0
        self._saved_marker: Any = None
        self._thread: threading.Thread | None = None

    def key(self, conn: Connection) -> str:
        if self._key is None:
            self._key = hashlib.sha256(
                f"{_code_key()}\n{self.extra}\n{database_identity(conn)}".encode()
            ).hexdigest()
        return self._key

    def load(self, conn: Connection) -> dict[str, Any] | None:
        """The saved state, or None (no file, another key, unreadable)."""
        try:
            with open(self.path, "rb") as source:
                key, state = pickle.load(source)  # noqa: S301 - our own file (docstring)
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - a damaged file only costs a fresh build
            log.warning("metrics state %s cannot be read (%s); building it from the "
                        "database", self.path, exc)
            return None
        if key != self.key(conn) or not isinstance(state, dict):
            return None
        self._saved_marker = state.get("marker")
        return state

    def maybe_save(self, conn: Connection, marker: Any, export: Callable[[], dict[str, Any]]
                   ) -> None:
        """Save `export()` in the background when `marker` (what the state reflects)
        moved since the last save and SAVE_EVERY has passed; one save at a time."""
        if marker == self._saved_marker:
            return
        if time.monotonic() - self._saved_at < SAVE_EVERY:
            return
        if self._thread is not None and self._thread.is_alive():
            return
        state = {**export(), "marker": marker}
        key = self.key(conn)
        self._saved_marker, self._saved_at = marker, time.monotonic()
        self._thread = threading.Thread(target=self._write, args=(key, state),
                                        name="kiemke-metrics-snapshot", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until the save in progress (if any) is written (tests, benchmarks)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _write(self, key: str, state: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    pickle.dump((key, state), out, protocol=pickle.HIGHEST_PROTOCOL)
                os.replace(tmp, self.path)  # readers see the old file or the new one
            except BaseException:
                os.unlink(tmp)
                raise
        except Exception as exc:  # noqa: BLE001 - a snapshot is an optimisation only
            log.warning("metrics state %s could not be saved (%s); new processes build "
                        "it from the database", self.path, exc)
            self._saved_marker = None
