"""Group commit (kiemke/collector/pipeline/group_commit.py): concurrent reports share
write transactions, each is answered only after its commit, one bad report does not
fail the others, and a worker killed with SIGKILL mid-batch loses no answered report.
Real collectors over HTTP on SQLite and PostgreSQL, and the in-process app."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter

import pytest
import requests
from collector_helpers import add_units, enroll_agent, enrollment_token
from compliance_helpers import make_app
from reports import UNIT_NAME, make_report, new_machine_id
from sqlalchemy import create_engine, select, text
from test_fault_suite import _enroll, _worker_pids

from kiemke.collector.db.engine import normalize_url
from kiemke.collector.db.tables import reports
from kiemke.schema.digest import facts_digest, unchanged_form

AGENTS = 12
THREADS = 12


@pytest.fixture
def dbapp(db_url, tmp_path, monkeypatch):
    """The in-process app on SQLite and on PostgreSQL."""
    application = make_app(db_url, tmp_path, monkeypatch)
    yield application
    application.extensions["kiemke"].engine.dispose()


def _stored(db_url: str) -> Counter:
    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            return Counter(conn.execute(select(reports.c.report_id)).scalars())
    finally:
        engine.dispose()


def _fleet(server, n: int) -> list[tuple[str, str]]:
    unit = server.create_unit(UNIT_NAME)
    token = server.create_token(unit)
    out = []
    for i in range(n):
        machine_id = new_machine_id()
        out.append((machine_id, _enroll(server.url, token, machine_id, f"PC-GC-{i:02d}")))
    return out


def _post(session: requests.Session, url: str, auth: str, report: dict) -> int:
    resp = session.post(f"{url}/api/v1/reports", json=report, timeout=30,
                        headers={"Authorization": auth})
    return resp.status_code


def test_concurrent_reports_all_stored_once(collector_server):
    """12 threads, 12 agents, 240 reports (every tenth sent twice): every answer 202 or
    200 (the replay), every report stored exactly once."""
    server = collector_server
    fleet = _fleet(server, AGENTS)
    answers: Counter = Counter()
    sent: list[str] = []
    lock = threading.Lock()

    def run(k: int) -> None:
        session = requests.Session()
        for i in range(20):
            machine_id, auth = fleet[(k + i) % AGENTS]
            report = make_report(machine_id, hostname=f"PC-GC-{(k + i) % AGENTS:02d}")
            status = _post(session, server.url, auth, report)
            again = _post(session, server.url, auth, report) if i % 10 == 0 else None
            with lock:
                answers[status] += 1
                if again is not None:
                    answers[f"again {again}"] += 1
                sent.append(report["report_id"])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {202: THREADS * 20, "again 200": THREADS * 2}, answers
    stored = _stored(server.db_url)
    assert set(stored) == set(sent) and max(stored.values()) == 1
    assert "database is locked" not in server.log()


def test_sigkill_mid_batch_loses_no_answered_report(collector_server):
    """Reports posted by 12 threads while one worker is killed with SIGKILL, twice: every
    report answered 2xx is in the database; the ones that got no answer are sent again
    (as an agent does from its spool) and end up stored once."""
    server = collector_server
    fleet = _fleet(server, AGENTS)
    answered: list[str] = []
    unanswered: list[tuple[str, dict]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def run(k: int) -> None:
        session = requests.Session()
        i = 0
        while not stop.is_set():
            machine_id, auth = fleet[(k + i) % AGENTS]
            report = make_report(machine_id, hostname=f"PC-GC-{(k + i) % AGENTS:02d}")
            i += 1
            try:
                status = _post(session, server.url, auth, report)
            except requests.RequestException:
                session = requests.Session()
                status = 0
            with lock:
                if status in (200, 202):
                    answered.append(report["report_id"])
                else:
                    unanswered.append((auth, report))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    assert server.process is not None

    def wait_answered(count: int) -> None:
        deadline = time.monotonic() + 180  # a bound for a stuck collector, not a timing
        while len(answered) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(answered) >= count, f"only {len(answered)} reports answered"

    for kill in (1, 2):  # while reports flow: the kill lands inside a batch or a request
        wait_answered(40 * kill)
        workers = _worker_pids(server.process.pid)
        assert workers, "no gunicorn worker found"
        os.kill(workers[0], signal.SIGKILL)
    wait_answered(120)  # the arbiter started another worker; reports flow again
    stop.set()
    for t in threads:
        t.join()
    stored = _stored(server.db_url)
    missing = [r for r in answered if r not in stored]
    assert not missing, f"{len(missing)} reports answered 2xx are not in the database"
    session = requests.Session()
    for auth, report in unanswered:  # the agent's spool sends them again
        assert _post(session, server.url, auth, report) in (200, 202)
    stored = _stored(server.db_url)
    assert max(stored.values()) == 1
    assert set(answered) | {r["report_id"] for _a, r in unanswered} <= set(stored)


def test_one_bad_report_in_a_batch_fails_alone(dbapp):
    """In-process: 16 threads at once, one with an unknown digest (409 raised inside
    the transaction): the others are stored, in shared transactions. The first commit
    is held until the other 15 threads queue behind it, so the next transaction is a
    shared one whatever the machine's load (waiting for sharing to happen by chance
    failed once at load 9)."""
    app = dbapp
    ext = app.extensions["kiemke"]
    committer = ext.pipeline.committer
    commit, sizes = committer._commit, []

    def held_commit(batch):
        if not sizes:
            deadline = time.monotonic() + 30
            while len(committer._waiting) < 15 and time.monotonic() < deadline:
                time.sleep(0.005)
        sizes.append(len(batch))
        commit(batch)

    committer._commit = held_commit
    unit_id = add_units(app, UNIT_NAME)[-1]
    token = enrollment_token(app, unit_id)
    client = app.test_client()
    fleet = []
    for i in range(16):
        machine_id = new_machine_id()
        fleet.append((machine_id, enroll_agent(client, token, machine_id, f"PC-{i}")))
    statuses: dict[int, list[int]] = {}
    start = threading.Barrier(16)

    def run(k: int) -> None:
        local = app.test_client()
        machine_id, headers = fleet[k]
        codes = []
        for _ in range(10):
            report = make_report(machine_id)
            if k == 0:  # never sent in full: the collector does not know the digest
                report["facts_digest"] = facts_digest(report)
                report = unchanged_form(report)
            if not codes:
                start.wait()
            codes.append(local.post("/api/v1/reports", json=report,
                                    headers=headers).status_code)
        statuses[k] = codes

    threads = [threading.Thread(target=run, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses[0] == [409] * 10
    assert all(codes == [202] * 10 for k, codes in statuses.items() if k != 0), statuses
    stored = _stored(ext.engine.url.render_as_string(hide_password=False))
    assert sum(stored.values()) == 150 and max(stored.values()) == 1
    assert max(sizes) >= 15, f"no transaction was shared: batch sizes {sizes}"


# --------------------------------------------------------------- the leader hand-off
# GroupCommitter itself on a real engine (SQLite file, PostgreSQL): each work item
# inserts one row of a table of the test's own and notes which thread ran it in which
# transaction. A slow first item holds the commit, so the others queue behind it.


class Interrupted(BaseException):
    """Not an Exception: what a thread sees when the process is going down."""


@pytest.fixture
def committers(db_url):
    """GroupCommitter(engine, max_batch, lead_batches) on a fresh table `gc_probe`."""
    from kiemke.collector.db.engine import make_engine
    from kiemke.collector.pipeline.group_commit import GroupCommitter

    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE gc_probe (id VARCHAR(40) PRIMARY KEY)")
    yield lambda max_batch=4, lead_batches=1: GroupCommitter(engine, max_batch, lead_batches)
    engine.dispose()


class Probe:
    """Work items that insert `gc_probe` rows and record who ran them, and where; the
    outcome of each submit."""

    def __init__(self, committer) -> None:
        self.committer = committer
        # (id, running thread, transaction): the transaction objects are kept alive
        # here, so their id() are distinct
        self.ran: list[tuple[str, int, int]] = []
        self.transactions: list[object] = []
        self.results: dict[str, BaseException | None] = {}
        self.lock = threading.Lock()

    def work(self, key: str, before=None):
        def run(conn) -> None:
            if before is not None:
                before()
            conn.execute(text("INSERT INTO gc_probe (id) VALUES (:id)"), {"id": key})
            with self.lock:
                tx = conn.get_transaction()
                self.transactions.append(tx)
                self.ran.append((key, threading.get_ident(), id(tx)))
        return run

    def submit(self, key: str, before=None) -> None:
        try:
            self.committer.submit(self.work(key, before))
            self.results[key] = None
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertions
            self.results[key] = exc

    def runner(self) -> dict[str, int]:
        """The thread that ran each item's last run."""
        return {key: r for key, r, _tx in self.ran}

    def stored(self) -> set[str]:
        with self.committer.engine.connect() as conn:
            return set(conn.exec_driver_sql("SELECT id FROM gc_probe").scalars())

    def hold_then_queue(self, items: list[tuple[str, object]]) -> list[threading.Thread]:
        """'slow' commits first and waits; the items queue behind it in this order; then
        'slow' goes on. Waiting for the queue is a bound, not a timing."""
        release = threading.Event()
        threads = [_thread(self.submit, "slow", release.wait)]
        for n, (key, before) in enumerate(items):
            deadline = time.monotonic() + 30
            while len(self.committer._waiting) < n and time.monotonic() < deadline:
                time.sleep(0.005)
            if n == 0:
                while not self.committer._busy and time.monotonic() < deadline:
                    time.sleep(0.005)
            threads.append(_thread(self.submit, key, before))
        deadline = time.monotonic() + 30
        while len(self.committer._waiting) < len(items):
            assert time.monotonic() < deadline, "the threads did not queue"
            time.sleep(0.005)
        release.set()
        return threads


def _thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args)
    thread.start()
    return thread


def _join(threads: list[threading.Thread]) -> None:
    """A bound for a hung hand-over (a waiter nobody wakes), not a timing."""
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a submit never returned"


def _fails() -> None:
    raise ValueError("bad report")


def test_leaders_are_the_request_threads(committers):
    """24 threads x 5 submits, batches of at most 4, 4 batches per leader: every item
    runs on a thread that is inside its own submit (no committer thread), which commits
    its own item first and at most 4 transactions; each item is committed when its
    submit returns."""
    from kiemke.collector.pipeline.group_commit import LEAD_BATCHES

    committer = committers(max_batch=4, lead_batches=LEAD_BATCHES)
    probe = Probe(committer)
    threads_before = threading.active_count()
    submitted: dict[str, int] = {}  # item -> the thread that submitted it
    problems: list[str] = []

    def run(k: int) -> None:
        me = threading.get_ident()
        for i in range(5):
            key = f"t{k}-{i}"
            submitted[key] = me
            with probe.lock:
                before = len(probe.ran)
            committer.submit(probe.work(key, before=lambda: time.sleep(0.002)))
            with probe.lock:
                mine = [(k2, tx) for k2, r, tx in probe.ran[before:] if r == me]
            txs = list(dict.fromkeys(tx for _k, tx in mine))
            if len(txs) > LEAD_BATCHES:
                problems.append(f"{key}: its thread ran {len(txs)} transactions")
            if txs and key not in {k2 for k2, tx in mine if tx == txs[0]}:
                problems.append(f"{key}: its leader did not commit its own item first")
            if key not in probe.stored():
                problems.append(f"{key}: submit returned before the commit")

    threads = [_thread(run, k) for k in range(24)]
    _join(threads)
    assert problems == []
    assert probe.stored() == set(submitted)
    assert committer.batches > 0, "no two items ever shared a transaction"
    assert max(Counter(tx for _key, _r, tx in probe.ran).values()) <= 4
    assert {r for _key, r, _tx in probe.ran} <= set(submitted.values())
    assert threading.active_count() == threads_before, "group commit left a thread"
    assert not committer._busy and not committer._waiting


def test_a_leader_hands_over_after_its_batches(committers):
    """One item per batch, two batches per leader: 'slow' commits its own and the next
    one (a), then promotes b, which commits its own and c; d is b's to hand over."""
    probe = Probe(committers(max_batch=1, lead_batches=2))
    _join(probe.hold_then_queue([(k, None) for k in "abcd"]))
    assert probe.results == dict.fromkeys(["slow", "a", "b", "c", "d"])
    runner = probe.runner()
    assert runner["a"] == runner["slow"]
    assert runner["c"] == runner["b"] != runner["slow"]
    assert runner["d"] not in (runner["slow"], runner["b"])
    assert probe.stored() == {"slow", "a", "b", "c", "d"}


def test_a_failing_item_in_a_batch_fails_alone(committers):
    """4 items queue behind a slow one, one raises: it gets its error with nothing
    written, the other three are committed (the batch is run again item by item, on
    the leader's thread), and the item after the batch is promoted and committed."""
    probe = Probe(committers(max_batch=4, lead_batches=1))
    queue = [("a", None), ("bad", _fails), ("c", None), ("d", None), ("after", None)]
    _join(probe.hold_then_queue(queue))
    assert isinstance(probe.results.pop("bad"), ValueError)
    assert probe.results == dict.fromkeys(["slow", "a", "c", "d", "after"])
    assert probe.stored() == {"slow", "a", "c", "d", "after"}
    runner = probe.runner()
    assert runner["a"] == runner["c"] == runner["d"] != runner["slow"]
    assert runner["after"] not in (runner["a"], runner["slow"])


def test_an_error_in_the_leaders_own_work(committers):
    """The promoted leader's own item raises: the leader gets the error, the items of
    its batch are still committed (each alone), on the leader's thread."""
    probe = Probe(committers(max_batch=4, lead_batches=1))
    _join(probe.hold_then_queue([("leader", _fails), ("x", None), ("y", None)]))
    assert isinstance(probe.results.pop("leader"), ValueError)
    assert probe.results == {"slow": None, "x": None, "y": None}
    assert probe.stored() == {"slow", "x", "y"}
    runner = probe.runner()
    assert runner["x"] == runner["y"] != runner["slow"]


def test_an_interrupted_leader_claims_no_success_and_hands_over(committers):
    """The leader's thread is interrupted inside its batch (a BaseException, not an
    Exception), while it runs a follower's work: the followers in its batch get
    BatchInterrupted, none of the batch is written, and the item queued behind the
    batch is still promoted and committed."""
    from kiemke.collector.pipeline.group_commit import BatchInterrupted

    def interrupt() -> None:
        raise Interrupted

    probe = Probe(committers(max_batch=4, lead_batches=1))
    # The leader's batch is lead, f1, f2, f3; "next" waits behind it.
    queue = [("lead", None), ("f1", None), ("f2", None), ("f3", interrupt), ("next", None)]
    _join(probe.hold_then_queue(queue))
    assert isinstance(probe.results.pop("lead"), Interrupted)  # the leader's thread
    assert all(isinstance(probe.results.pop(k), BatchInterrupted) for k in ("f1", "f2", "f3"))
    assert probe.results == {"slow": None, "next": None}
    assert probe.stored() == {"slow", "next"}
    assert not probe.committer._busy and not probe.committer._waiting
