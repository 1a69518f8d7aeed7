"""The on-disk spool: bounds, counted drops, order, restart, rejected/."""

from __future__ import annotations

import gzip
import json
import os
import uuid

import pytest

from kiemke.agent.spool import REJECTED_KEEP, Spool

UNIT = "Liên đoàn Lao động tỉnh Bắc Giang"


def _report(n: int, kind: str = "periodic", pad: int = 0) -> dict:
    return {"schema_version": 1, "report_id": str(uuid.uuid4()), "kind": kind,
            "collected_at": f"2025-01-01T00:00:{n:02d}Z",
            "identity": {"unit": UNIT, "n": n, "pad": os.urandom(pad).hex()}}


def test_order_kept_and_content_survives(tmp_path):
    spool = Spool(tmp_path / "spool")
    ids = [spool.put(_report(i)).report_id for i in range(5)]
    entries = spool.entries()
    assert [e.report_id for e in entries] == ids
    loaded = spool.load(entries[0])
    assert loaded["identity"]["unit"] == UNIT  # diacritics survive gzip + JSON
    raw = gzip.decompress(entries[0].path.read_bytes()).decode("utf-8")
    assert UNIT in raw  # stored as UTF-8, not \\u escapes
    assert entries[0].path.name.endswith(".json.gz")


def test_count_bound_drops_oldest_and_counts(tmp_path):
    spool = Spool(tmp_path / "spool", max_reports=3)
    ids = [spool.put(_report(i)).report_id for i in range(5)]
    assert [e.report_id for e in spool.entries()] == ids[2:]
    assert spool.counters()["dropped_total"] == 2
    assert spool.stats()["pending"] == 3


def test_byte_bound_drops_oldest_and_counts(tmp_path):
    spool = Spool(tmp_path / "spool", max_reports=100, max_bytes=3000)
    ids = [spool.put(_report(i, pad=500)).report_id for i in range(6)]  # ~1 KB each gzipped
    stats = spool.stats()
    assert stats["bytes"] <= 3000
    kept = [e.report_id for e in spool.entries()]
    assert kept == ids[-len(kept):] and 1 <= len(kept) < 6
    assert spool.counters()["dropped_total"] == 6 - len(kept)


def test_survives_restart_and_continues_sequence(tmp_path):
    first = Spool(tmp_path / "spool", max_reports=2)
    a = first.put(_report(1)).report_id
    for i in range(3):
        first.put(_report(i))
    dropped = first.counters()["dropped_total"]
    assert dropped == 2
    second = Spool(tmp_path / "spool", max_reports=10)  # a new process
    b = second.put(_report(9)).report_id
    entries = second.entries()
    assert entries[-1].report_id == b and a not in [e.report_id for e in entries]
    assert entries == sorted(entries, key=lambda e: e.seq)
    assert second.counters()["dropped_total"] == dropped
    # sequence never goes back, even after the spool was emptied
    for e in second.entries():
        second.remove(e)
    c = second.put(_report(10))
    assert c.seq > entries[-1].seq


def test_reject_moves_with_reason_and_is_bounded(tmp_path):
    spool = Spool(tmp_path / "spool")
    entry = spool.put(_report(1))
    target = spool.reject(entry, "HTTP 400: collected_at is not a date (field: collected_at)")
    assert not entry.path.exists() and target.exists()
    assert target.parent.name == "rejected"
    reason = target.with_name(target.name + ".reason.txt").read_text("utf-8")
    assert "collected_at" in reason
    assert spool.entries() == []
    assert spool.stats()["rejected_total"] == 1
    for i in range(REJECTED_KEEP + 5):
        spool.reject(spool.put(_report(i)), "bad")
    assert len(list(spool.rejected_dir.glob("*.json.gz"))) == REJECTED_KEEP
    assert spool.counters()["rejected_total"] == REJECTED_KEEP + 6


def test_ignores_foreign_and_temporary_files(tmp_path):
    spool = Spool(tmp_path / "spool")
    (spool.dir / ".put.abc.tmp").write_bytes(b"half")
    (spool.dir / "notes.txt").write_text("x")
    e = spool.put(_report(1))
    assert spool.entries() == [e]


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_spool_dir_is_private(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.put(_report(1))
    assert (spool.dir.stat().st_mode & 0o777) == 0o700
    counters = json.loads((spool.dir / "counters.json").read_text())
    assert counters["last_seq"] == 1
