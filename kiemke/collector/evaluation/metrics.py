"""Metric families for rules (docs/metrics.md), built from the database.

Each process keeps the families it built and reuses them while what they were built from
is unchanged: the change versions (kiemke/collector/changes.py, bumped in the writing
transactions), the unit tree and the set of stale machines (read on every scrape: a
machine turns stale with the clock, without any write). Every gunicorn worker and
collector instance sharing a database therefore exports the same values.

The large families are kept as blocks of unit x rule (metrics.BlocksFamily). A change
rebuilds only the blocks it touched: the compliance change log names the unit x rule
blocks each version changed, and a machine turning stale (or reporting again) touches its
unit's blocks. Only what the log cannot tell (a recount, a full re-evaluation, a pruned
log), a unit tree change or, for the per-machine series, a renamed, moved or removed
machine (the MACHINE_LABELS topic) rebuilds a whole family.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Collection, Iterator
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Connection, select
from sqlalchemy.sql import ColumnElement

from kiemke.collector.changes import COMPLIANCE, MACHINE_LABELS
from kiemke.collector.db.compliance_tables import rule_results
from kiemke.collector.db.tables import machines
from kiemke.collector.evaluation.figures import Direct, block_counts, direct_counts, nest
from kiemke.collector.exposition import EMPTY_BLOCK, Block, BlocksFamily, LineFormat, RowsFamily
from kiemke.collector.metrics_snapshot import SnapshotStore
from kiemke.collector.scrape import (
    UNIT_LABELS,
    Memo,
    StaleMachine,
    change_versions,
    compliance_log,
    scrape_units,
    stale_machines,
    unit_labels,
)
from kiemke.collector.units import Unit, ancestors_map
from kiemke.compliance import RESULTS, RuleSet, ratio
from kiemke.compliance.rules import PLACEHOLDER_RE, Rule

ALWAYS = ("pass", "fail", "unknown")

Provider = Callable[[Connection, datetime], Iterator[Metric]]


def rule_definitions(ruleset: RuleSet) -> Provider:
    """kiemke_rule_info, kiemke_rule_target_ratio, kiemke_rule_grace_seconds and
    kiemke_reason_info (the text behind each rule's reason_code)."""

    def provider(_conn: Connection, _now: datetime) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "kiemke_rule_info", "A rule of the loaded rule set (value 1)",
            labels=["rule", "title_vi", "title_en", "source", "severity", "scope"])
        target = GaugeMetricFamily("kiemke_rule_target_ratio",
                                   "Target share of passing machines (units) of a rule",
                                   labels=["rule"])
        grace = GaugeMetricFamily("kiemke_rule_grace_seconds",
                                  "How long a failure may last before it counts against "
                                  "the rule's deadline", labels=["rule"])
        reasons = GaugeMetricFamily(
            "kiemke_reason_info", "The reason text of a rule's failure code (value 1); "
            "… stands for the machine's values, shown in the console",
            labels=["rule", "reason_code", "text_vi", "text_en"])
        for rule in ruleset.rules:
            info.add_metric([rule.id, rule.title.get("vi", ""), rule.title.get("en", ""),
                             rule.source.document, rule.severity, rule.kind], 1)
            target.add_metric([rule.id], rule.target)
            grace.add_metric([rule.id], rule.grace_seconds)
            reasons.add_metric([rule.id, rule.reason_code, reason_text(rule, "vi"),
                                reason_text(rule, "en")], 1)
        yield from (info, target, grace, reasons)

    return provider


def reason_text(rule: Rule, lang: str) -> str:
    """The rule's reason with each machine value elided: one text per reason_code."""
    return PLACEHOLDER_RE.sub("…", rule.reason.get(lang) or rule.reason.get("en") or "")


class _Changes:
    """What changed since a provider's last build: the blocks to rebuild, or everything."""

    def __init__(self) -> None:
        self.key: Any = None  # what forces a full rebuild when it moves
        self.version = -1  # the COMPLIANCE version the blocks reflect
        self.stale: dict[str, int] = {}  # machine_id -> unit_id, as of the build

    def copy(self) -> _Changes:
        other = _Changes()
        other.key, other.version, other.stale = self.key, self.version, self.stale
        return other

    def marker(self) -> tuple[Any, int, dict[str, int]]:
        """What the state built with these changes reflects (metrics_snapshot)."""
        return (self.key, self.version, self.stale)

    def since(self, conn: Connection, key: Any, stale: tuple[StaleMachine, ...],
              rule_ids: Collection[str]) -> Dirty:
        """What changed since the last call (or everything); remembers the new state."""
        version = change_versions(conn)[COMPLIANCE]
        now_stale = {m.machine_id: m.unit_id for m in stale}
        dirty = Dirty(key != self.key, set(), set(), set(), {})
        if not dirty.full and version != self.version:
            log = compliance_log(conn, self.version, version)
            if log is None:
                dirty = dirty._replace(full=True)
            else:
                dirty.blocks.update(log.blocks)
                dirty.machine_rules.update(log.machine_rules)
                dirty.unnamed.update(log.unnamed)
        if not dirty.full and now_stale != self.stale:
            # Turned stale (or moved while stale), and turned active: either side's unit.
            for mine, other in ((now_stale, self.stale), (self.stale, now_stale)):
                for m, u in mine.items():
                    if other.get(m) != u:
                        dirty.moved.setdefault(m, set()).add(u)
            moved = {u for units_ in dirty.moved.values() for u in units_}
            dirty.blocks.update((u, r) for u in moved for r in rule_ids)
        self.key, self.version, self.stale = key, version, now_stale
        return dirty


class Dirty(NamedTuple):
    """What changed since a provider's last build (_Changes.since)."""

    full: bool  # rebuild everything
    blocks: set[tuple[int, str]]  # (unit_id, rule_id) blocks changed
    machine_rules: set[tuple[str, str]]  # (machine_id, rule_id) results the log names
    unnamed: set[tuple[int, str]]  # blocks whose changed machines the log does not name
    moved: dict[str, set[int]]  # machine_id -> units: machines turned stale or active


def rule_compliance(ruleset: RuleSet, stale_after: timedelta,
                    snapshots: SnapshotStore | None = None) -> Provider:
    """Ratios and result counts per unit x rule, rolled up over the tree. With
    `snapshots`, the state is saved after changes and a new process starts from it
    (kiemke.collector.metrics_snapshot)."""
    state = _FiguresState(ruleset)
    lock = threading.Lock()
    loaded = [snapshots is None]

    def provider(conn: Connection, now: datetime) -> Iterator[Metric]:
        units_ = scrape_units(conn)
        stale = stale_machines(conn, now - stale_after)
        with lock:
            _restore_once(conn, state, snapshots, loaded)
            families = state.families(conn, now - stale_after, units_, stale)
            if snapshots is not None:
                snapshots.maybe_save(conn, state.changes.marker(), state.export)
        yield from families

    return provider


def _restore_once(conn: Connection, state: _FiguresState | _FailingState,
                  snapshots: SnapshotStore | None, loaded: list[bool]) -> None:
    """On a process's first scrape: the saved state, when there is one for this key."""
    if loaded[0] or snapshots is None:
        return
    loaded[0] = True
    saved = snapshots.load(conn)
    if saved is not None:
        state.restore(saved)


class _FiguresState:
    """kiemke_rule_compliance_ratio, kiemke_rule_machines and kiemke_rule_units, kept as
    blocks per unit x rule with the direct and rolled-up counts behind them.

    A changed (unit, rule) re-reads that unit's direct counts and moves the rolled-up
    counts of the unit and its ancestors by the difference, so only their blocks are
    rendered again.
    """

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.kinds = {r.id: r.kind for r in ruleset.rules}
        self.changes = _Changes()
        self.direct: dict[tuple[int, str], dict[str, int]] = {}
        self.rolled: dict[tuple[int, str], dict[str, int]] = {}
        self.blocks: dict[tuple[int, str], tuple[Block, Block]] = {}  # (ratio, counts)
        self.chains: dict[int, list[int]] = {}
        self.out: list[Metric] = []
        # Where each (unit_id, rule_id) block sits in the families, for the tree it was
        # made for (not saved: a restored state makes it on its first render).
        self.positions: dict[tuple[int, str], int] = {}
        self.positions_of: tuple[Unit, ...] | None = None

    def export(self) -> dict[str, Any]:
        """What metrics_snapshot saves: copies of what later scrapes replace in place."""
        return {"changes": self.changes.copy(), "direct": dict(self.direct),
                "rolled": dict(self.rolled), "blocks": dict(self.blocks),
                "chains": self.chains, "out": list(self.out)}

    def restore(self, saved: dict[str, Any]) -> None:
        self.changes, self.direct, self.rolled = saved["changes"], saved["direct"], \
            saved["rolled"]
        self.blocks, self.chains, self.out = saved["blocks"], saved["chains"], saved["out"]

    def families(self, conn: Connection, cutoff: datetime, units_: tuple[Unit, ...],
                 stale: tuple[StaleMachine, ...]) -> list[Metric]:
        changed = self.changes.since(conn, units_, stale, list(self.kinds))
        if changed.full:
            self.chains = ancestors_map(units_)
            self.direct = self._read(conn, cutoff, None)
            self.rolled = _rolled(self.direct, self.chains)
            self.blocks = {}
            self.positions_of = None  # every block is new: lay the families out again
            self._render(units_, set(self.rolled))
            return self.out
        dirty = {(u, r) for u, r in changed.blocks if r in self.kinds}
        if not dirty:
            return self.out
        fresh = block_counts(conn, self.ruleset, dirty, self.changes.stale)
        touched: set[tuple[int, str]] = set()
        for unit_id, rule_id in dirty:
            old = self.direct.pop((unit_id, rule_id), {})
            new = fresh.get((unit_id, rule_id), {})
            if new:
                self.direct[(unit_id, rule_id)] = new
            if old == new:
                continue
            for ancestor in self.chains.get(unit_id, [unit_id]):
                key = (ancestor, rule_id)
                touched.add(key)
                counts = dict(self.rolled.get(key, {}))
                for result in set(old) | set(new):
                    n = counts.get(result, 0) + new.get(result, 0) - old.get(result, 0)
                    if n:
                        counts[result] = n
                    else:
                        counts.pop(result, None)
                if counts:
                    self.rolled[key] = counts
                else:
                    self.rolled.pop(key, None)
        if touched:
            self._render(units_, touched)
        return self.out

    def _read(self, conn: Connection, cutoff: datetime, unit_ids: set[int] | None
              ) -> dict[tuple[int, str], dict[str, int]]:
        direct, _stale, unit_direct = direct_counts(conn, self.ruleset, cutoff, unit_ids)
        return {**nest(direct), **nest(unit_direct)}

    def _render(self, units_: tuple[Unit, ...], keys: set[tuple[int, str]]) -> None:
        paths = {u.id: u for u in units_}
        for key in keys:
            unit = paths.get(key[0])
            counts = self.rolled.get(key)
            if unit is None or not counts:
                self.blocks.pop(key, None)
                continue
            labels = unit_labels(unit)
            rule_id = key[1]
            # Series stay bounded by units x rules: a unit with nothing to count for a
            # rule exports nothing for it; otherwise pass, fail and unknown are always
            # exported (the gap recording rule subtracts them) and other results only
            # when non-zero.
            rows = [([rule_id, *labels, result], counts.get(result, 0)) for result in RESULTS
                    if result in ALWAYS or counts.get(result, 0)]
            value = ratio(counts)  # nothing to measure: no series rather than NaN
            self.blocks[key] = (Block([] if value is None else [([rule_id, *labels], value)]),
                                Block(rows))
        if self.positions_of is units_ and len(self.out) == 3:
            # The same tree: only the touched blocks' places change (each family keeps
            # the others' text and gzip members without visiting them).
            changes: list[dict[int, Block]] = [{}, {}, {}]
            for key in keys:
                position = self.positions.get(key)
                if position is None:
                    continue
                ratio_of, counts_of = self.blocks.get(key, (EMPTY_BLOCK, EMPTY_BLOCK))
                unit_rule = self.kinds[key[1]] == "unit"
                changes[0][position] = ratio_of
                changes[1][position] = EMPTY_BLOCK if unit_rule else counts_of
                changes[2][position] = counts_of if unit_rule else EMPTY_BLOCK
            self.out = [family.replaced(change) for family, change in
                        zip(cast(list[BlocksFamily], self.out), changes, strict=True)]
            return
        previous = {f.name: f for f in self.out if isinstance(f, BlocksFamily)}
        order = [(u.id, r.id, r.kind) for u in units_ for r in self.ruleset.rules]
        self.positions = {(u, r): n for n, (u, r, _) in enumerate(order)}
        self.positions_of = units_
        ratios, machine_rows, unit_rows = [], [], []
        for unit_id, rule_id, kind in order:
            pair = self.blocks.get((unit_id, rule_id))
            ratio_block, count_block = pair if pair is not None else (EMPTY_BLOCK, EMPTY_BLOCK)
            ratios.append(ratio_block)
            machine_rows.append(EMPTY_BLOCK if kind == "unit" else count_block)
            unit_rows.append(count_block if kind == "unit" else EMPTY_BLOCK)

        def family(name: str, doc: str, labels: list[str], blocks: list[Block]
                   ) -> BlocksFamily:
            return BlocksFamily(name, doc, labels, blocks, FIGURE_SEGMENT, previous.get(name))

        self.out = [
            family("kiemke_rule_compliance_ratio",
                   "pass / (pass + fail + unknown) over active machines (machine rules) or "
                   "offices (unit rules) of the unit and its descendants",
                   ["rule", *UNIT_LABELS], ratios),
            family("kiemke_rule_machines", "Active machines of the unit and its descendants "
                   "per rule result", ["rule", *UNIT_LABELS, "result"], machine_rows),
            family("kiemke_rule_units", "Offices of the unit's subtree (itself included) per "
                   "unit-rule result", ["rule", *UNIT_LABELS, "result"], unit_rows),
        ]


# Blocks per gzip segment: a change re-renders its blocks and re-compresses their
# segments only (a unit's rules for the figures, ~60 kB of text; a rule's machines of a
# few units for the failing series).
FIGURE_SEGMENT = 64
FAILING_SEGMENT = 16


def _rolled(direct: dict[tuple[int, str], dict[str, int]], chains: dict[int, list[int]]
            ) -> dict[tuple[int, str], dict[str, int]]:
    flat: Direct = {}
    for (unit_id, rule_id), counts in direct.items():
        for ancestor in chains.get(unit_id, [unit_id]):
            for result, n in counts.items():
                key = (ancestor, (rule_id, result))
                flat[key] = flat.get(key, 0) + n
    return nest(flat)


def machine_series(ruleset: RuleSet, stale_after: timedelta,
                   snapshots: SnapshotStore | None = None) -> Provider:
    """kiemke_machine_rule_failing (active machines only) and kiemke_machine_stale; with
    `snapshots` as rule_compliance."""
    failing = _FailingState(ruleset)
    stale_cache = Memo()
    lock = threading.Lock()
    loaded = [snapshots is None]

    def build_stale(stale: tuple[StaleMachine, ...]) -> RowsFamily:
        family = RowsFamily(
            "kiemke_machine_stale",
            "A machine that has not reported within the stale window; value = unix time of "
            "its last report", ["machine_id", "hostname", "unit_id"])
        for m in stale:  # stale_machines() reads machines of existing units only
            family.add([m.machine_id, m.hostname, str(m.unit_id)], m.last_seen.timestamp())
        family.text()
        return family

    def provider(conn: Connection, now: datetime) -> Iterator[Metric]:
        units_ = scrape_units(conn)
        stale = stale_machines(conn, now - stale_after)
        with lock:
            _restore_once(conn, failing, snapshots, loaded)
            family = failing.family(conn, now - stale_after, units_, stale)
            if snapshots is not None:
                snapshots.maybe_save(conn, failing.changes.marker(), failing.export)
        yield family
        yield stale_cache.get(stale, lambda: build_stale(stale))

    return provider


class _FailingState:
    """kiemke_machine_rule_failing as blocks per rule x unit (rule-major, units in tree
    order), each holding that unit's active failing machines of the rule."""

    # reason_code, not the reason text: the text moves with wording and fact values, and
    # every change of a label value starts a new series (and a new alert).
    LABELS = ("machine_id", "hostname", "unit_id", "rule", "severity", "reason_code")
    NAME = "kiemke_machine_rule_failing"

    def __init__(self, ruleset: RuleSet) -> None:
        self.rules = list(ruleset.machine_rules)
        self.rule_by_id = {r.id: r for r in self.rules}
        self.changes = _Changes()
        self.blocks: dict[tuple[str, int], Block] = {}
        self.out: BlocksFamily | None = None
        self.lines = LineFormat(self.NAME, self.LABELS)
        # Where each (rule_id, unit_id) block sits in `out`, for the tree it was laid out
        # for (not saved: a restored state lays the family out on its first scrape).
        self.positions: dict[tuple[str, int], int] = {}
        self.positions_of: tuple[Unit, ...] | None = None

    def export(self) -> dict[str, Any]:
        """What metrics_snapshot saves (a copy of the blocks: later scrapes edit them)."""
        return {"changes": self.changes.copy(), "blocks": dict(self.blocks), "out": self.out}

    def restore(self, saved: dict[str, Any]) -> None:
        self.changes, self.blocks, self.out = saved["changes"], saved["blocks"], saved["out"]

    def family(self, conn: Connection, cutoff: datetime, units_: tuple[Unit, ...],
               stale: tuple[StaleMachine, ...]) -> BlocksFamily:
        key = (units_, change_versions(conn)[MACHINE_LABELS])
        changed = self.changes.since(conn, key, stale, [r.id for r in self.rules])
        if changed.full:
            self.blocks = {}
            for rule in self.rules:
                self._read(conn, cutoff, rule, None)
        else:
            touched = self._update(conn, cutoff, changed)
            if not touched and self.out is not None:
                return self.out
            if self.out is not None and self.positions_of is units_ and \
                    all(k in self.positions for k in touched):
                # The same layout: only the touched blocks' places change.
                self.out = self.out.replaced({self.positions[k]: self.blocks.get(k, EMPTY_BLOCK)
                                              for k in touched})
                return self.out
        # Results filed under a unit that no longer exists keep its id (without a
        # kiemke_unit_info series), after the tree's units.
        order = [u.id for u in units_]
        known = set(order)
        order += sorted({u for _, u in self.blocks if u not in known})
        keys = [(rule.id, u) for rule in self.rules for u in order]
        self.positions = {k: n for n, k in enumerate(keys)}
        self.positions_of = units_
        self.out = BlocksFamily(
            self.NAME,
            "A machine failing a rule; value = unix time the failure began", self.LABELS,
            [self.blocks.get(k, EMPTY_BLOCK) for k in keys], FAILING_SEGMENT, self.out)
        return self.out

    def _update(self, conn: Connection, cutoff: datetime, changed: Dirty
                ) -> set[tuple[str, int]]:
        """Apply what changed to the blocks; return the (rule_id, unit_id) blocks touched.

        The log names the machine results that changed (and the stale set the machines
        that turned stale or active): only these machines are read again, and their lines
        are replaced in the blocks that held them (the logged blocks: a result that moves
        logs its old and its new unit) or will hold them. A block whose machines the log
        does not name is read again whole."""
        rules = self.rule_by_id
        whole: dict[str, set[int]] = {}
        for unit_id, rule_id in changed.unnamed:
            if rule_id in rules:
                whole.setdefault(rule_id, set()).add(unit_id)
        for rule_id, unit_ids in whole.items():
            # _read adds blocks of units it finds failing machines in: only these units.
            self._read(conn, cutoff, rules[rule_id], unit_ids)
        machines_of: dict[str, set[str]] = {}  # rule_id -> changed machine ids
        for machine_id, rule_id in changed.machine_rules:
            if rule_id in rules:
                machines_of.setdefault(rule_id, set()).add(machine_id)
        for machine_id in changed.moved:
            for rule_id in rules:
                machines_of.setdefault(rule_id, set()).add(machine_id)
        affected = {(r, u) for u, r in changed.blocks
                    if r in machines_of and u not in whole.get(r, ())}
        added: dict[tuple[str, int], list[tuple[list[str], float]]] = {}
        for rule_id, unit_id, row in self._failing_of(conn, cutoff, machines_of):
            if unit_id not in whole.get(rule_id, ()):
                affected.add((rule_id, unit_id))
                added.setdefault((rule_id, unit_id), []).append(row)
        for block_key in affected:
            block = _spliced(self.blocks.get(block_key), machines_of[block_key[0]],
                             added.get(block_key, []), self.lines)
            if block is None:
                self.blocks.pop(block_key, None)
            else:
                self.blocks[block_key] = block
        return affected | {(r, u) for r, units_ in whole.items() for u in units_}

    def _failing_of(self, conn: Connection, cutoff: datetime,
                    machines_of: dict[str, set[str]]
                    ) -> Iterator[tuple[str, int, tuple[list[str], float]]]:
        """(rule_id, unit_id, row) of the given machines' active failing results of the
        given rules."""
        rules = self.rule_by_id
        ids = sorted({m for found in machines_of.values() for m in found})
        for start in range(0, len(ids), 500):
            for unit_id, mid, rule_id, hostname, since in conn.execute(
                    select(rule_results.c.unit_id, rule_results.c.machine_id,
                           rule_results.c.rule_id, machines.c.hostname, rule_results.c.since)
                    .join(machines, machines.c.machine_id == rule_results.c.machine_id)
                    .where(rule_results.c.machine_id.in_(ids[start:start + 500]),
                           rule_results.c.result == "fail", machines.c.last_seen >= cutoff)):
                if mid in machines_of.get(rule_id, ()):
                    rule = rules[rule_id]
                    yield rule_id, unit_id, ([mid, hostname, str(unit_id), rule_id,
                                              rule.severity, rule.reason_code],
                                             since.timestamp())

    def _read(self, conn: Connection, cutoff: datetime, rule: Any,
              unit_ids: set[int] | None) -> None:
        """(Re)build the rule's blocks of `unit_ids` (all units when None)."""
        cond: list[ColumnElement[bool]] = [
            rule_results.c.rule_id == rule.id, rule_results.c.result == "fail",
            machines.c.last_seen >= cutoff]
        found: dict[int, list[tuple[list[str], float]]] = {}
        batches: list[list[int] | None] = [None]
        if unit_ids is not None:
            ids = sorted(unit_ids)
            batches = [ids[i:i + 500] for i in range(0, len(ids), 500)]
            for unit_id in ids:
                self.blocks.pop((rule.id, unit_id), None)
        rule_id, severity, code = rule.id, rule.severity, rule.reason_code
        for batch in batches:
            where = cond if batch is None else [*cond, rule_results.c.unit_id.in_(batch)]
            # The (rule_id, result, unit_id) index: only these units' entries are read.
            for unit_id, mid, hostname, since in conn.execute(
                    select(rule_results.c.unit_id, rule_results.c.machine_id,
                           machines.c.hostname, rule_results.c.since)
                    .join(machines, machines.c.machine_id == rule_results.c.machine_id)
                    .where(*where)):
                rows = found.get(unit_id)
                if rows is None:
                    rows = found[unit_id] = []
                rows.append(([mid, hostname, str(unit_id), rule_id, severity, code],
                             since.timestamp()))
        for unit_id, rows in found.items():
            rows.sort(key=lambda row: row[0][0])  # by machine id: the same text everywhere
            self.blocks[(rule_id, unit_id)] = Block(rows)


# A line of kiemke_machine_rule_failing: labels in name order, so the machine id comes
# after hostname and before reason_code. `="` occurs in a line only where a label value
# opens (a quote inside an escaped value is always preceded by a backslash), so these
# two marks find the machine id whatever the hostname holds.
_MACHINE_MARK = b'machine_id="'
_AFTER_MACHINE = b'",reason_code="'
_UNESCAPE = re.compile(r"\\(.)")


def _machine_of(line: bytes) -> str:
    """The (unescaped) machine id of one failing-series line."""
    start = line.index(_MACHINE_MARK) + len(_MACHINE_MARK)
    value = line[start:line.index(_AFTER_MACHINE, start)].decode("utf-8")
    if "\\" in value:
        value = _UNESCAPE.sub(lambda m: "\n" if m[1] == "n" else m[1], value)
    return value


def _spliced(block: Block | None, drop: Collection[str],
             rows: list[tuple[list[str], float]], lines: LineFormat) -> Block | None:
    """`block` without the lines of the machines in `drop`, with `rows` added, in machine
    id order (what _FailingState._read builds from all of them); None when empty."""
    kept: list[tuple[str, bytes]] = []
    if block is not None and block.text:
        for line in block.text.split(b"\n")[:-1]:  # every line ends with a newline
            machine_id = _machine_of(line)
            if machine_id not in drop:
                kept.append((machine_id, line + b"\n"))
    kept += [(row[0][0], lines.render([row]).encode("utf-8")) for row in rows]
    if not kept:
        return None
    kept.sort(key=lambda item: item[0])
    return Block.of_text(b"".join(line for _, line in kept))
