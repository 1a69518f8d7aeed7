"""/metrics rebuilds only what changed, and serves gzip: the result must be the text a
fresh process builds from the same database, byte for byte.

Each test fills a process's caches, changes the database the way the collector does
(reports through ingest, time passing, a re-evaluation), and compares the next scrape
with the scrape of a new app (new caches) on the same database.
"""

from __future__ import annotations

import gzip
import zlib
from datetime import datetime, timedelta, timezone

import pytest
from compliance_helpers import (
    DISTRICT_A,
    DISTRICT_B,
    OFFICE,
    OS_FAIL,
    OS_PASS,
    OS_UNKNOWN,
    ROOT,
    RULE,
    build_tree,
    by_labels,
    make_app,
    metric_samples,
    path,
    recent,
    report_at,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from kiemke.collector.changes import (
    COMPLIANCE,
    bump,
    bump_compliance,
    compliance_changes,
    compliance_log_after,
    versions,
)
from kiemke.collector.db.compliance_tables import rule_results
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import machines
from kiemke.collector.evaluation.metrics import _FailingState, _spliced
from kiemke.collector.exposition import Block, LineFormat
from kiemke.collector.metrics import render_metrics

OFFICE_PATH = path(ROOT, DISTRICT_A, OFFICE)


def lines(body: bytes) -> list[bytes]:
    return [line for line in body.split(b"\n")
            if not line.startswith((b"kiemke_scrape_duration_seconds ",
                                    b"kiemke_metrics_provider_duration_seconds{"))]


def database_text(ext) -> bytes:
    """The database families of a scrape (the ingest counters are per process)."""
    return b"".join(ext.db_collector.exposition())


def fresh_body(db_url, tmp_path, monkeypatch) -> bytes:
    """What a new process serves for the same database."""
    other = make_app(db_url, tmp_path / "fresh", monkeypatch)
    try:
        return database_text(other.extensions["kiemke"])
    finally:
        other.extensions["kiemke"].engine.dispose()


@pytest.fixture
def fleet(db_url, tmp_path, monkeypatch):
    app = make_app(db_url, tmp_path, monkeypatch)
    ids = build_tree(app)
    now = recent()
    hosts = {
        "PC-TANAN-01": report_at(app, ids[OFFICE], "PC-TANAN-01", now, **OS_FAIL),
        "PC-TANAN-02": report_at(app, ids[OFFICE], "PC-TANAN-02", now, **OS_PASS),
        "PC-YENDUNG-01": report_at(app, ids[DISTRICT_A], "PC-YENDUNG-01", now, **OS_FAIL),
        "PC-LUCNAM-01": report_at(app, ids[DISTRICT_B], "PC-LUCNAM-01", now, **OS_UNKNOWN),
    }
    yield app, ids, hosts
    app.extensions["kiemke"].engine.dispose()


def test_changes_rebuild_blocks_like_a_fresh_process(fleet, db_url, tmp_path, monkeypatch):
    app, ids, hosts = fleet
    ext = app.extensions["kiemke"]
    render_metrics(ext)  # caches filled
    with ext.engine.connect() as conn:
        before = versions(conn)[COMPLIANCE]
    # One machine's result changes (pass -> fail), another's reason only (unknown facts
    # now failing), and a new machine appears in the other district.
    report_at(app, ids[OFFICE], "PC-TANAN-02", recent(2), machine_id=hosts["PC-TANAN-02"],
              **OS_FAIL)
    report_at(app, ids[DISTRICT_B], "PC-LUCNAM-01", recent(2),
              machine_id=hosts["PC-LUCNAM-01"], **OS_FAIL)
    report_at(app, ids[DISTRICT_B], "MÁY-LỤC-NAM-02", recent(2), **OS_FAIL)
    with ext.engine.connect() as conn:
        after = versions(conn)[COMPLIANCE]
        log = compliance_log_after(conn, before, after)
    # The log names the blocks, so the scrape rebuilds these, not everything.
    assert log is not None
    blocks = log.blocks
    assert (ids[OFFICE], RULE) in blocks and (ids[DISTRICT_B], RULE) in blocks
    assert (ids[DISTRICT_A], RULE) not in blocks
    body = database_text(ext)
    assert lines(body) == lines(fresh_body(db_url, tmp_path, monkeypatch))
    text = body.decode("utf-8")
    failing = by_labels(metric_samples(text, "kiemke_machine_rule_failing"), rule=RULE)
    assert sorted(k[0] for k in failing) == ["MÁY-LỤC-NAM-02", "PC-LUCNAM-01", "PC-TANAN-01",
                                            "PC-TANAN-02", "PC-YENDUNG-01"]
    root = by_labels(metric_samples(text, "kiemke_rule_machines"), rule=RULE, unit=ROOT)
    assert root == {("fail",): 5, ("pass",): 0, ("unknown",): 0}


def test_machine_turning_stale_moves_only_its_units(fleet, db_url, tmp_path, monkeypatch):
    app, _ids, hosts = fleet
    ext = app.extensions["kiemke"]
    render_metrics(ext)
    old = recent() - ext.config.stale_after - timedelta(hours=1)
    with write_transaction(ext.engine) as conn:  # the clock moved on: no version moves
        conn.execute(update(machines).where(machines.c.machine_id == hosts["PC-YENDUNG-01"])
                     .values(last_seen=old))
    body = database_text(ext)
    assert lines(body) == lines(fresh_body(db_url, tmp_path, monkeypatch))
    text = body.decode("utf-8")
    ratio = by_labels(metric_samples(text, "kiemke_rule_compliance_ratio"), rule=RULE,
                      unit=path(ROOT, DISTRICT_A))
    assert ratio == {(): 0.5}  # Tân An: one pass, one fail; Yên Dũng's PC left out
    # It reports again: back in the figures and the failing series.
    report_at(app, _ids[DISTRICT_A], "PC-YENDUNG-01", recent(1),
              machine_id=hosts["PC-YENDUNG-01"], **OS_FAIL)
    body = database_text(ext)
    assert lines(body) == lines(fresh_body(db_url, tmp_path, monkeypatch))
    assert "PC-YENDUNG-01" in {k[0] for k in by_labels(metric_samples(
        body.decode("utf-8"), "kiemke_machine_rule_failing"), rule=RULE)}


def test_change_the_log_cannot_describe_rebuilds_everything(fleet):
    app, _ids, hosts = fleet
    ext = app.extensions["kiemke"]
    render_metrics(ext)
    # A writer that only says "compliance changed" (as a recount does): a gap in the log.
    began = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with write_transaction(ext.engine) as conn:
        conn.execute(update(rule_results).where(
            rule_results.c.machine_id == hosts["PC-TANAN-01"], rule_results.c.rule_id == RULE)
            .values(since=began))
        bump(conn, COMPLIANCE)
    with ext.engine.connect() as conn:
        version = versions(conn)[COMPLIANCE]
        assert compliance_log_after(conn, version - 1, version) is None
    failing = by_labels(metric_samples(render_metrics(ext).decode("utf-8"),
                                       "kiemke_machine_rule_failing"), rule=RULE)
    since = {k[0]: v for k, v in failing.items()}
    assert since["PC-TANAN-01"] == began.timestamp()


def test_log_is_written_with_the_version_and_pruned(fleet, monkeypatch):
    app, ids, hosts = fleet
    ext = app.extensions["kiemke"]
    import kiemke.collector.changes as changes

    monkeypatch.setattr(changes, "LOG_PRUNE_EVERY", 1)
    monkeypatch.setattr(changes, "LOG_KEEP", 1)
    report_at(app, ids[OFFICE], "PC-TANAN-01", recent(1), machine_id=hosts["PC-TANAN-01"],
              **OS_PASS)
    with ext.engine.connect() as conn:
        version = versions(conn)[COMPLIANCE]
        logged = conn.execute(select(compliance_changes.c.version, compliance_changes.c.unit_id,
                                     compliance_changes.c.rule_id)).all()
        # Older versions pruned; this one's blocks kept: the office's os rule.
        assert {v for v, _, _ in logged} == {version}
        assert (version, ids[OFFICE], RULE) in logged
        assert compliance_log_after(conn, version - 2, version) is None  # pruned: gap


def test_gzip_response_is_the_same_text(fleet):
    app, _ids, _hosts = fleet
    client = app.test_client()
    plain = client.get("/metrics")
    assert plain.headers.get("Content-Encoding") is None
    assert "Accept-Encoding" in plain.headers["Vary"]
    packed = client.get("/metrics", headers={"Accept-Encoding": "gzip, deflate"})
    assert packed.status_code == 200
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Content-Type"] == plain.headers["Content-Type"]
    raw = packed.get_data()
    # Several members (the counters, then each cached family part), one valid stream.
    first = zlib.decompressobj(wbits=31)
    first.decompress(raw)
    assert first.unused_data.startswith(b"\x1f\x8b")
    unpacked = gzip.decompress(raw)
    assert lines(unpacked) == lines(plain.get_data())
    text = unpacked.decode("utf-8")
    assert OFFICE_PATH in text
    failing = by_labels(metric_samples(text, "kiemke_machine_rule_failing"), rule=RULE)
    assert sorted(k[0] for k in failing) == ["PC-TANAN-01", "PC-YENDUNG-01"]
    refused = client.get("/metrics", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert refused.headers.get("Content-Encoding") is None
    assert lines(refused.get_data()) == lines(plain.get_data())


def test_log_names_the_changed_machines_and_older_versions_rebuild_blocks(
        fleet, db_url, tmp_path, monkeypatch):
    app, ids, hosts = fleet
    ext = app.extensions["kiemke"]
    render_metrics(ext)
    with ext.engine.connect() as conn:
        before = versions(conn)[COMPLIANCE]
    report_at(app, ids[OFFICE], "PC-TANAN-02", recent(2), machine_id=hosts["PC-TANAN-02"],
              **OS_FAIL)
    with ext.engine.connect() as conn:
        log = compliance_log_after(conn, before, versions(conn)[COMPLIANCE])
    # The scrape re-reads this machine only, not the block's every failing machine.
    assert log is not None and (hosts["PC-TANAN-02"], RULE) in log.machine_rules
    assert not log.unnamed
    assert lines(database_text(ext)) == lines(fresh_body(db_url, tmp_path, monkeypatch))
    # A version that names blocks and no machines (a writer from before migration 0013):
    # those blocks are read again whole.
    began = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with write_transaction(ext.engine) as conn:
        conn.execute(update(rule_results).where(
            rule_results.c.machine_id == hosts["PC-TANAN-01"], rule_results.c.rule_id == RULE)
            .values(since=began))
        bump_compliance(conn, [(ids[OFFICE], RULE)])
    with ext.engine.connect() as conn:
        version = versions(conn)[COMPLIANCE]
        log = compliance_log_after(conn, version - 1, version)
        assert log is not None and log.unnamed == {(ids[OFFICE], RULE)}
    body = database_text(ext)
    failing = by_labels(metric_samples(body.decode("utf-8"), "kiemke_machine_rule_failing"),
                        rule=RULE)
    assert {k[0]: v for k, v in failing.items()}["PC-TANAN-01"] == began.timestamp()
    assert lines(body) == lines(fresh_body(db_url, tmp_path / "again", monkeypatch))


label_value = st.text(st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=200, deadline=None, database=None)
@given(rows=st.dictionaries(label_value, label_value, max_size=12),
       drop=st.sets(label_value, max_size=6),
       added=st.dictionaries(label_value, label_value, max_size=6))
def test_failing_block_splice_is_the_block_built_from_its_rows(rows, drop, added):
    """Lines are found by their machine id whatever the hostnames and ids hold (quotes,
    backslashes, newlines, the label marks themselves)."""
    lines_format = LineFormat("kiemke_machine_rule_failing", _FailingState.LABELS)

    def row(mid: str, hostname: str) -> tuple[list[str], float]:
        return [mid, hostname, "7", 'r"u\\le', "high", "not_met"], 1.5

    def built(machines_: dict[str, str]) -> bytes:
        block = Block(sorted((row(m, h) for m, h in machines_.items()),
                             key=lambda r: r[0][0]))
        block.render(lines_format)
        return block.text or b""

    old = Block(sorted((row(m, h) for m, h in rows.items()), key=lambda r: r[0][0]))
    old.render(lines_format)
    gone = drop | set(added)
    spliced = _spliced(old, gone, [row(m, h) for m, h in added.items()], lines_format)
    expected = {m: h for m, h in rows.items() if m not in gone} | added
    assert (b"" if spliced is None else spliced.text) == built(expected)
