"""What the ingest steps share: the report in flight, the step contract, the runner."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from sqlalchemy import Connection, Engine

from kiemke.collector.api.errors import ApiError
from kiemke.collector.ingest import AgentCredential
from kiemke.collector.pipeline.group_commit import GroupCommitter
from kiemke.collector.timeutil import utcnow


class Rejected(ApiError):
    """A step refuses the report: nothing is stored, the agent gets this 4xx answer."""


@dataclass
class Ingest:
    """One report on its way through the steps."""

    agent: AgentCredential
    report: dict[str, Any]
    now: datetime
    # Set by the store step: the write transaction, and the machine as stored
    # (machine_id, unit_id, hostname, ..., first_seen, last_seen, `current`: this report
    # is the machine's newest, `stored_facts`: the facts stored before it).
    conn: Connection | None = None
    machine: dict[str, Any] = field(default_factory=dict)
    stored: bool = False  # True once the report is stored (store or unchanged step)
    finished: bool = False  # a step ended the pipeline (a replay, an unchanged report)
    unchanged: bool = False  # recorded as seen without evaluation (unchanged step)
    facts_digest: str | None = None  # the digest now held as the machine's current facts
    asset: dict[str, Any] | None = None  # the machine's register entry (assets step)

    def reset(self, report: dict[str, Any]) -> None:
        """Back to the state before the transaction's steps (the work is run again)."""
        self.report, self.conn, self.machine, self.asset = report, None, {}, None
        self.stored = self.finished = self.unchanged = False
        self.facts_digest = None

    @property
    def db(self) -> Connection:
        """The write transaction (steps with in_transaction = True)."""
        if self.conn is None:
            raise RuntimeError("this step needs the write transaction: put it after `store`")
        return self.conn


class Step(Protocol):
    """An ingest step: `name` (for docs and errors), whether it runs inside the write
    transaction, and `run`, which may raise Rejected (inside the transaction it rolls
    back: nothing is written) or set `ingest.finished` to end the pipeline."""

    name: ClassVar[str]
    in_transaction: ClassVar[bool]

    def run(self, ingest: Ingest) -> None: ...


class Pipeline:
    """Runs the steps in order: those outside the transaction first, then the others in
    one write transaction (shared with other reports: group_commit.py), which commits
    before the agent gets its answer."""

    def __init__(self, engine: Engine, steps: Sequence[Step]) -> None:
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"ingest step names repeat: {names}")
        inside = [s.in_transaction for s in steps]
        if inside != sorted(inside):
            raise ValueError(f"ingest steps outside the transaction must come first: {names}")
        self.engine = engine
        self.committer = GroupCommitter(engine)
        self.steps = tuple(steps)
        self._before = tuple(s for s in steps if not s.in_transaction)
        self._inside = tuple(s for s in steps if s.in_transaction)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def ingest(self, agent: AgentCredential, report: dict[str, Any],
               now: datetime | None = None) -> bool:
        """Run every step; True when stored, False for a replay (report_id known).
        Raises Rejected for a report that must not be stored."""
        return self.run(agent, report, now).stored

    def run(self, agent: AgentCredential, report: dict[str, Any],
            now: datetime | None = None) -> Ingest:
        """Run every step; the report's outcome (the API answers with it). The steps in
        the transaction run in this process's group commit (group_commit.py): returns
        after the commit."""
        ingest = Ingest(agent=agent, report=report, now=now or utcnow())
        for step in self._before:
            step.run(ingest)

        def work(conn: Connection) -> None:
            # May run twice (a failed batch is run again report by report): from the start.
            ingest.reset(report)
            ingest.conn = conn
            try:
                for step in self._inside:
                    step.run(ingest)
                    if ingest.finished:
                        break
            finally:
                ingest.conn = None

        self.committer.submit(work)
        return ingest
