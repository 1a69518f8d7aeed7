"""After any sequence of changes, the /metrics a process updated block by block is the text
a new process builds from scratch, byte for byte, in plain text and in gzip.

Hypothesis draws the changes (reports through ingest with other facts or a new hostname,
new machines, results flipped through the store as re-evaluation writes them, machines
turning stale or reporting again), the size above which a gzip segment is compressed
block by block and whether versions name their changed machines (the failing series then
replace those machines' lines, else re-read the blocks whole); after each batch the
long-lived app's scrape is compared with a fresh app's on the same database. Real SQLite
and PostgreSQL.
"""

from __future__ import annotations

import gzip
import itertools
from datetime import timedelta

from compliance_helpers import (
    DISTRICT_A,
    DISTRICT_B,
    OFFICE,
    OS_FAIL,
    OS_PASS,
    OS_UNKNOWN,
    ROOT,
    build_tree,
    database_text,
    make_app,
    recent,
    report_at,
)
from compliance_helpers import (
    stable_lines as stable,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from kiemke.collector import changes, exposition
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.db.tables import machines
from kiemke.collector.evaluation.store import ResultWriter, load_results
from kiemke.collector.metrics import metrics_chunks, render_metrics
from kiemke.collector.timeutil import utcnow

UNITS = (ROOT, DISTRICT_A, OFFICE, DISTRICT_B)
FACTS = (OS_PASS, OS_FAIL, OS_UNKNOWN)
FLIP = {"pass": "fail", "fail": "pass", "unknown": "fail"}

machine_index = st.integers(min_value=0, max_value=63)
change = st.one_of(
    st.tuples(st.just("report"), machine_index, st.sampled_from(range(len(FACTS))),
              st.booleans()),
    st.tuples(st.just("new"), st.sampled_from(UNITS), st.sampled_from(range(len(FACTS)))),
    st.tuples(st.just("flip"), machine_index, st.integers(min_value=0, max_value=20)),
    st.tuples(st.just("stale"), machine_index),
)




class Fleet:
    """A long-lived app and the machines it has enrolled (hostname and unit of each)."""

    def __init__(self, app) -> None:
        self.app = app
        self.ids = build_tree(app)
        self.machines: list[tuple[str, str, str]] = []  # (machine_id, hostname, unit)
        self.names = itertools.count()
        for n, unit in enumerate(UNITS * 2):
            self.add(unit, FACTS[n % len(FACTS)])

    def add(self, unit: str, facts: dict) -> None:
        hostname = f"PC-{next(self.names):03d}"
        mid = report_at(self.app, self.ids[unit], hostname, recent(), **facts)
        self.machines.append((mid, hostname, unit))

    def apply(self, step: tuple) -> None:
        engine = self.app.extensions["kiemke"].engine
        kind = step[0]
        if kind == "new":
            self.add(step[1], FACTS[step[2]])
            return
        at = step[1] % len(self.machines)
        mid, hostname, unit = self.machines[at]
        if kind == "report":
            if step[3]:  # a new hostname: its series move (the machine_labels topic)
                hostname = f"{hostname}-R"
                self.machines[at] = (mid, hostname, unit)
            report_at(self.app, self.ids[unit], hostname, recent(1), machine_id=mid,
                      **FACTS[step[2]])
        elif kind == "stale":
            old = recent() - self.app.extensions["kiemke"].config.stale_after - \
                timedelta(hours=1)
            with write_transaction(engine) as conn:
                conn.execute(update(machines).where(machines.c.machine_id == mid)
                             .values(last_seen=old))
        else:  # flip one stored result, as a re-evaluation writes it (and the bench)
            with write_transaction(engine) as conn:
                old_results = load_results(conn, [mid])[mid]
                flippable = sorted(r for r, v in old_results.items() if v.result in FLIP)
                if not flippable:
                    return
                rule_id = flippable[step[2] % len(flippable)]
                new = {r: (v.result, v.reason) for r, v in old_results.items()}
                result = FLIP[new[rule_id][0]]
                new[rule_id] = (result, "đổi (test)" if result == "fail" else None)
                writer = ResultWriter(utcnow())
                writer.machine(mid, old_results[rule_id].unit_id, new, old_results)
                writer.flush(conn)


def test_incremental_scrape_equals_a_fresh_build(db_url, tmp_path, monkeypatch):
    app = make_app(db_url, tmp_path, monkeypatch)
    fleet = Fleet(app)
    ext = app.extensions["kiemke"]
    render_metrics(ext)
    render_metrics(ext, gzip=True)  # the caches and the gzip members filled
    fresh_dirs = itertools.count()

    @settings(max_examples=12, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture,
                                     HealthCheck.too_slow])
    @given(steps=st.lists(change, min_size=1, max_size=6),
           member_max=st.sampled_from([0, 300, 1 << 30]),
           plain_first=st.booleans(),
           machine_log_max=st.sampled_from([0, 5000]))
    def check(steps, member_max, plain_first, machine_log_max):
        monkeypatch.setattr(exposition, "SEGMENT_MEMBER_MAX", member_max)
        # 0: versions log blocks only, as a large change does (blocks re-read whole).
        monkeypatch.setattr(changes, "MACHINE_LOG_MAX", machine_log_max)
        for step in steps:
            fleet.apply(step)
        order = (False, True) if plain_first else (True, False)
        served = {packed: b"".join(metrics_chunks(ext, packed)) for packed in order}
        fresh = make_app(db_url, tmp_path / f"fresh-{next(fresh_dirs)}", monkeypatch)
        try:
            expected = database_text(fresh)
        finally:
            fresh.extensions["kiemke"].engine.dispose()
        assert stable(database_text(app)) == stable(expected)
        assert stable(served[False]) == stable(gzip.decompress(served[True]))
        assert b"kiemke_machine_rule_failing{" in expected

    try:
        check()
    finally:
        ext.engine.dispose()
