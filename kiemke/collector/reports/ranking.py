"""The ranking of a unit's child units over a period (rules/ranking.yml, seed 004).

Score of a child unit on a closed day d:
    A_d = sum_r w_r * min(1, ratio_r,d / target_r) / sum_r w_r   (rules with a ratio on d)
    C_d = min(1, coverage_d / coverage.target)                   (active / known machines)
    score_d = 100 * C_d * A_d
The period's score is the mean of score_d over the days with one. Units whose mean
number of reporting (active) machines is below min_reporting_machines are listed
apart, not ranked. Equal scores (rounded to `decimals`) share a rank.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Connection

from kiemke.collector.reports.aggregates import (
    DayScore,
    RuleStats,
    day_attainments,
    rule_stats,
    stats_for,
    unit_day_counts,
)
from kiemke.collector.reports.figures import (
    ReportError,
    RuleDef,
    closed_days,
    mean,
    no_days_error,
    resolve_unit,
    rule_defs,
    to_json,
    tree_at,
)
from kiemke.collector.reports.periods import Period
from kiemke.compliance import default_rules_dir


class RankingConfigError(ValueError):
    """rules/ranking.yml cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class RankingConfig:
    severity_weights: Mapping[str, float]
    rule_weights: Mapping[str, float]
    coverage_target: float
    min_reporting_machines: float
    decimals: int
    document: str
    path: str

    def weight(self, rule: RuleDef) -> float:
        if rule.id in self.rule_weights:
            return float(self.rule_weights[rule.id])
        return float(self.severity_weights.get(rule.severity, 1))


def load_ranking_config(rules_dir: Path | None = None) -> RankingConfig:
    path = (rules_dir or default_rules_dir()) / "ranking.yml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RankingConfigError(f"{path}: cannot be read: {exc}") from None
    try:
        weights = {str(k): float(v) for k, v in (data.get("severity_weights") or {}).items()}
        rule_weights = {str(k): float(v) for k, v in (data.get("rule_weights") or {}).items()}
        coverage = float((data.get("coverage") or {}).get("target", 0.95))
        minimum = float(data.get("min_reporting_machines", 5))
        decimals = int(data.get("decimals", 2))
    except (TypeError, ValueError, AttributeError) as exc:
        raise RankingConfigError(f"{path}: a weight, coverage.target, "
                                 f"min_reporting_machines or decimals is not a number "
                                 f"({exc})") from None
    if any(w < 0 for w in [*weights.values(), *rule_weights.values()]):
        raise RankingConfigError(f"{path}: weights cannot be negative")
    if not 0 < coverage <= 1:
        raise RankingConfigError(f"{path}: coverage.target must be above 0 and at most 1")
    return RankingConfig(weights, rule_weights, coverage, minimum, decimals,
                         str((data.get("source") or {}).get("document", "878/UBDT-TTTT")),
                         str(path))


@dataclass
class RankRow:
    unit_id: int
    name: str
    path: str
    rank: int | None  # None: not ranked (too few reporting machines or no data)
    score: float | None  # 0-100
    previous_rank: int | None
    rank_change: int | None  # previous_rank - rank: positive = moved up
    coverage: float | None  # mean active / machines
    reporting_machines: float  # mean active machines per day
    rules: dict[str, float | None]  # rule id -> mean ratio over the period
    attainment: float | None  # mean over days of A_d (0-1), before the coverage factor
    note: str = ""


@dataclass
class Ranking:
    parent_id: int
    parent_name: str
    parent_path: str
    period: Period
    lang: str
    timezone: str
    first_day: date
    last_day: date
    complete: bool
    days_reported: int
    ruleset: str
    rules: list[RuleDef]
    weights: dict[str, float]
    coverage_target: float
    min_reporting_machines: float
    rows: list[RankRow]
    previous_period: str
    generated_at: datetime
    method_source: str
    place: str = ""
    sources: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return to_json(asdict(self))


NOTES = {"vi": {"few": "không xếp hạng: ít hơn {n:g} máy báo cáo",
                "none": "không xếp hạng: không có số liệu"},
         "en": {"few": "not ranked: fewer than {n:g} reporting machines",
                "none": "not ranked: no data"}}


def _scores(config: RankingConfig, rules: Sequence[RuleDef], unit_id: int, days: Sequence[date],
            attain: Mapping[tuple[int, date], DayScore],
            counts: Mapping[tuple[int, date], tuple[int, int]],
            stats: Mapping[tuple[int, str], RuleStats]) -> dict[str, Any]:
    """One unit's score from the per-day sums the database made (aggregates.py)."""
    daily_scores, attainments, coverages, active = [], [], [], []
    for day in days:
        unit_row = counts.get((unit_id, day))
        if unit_row is not None:
            active.append(unit_row[0])
        a = attain.get((unit_id, day))
        if a is None or a.weight == 0:
            continue
        coverage = unit_row[0] / unit_row[1] if unit_row is not None and unit_row[1] else 0.0
        coverages.append(coverage)
        attainments.append(a.attainment)
        daily_scores.append(100.0 * min(1.0, coverage / config.coverage_target) * a.attainment)
    per_rule = {rule.id: stats_for(stats, unit_id, rule.id).mean for rule in rules}
    return {"score": mean(daily_scores), "attainment": mean(attainments),
            "coverage": mean(coverages),
            "reporting": sum(active) / len(days) if days else 0.0, "rules": per_rule}


def _rank(rows: list[RankRow], decimals: int) -> None:
    ranked = sorted((r for r in rows if r.score is not None and not r.note),
                    key=lambda r: (-round(r.score or 0, decimals), r.name))
    previous_score, previous_rank = None, 0
    for position, row in enumerate(ranked, start=1):
        key = round(row.score or 0, decimals)
        row.rank = previous_rank if key == previous_score else position
        previous_score, previous_rank = key, row.rank


def _rows(conn: Connection, config: RankingConfig, parent_id: int, days: Sequence[date],
          tree: Mapping[int, Any], rules: Sequence[RuleDef], lang: str) -> list[RankRow]:
    children = [u for u in tree.values() if u.parent_id == parent_id]
    ids = [c.unit_id for c in children]
    attain = day_attainments(conn, ids, days, [(r.id, config.weight(r), r.target)
                                               for r in rules])
    counts = unit_day_counts(conn, ids, days)
    stats = rule_stats(conn, ids, days[0], days[-1], worst_day=False)
    out = []
    for child in children:
        s = _scores(config, rules, child.unit_id, days, attain, counts, stats)
        note = ""
        if s["score"] is None:
            note = NOTES[lang]["none"]
        elif s["reporting"] < config.min_reporting_machines:
            note = NOTES[lang]["few"].format(n=config.min_reporting_machines)
        out.append(RankRow(child.unit_id, child.name, child.path, None,
                           None if s["score"] is None else round(s["score"], 4), None, None,
                           s["coverage"], round(s["reporting"], 2), s["rules"],
                           s["attainment"], note))
    _rank(out, config.decimals)
    return out


def build_ranking(conn: Connection, parent: str | int, period: Period, lang: str = "vi", *,
                  timezone: str, now: datetime, config: RankingConfig | None = None,
                  place: str = "") -> Ranking:
    """Rank the child units of `parent` (id, code or path) over `period`."""
    if lang not in ("vi", "en"):
        raise ReportError(f"lang {lang!r}: use vi or en", "lang")
    config = config or load_ranking_config()
    parent_id = resolve_unit(conn, parent, "parent")
    closed = closed_days(conn, period.first, period.last)
    if not closed:
        raise no_days_error(conn, period)
    days = [d for d, _ in closed]
    tree = tree_at(conn, days[-1])
    if parent_id not in tree:
        raise ReportError(f"parent {parent!r} did not exist on {days[-1].isoformat()}, the "
                          f"last day of period {period.text} in the history", "parent")
    rules = rule_defs(conn, closed[-1][1], lang)
    rows = _rows(conn, config, parent_id, days, tree, rules, lang)
    prev = period.previous()
    prev_closed = closed_days(conn, prev.first, prev.last)
    if prev_closed:
        prev_days = [d for d, _ in prev_closed]
        prev_rules = rule_defs(conn, prev_closed[-1][1], lang)
        before = {r.unit_id: r.rank for r in _rows(conn, config, parent_id, prev_days,
                                                   tree_at(conn, prev_days[-1]), prev_rules,
                                                   lang)}
        for row in rows:
            row.previous_rank = before.get(row.unit_id)
            if row.rank is not None and row.previous_rank is not None:
                row.rank_change = row.previous_rank - row.rank
    rows.sort(key=lambda r: (r.rank is None, r.rank or 0, r.name))
    me = tree[parent_id]
    return Ranking(parent_id, me.name, me.path, period, lang, timezone, days[0], days[-1],
                   days[-1] >= period.last, len(days), closed[-1][1], rules,
                   {r.id: config.weight(r) for r in rules}, config.coverage_target,
                   config.min_reporting_machines, rows, prev.text, now, config.document, place,
                   sorted({r.source for r in rules if r.source}))
