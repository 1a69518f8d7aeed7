"""Match register rows to machines: by serial, then asset tag, then hostname.

A pass only matches a row to a machine when both sides are unambiguous: one candidate
machine for the row, and one row claiming the machine. A row that is ambiguous in one
pass may still match in a later pass; if it never matches, the reason says why.
Hostnames are weak (every office has a "PC-KETOAN-01"): when the row names a unit, only
machines in that unit's subtree are candidates for a hostname match.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

SERIAL, ASSET_TAG, HOSTNAME = "serial", "asset_tag", "hostname"
PASSES = ((SERIAL, "serial_key"), (ASSET_TAG, "tag_key"), (HOSTNAME, "host_key"))


@dataclass(frozen=True)
class AssetKeys:
    id: int
    line: int
    serial_key: str | None
    tag_key: str | None
    host_key: str | None
    unit_id: int | None = None


@dataclass(frozen=True)
class MachineKeys:
    machine_id: str
    unit_id: int
    hostname: str
    serial_key: str | None
    tag_key: str | None
    host_key: str | None


@dataclass
class MatchResult:
    matched: dict[int, tuple[str, str]]  # asset id -> (machine_id, matched_by)
    reasons: dict[int, str]  # asset id -> why it did not match


def match_all(assets: Iterable[AssetKeys], machines: Iterable[MachineKeys],
              subtree: Callable[[int], set[int]] = lambda uid: {uid}) -> MatchResult:
    assets = list(assets)
    machines = list(machines)
    matched: dict[int, tuple[str, str]] = {}
    reasons: dict[int, str] = {}
    taken: set[str] = set()
    for by, attr in PASSES:
        index: dict[str, list[MachineKeys]] = defaultdict(list)
        for m in machines:
            key = getattr(m, attr)
            if key and m.machine_id not in taken:
                index[key].append(m)
        claims: dict[str, list[AssetKeys]] = defaultdict(list)
        for a in assets:
            key = getattr(a, attr)
            if a.id in matched or not key:
                continue
            cands = index.get(key, [])
            if by == HOSTNAME and a.unit_id is not None:
                allowed = subtree(a.unit_id)
                cands = [m for m in cands if m.unit_id in allowed]
            if len(cands) == 1:
                claims[cands[0].machine_id].append(a)
            elif len(cands) > 1:
                names = ", ".join(sorted(f"{m.hostname} ({m.machine_id[:8]})"
                                         for m in cands)[:5])
                reasons[a.id] = (f"{by} matches {len(cands)} machines ({names}); give the "
                                 f"serial, or the unit to tell them apart")
            elif a.id not in reasons:
                reasons[a.id] = "no reporting machine has this serial, asset tag or hostname"
        for machine_id, claimants in claims.items():
            if len(claimants) == 1:
                matched[claimants[0].id] = (machine_id, by)
                taken.add(machine_id)
                reasons.pop(claimants[0].id, None)
                continue
            lines = ", ".join(str(a.line) for a in sorted(claimants, key=lambda a: a.line))
            for a in claimants:
                reasons[a.id] = (f"lines {lines} all match the same machine by {by}; "
                                 f"keep one row per machine or add serials")
    return MatchResult(matched, {k: v for k, v in reasons.items() if k not in matched})
