"""Bounded on-disk spool of reports not yet accepted by the collector.

Every report is written here first and removed only after the collector answered 2xx,
so a crash, a power cut or an unreachable collector never loses one. One file per
report, gzip-compressed JSON, named `<sequence>-<kind>-<report_id>.json.gz` with a
zero-padded sequence so that name order is creation order and delivery is in order.

Bounds (spool_max_reports, spool_max_bytes): past either, the OLDEST report is dropped
and counted (`dropped_total` in spool/counters.json, shown by `kiemke-agent status` and
logged). A report the collector refused (4xx other than 401/429) is moved to
spool/rejected/ (kept bounded) with the reason beside it, and is not retried.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiemke.agent.state import atomic_write, read_json, write_json

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{12})-(periodic|full)-([0-9a-f-]{36})\.json\.gz$")
REJECTED_KEEP = 50  # rejected reports kept for inspection, oldest removed first


@dataclass(frozen=True, order=True)
class Entry:
    seq: int
    kind: str
    report_id: str
    path: Path

    @property
    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


class Spool:
    def __init__(self, directory: Path, max_reports: int = 1000,
                 max_bytes: int = 50 * 1024 * 1024) -> None:
        self.dir = Path(directory)
        self.rejected_dir = self.dir / "rejected"
        self.max_reports = max(1, int(max_reports))
        self.max_bytes = max(1, int(max_bytes))
        self.dir.mkdir(parents=True, exist_ok=True)
        if os.name == "posix":
            with contextlib.suppress(OSError):
                os.chmod(self.dir, 0o700)

    # -- counters (persisted so that drops survive restarts and show in `status`)
    @property
    def _counters_path(self) -> Path:
        return self.dir / "counters.json"

    def counters(self) -> dict[str, int]:
        data = read_json(self._counters_path) or {}
        return {k: int(data.get(k, 0)) for k in ("dropped_total", "rejected_total", "last_seq")}

    def _bump(self, **deltas: int) -> dict[str, int]:
        data = self.counters()
        for key, delta in deltas.items():
            data[key] = data.get(key, 0) + delta
        write_json(self._counters_path, data)
        return data

    # -- entries
    def entries(self) -> list[Entry]:
        """Pending reports, oldest first."""
        found = []
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        for name in names:
            m = _NAME.match(name)
            if m:
                found.append(Entry(int(m.group(1)), m.group(2), m.group(3), self.dir / name))
        return sorted(found)

    def stats(self) -> dict[str, int]:
        entries = self.entries()
        rejected = [p for p in self.rejected_dir.glob("*.json.gz")] \
            if self.rejected_dir.exists() else []
        counters = self.counters()
        return {"pending": len(entries), "bytes": sum(e.size for e in entries),
                "dropped_total": counters["dropped_total"],
                "rejected_total": counters["rejected_total"], "rejected_kept": len(rejected)}

    def put(self, report: dict[str, Any]) -> Entry:
        """Store a report (gzip JSON) after every pending one, then enforce the bounds."""
        data = gzip.compress(json.dumps(report, ensure_ascii=False, separators=(",", ":"))
                             .encode("utf-8"), compresslevel=6, mtime=0)
        kind = report.get("kind", "periodic")
        report_id = str(report["report_id"])
        entries = self.entries()
        seq = max([e.seq for e in entries] + [self.counters()["last_seq"]]) + 1
        fd, tmp = tempfile.mkstemp(prefix=".put.", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            while True:  # link() never overwrites: two agents spooling at once get two seqs
                path = self.dir / f"{seq:012d}-{kind}-{report_id}.json.gz"
                try:
                    os.link(tmp, path)
                    break
                except FileExistsError:
                    seq += 1
                except OSError:  # no hard links on this file system (FAT, some shares)
                    if path.exists():
                        seq += 1
                        continue
                    os.replace(tmp, path)
                    break
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        entry = Entry(seq, kind, report_id, path)
        # The report is safe on disk now; the bookkeeping below must not undo that.
        counters = self.counters()
        counters["last_seq"] = max(seq, counters["last_seq"])
        try:
            write_json(self._counters_path, counters)
        except OSError as exc:
            log.warning("cannot update %s (%s); the report is spooled all the same",
                        self._counters_path, exc)
        self.enforce_bounds()
        return entry

    def enforce_bounds(self) -> int:
        """Drop the oldest reports while over either bound; returns how many were dropped."""
        entries = self.entries()
        total = sum(e.size for e in entries)
        dropped = 0
        while entries and (len(entries) > self.max_reports or total > self.max_bytes):
            oldest = entries.pop(0)
            total -= oldest.size
            with contextlib.suppress(FileNotFoundError):
                oldest.path.unlink()
            dropped += 1
            log.warning("spool full (%d reports, %d bytes allowed): dropped the oldest "
                        "report %s collected before the collector could be reached",
                        self.max_reports, self.max_bytes, oldest.report_id)
        if dropped:
            try:
                self._bump(dropped_total=dropped)
            except OSError as exc:
                log.warning("cannot count the dropped reports in %s: %s",
                            self._counters_path, exc)
        return dropped

    def load(self, entry: Entry) -> dict[str, Any]:
        return json.loads(gzip.decompress(entry.path.read_bytes()).decode("utf-8"))

    def raw(self, entry: Entry) -> bytes:
        """The stored gzip bytes (sent as they are with Content-Encoding: gzip)."""
        return entry.path.read_bytes()

    def remove(self, entry: Entry) -> None:
        with contextlib.suppress(FileNotFoundError):
            entry.path.unlink()

    def reject(self, entry: Entry, reason: str) -> Path:
        """Move a report the collector refused to rejected/ with the reason beside it."""
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        target = self.rejected_dir / entry.path.name
        try:
            os.replace(entry.path, target)
        except FileNotFoundError:
            return target
        try:  # the move is what matters; the note and the count are best effort
            atomic_write(target.with_name(target.name + ".reason.txt"),
                         (reason.strip() + "\n").encode("utf-8"))
            self._bump(rejected_total=1)
        except OSError as exc:
            log.warning("cannot write the reason beside %s: %s", target, exc)
        log.error("the collector rejected report %s: %s (kept in %s)",
                  entry.report_id, reason, target)
        kept = sorted(self.rejected_dir.glob("*.json.gz"))
        for old in kept[:max(0, len(kept) - REJECTED_KEEP)]:
            old.unlink(missing_ok=True)
            old.with_name(old.name + ".reason.txt").unlink(missing_ok=True)
        return target
