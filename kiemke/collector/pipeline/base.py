"""What the ingest steps share: the report in flight, the step contract, the runner."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from sqlalchemy import Connection, Engine

from kiemke.collector.api.errors import ApiError
from kiemke.collector.db.engine import write_transaction
from kiemke.collector.ingest import AgentCredential
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
    one write transaction, which commits before the agent gets its answer."""

    def __init__(self, engine: Engine, steps: Sequence[Step]) -> None:
        # A step's fast path before the transaction (the unchanged report's:
        # kiemke.collector.pipeline.unchanged): True when it stored and committed.
        fast = [getattr(s, "before_transaction", None) for s in steps]
        self._fast: Callable[[Engine, Ingest], bool] | None = next(
            (f for f in fast if f is not None), None)
        names = [s.name for s in steps]
        if len(set(names)) != len(names):
            raise ValueError(f"ingest step names repeat: {names}")
        inside = [s.in_transaction for s in steps]
        if inside != sorted(inside):
            raise ValueError(f"ingest steps outside the transaction must come first: {names}")
        self.engine = engine
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
        """Run every step; the report's outcome (the API answers with it)."""
        ingest = Ingest(agent=agent, report=report, now=now or utcnow())
        for step in self._before:
            step.run(ingest)
        if report.get("unchanged") and self._fast is not None and self._fast(self.engine,
                                                                              ingest):
            return ingest  # recorded as seen (or a replay), committed
        with write_transaction(self.engine) as conn:
            ingest.conn = conn
            for step in self._inside:
                step.run(ingest)
                if ingest.finished:
                    break
        ingest.conn = None
        return ingest
