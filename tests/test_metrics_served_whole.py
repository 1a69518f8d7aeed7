"""GET /metrics from a real `kiemke-collector serve` (gunicorn, 2 workers) over HTTP is
the whole body: every gzip member ends with its trailer, Content-Length counts every part,
and gzip and plain text hold exactly the series the Flask test client renders from the
same database, on the first scrapes (new connections: a worker's first is a cold
build) and later ones. The fleet is large enough
that the failing series' segments are compressed block by block (several members in one
part: exposition.SEGMENT_MEMBER_MAX). Real SQLite and PostgreSQL.

The body is decoded here, strictly, not by requests: urllib3 2.6-2.8 cuts a multi-member
gzip body read in pieces when a member ends where a piece of decoded text ends
(tests/scrape_helpers.py), which once looked like a server that loses series.
"""

from __future__ import annotations

import pytest
from compliance_helpers import OFFICE, build_tree, database_text, make_app, recent, report_at
from compliance_helpers import stable_lines as lines
from conftest import start_collector, stop_collector
from scrape_helpers import scrape

from kiemke.collector.exposition import SEGMENT_MEMBER_MAX, gunzip_members, gzip_member
from kiemke.collector.metrics import metrics_chunks

MACHINES = 150  # ~170 bytes per failing line: a segment of 16 blocks passes 16 KiB
DATABASE_PART = b"# HELP kiemke_build_info "  # the ingest counters come before it


def database_lines(body: bytes) -> list[bytes]:
    """The database families of a scrape (the ingest counters differ: multiprocess mode)."""
    at = body.index(DATABASE_PART)
    return lines(body[at:])


def test_gunicorn_serves_every_series_in_gzip_and_plain(db_url, tmp_path, monkeypatch):
    app = make_app(db_url, tmp_path, monkeypatch)
    office = build_tree(app)[OFFICE]
    now = recent()
    for i in range(MACHINES):
        report_at(app, office, f"PC-TANAN-{i:03d}", now)  # Windows 10: failing
    want = lines(database_text(app))
    ext = app.extensions["kiemke"]
    per_part = [gunzip_members(p)[1] for p in metrics_chunks(ext, gzip=True)]
    # The per-block path is taken: a part of the body holds several members.
    assert max(per_part) > 1, f"no segment over {SEGMENT_MEMBER_MAX} bytes"
    failing = sum(1 for line in want if line.startswith(b"kiemke_machine_rule_failing{"))
    assert failing >= MACHINES
    ext.engine.dispose()

    server = start_collector(db_url, tmp_path / "collector")
    try:
        # New connections, to either worker: the first of each is a cold build.
        for encoding in ("gzip", "identity", "gzip", "identity", "gzip", "gzip"):
            body, members, sent = scrape(server.url, encoding)
            assert sent is not None  # gunicorn sets it: the body is a list of parts
            assert database_lines(body) == want, encoding
            if encoding == "gzip":
                assert members == sum(per_part)
    finally:
        stop_collector(server)


def test_gunzip_members_reads_every_member_and_refuses_a_cut_body():
    body = b"".join(gzip_member(f"line {i}\n".encode() * 500) for i in range(3))
    text, members = gunzip_members(body)
    assert members == 3 and text == b"".join(f"line {i}\n".encode() * 500 for i in range(3))
    with pytest.raises(ValueError, match="gzip member 2 is cut"):
        gunzip_members(body[:-4])  # the last member's trailer lost
