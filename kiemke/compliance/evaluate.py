"""Evaluation of machines and units against a RuleSet, and the ratios the reports show.

Per machine and rule the result is pass, fail, unknown (a fact is missing),
not_applicable (out of scope) or exempt (a waiver). Ratios are
pass / (pass + fail + unknown); not_applicable and exempt are outside the denominator.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .rule_loader import load_rules
from .rules import (
    EXEMPT,
    FAIL,
    NOT_APPLICABLE,
    PASS,
    PLACEHOLDER_RE,
    RESULTS,
    UNKNOWN,
    Rule,
    RuleSet,
)

__all__ = ["RuleSet", "load_rules", "evaluate_machine", "evaluate_unit", "ratio", "gap",
           "count_results", "RESULTS", "ReasonMemo"]

_MISSING = {"vi": "Thiếu dữ liệu để đánh giá: {facts}",
            "en": "cannot be assessed, missing: {facts}"}
_EXEMPT = {"vi": "Được miễn trừ", "en": "exempt"}


def _reason(rule: Rule, result: str, facts: Mapping[str, Any], lang: str) -> str | None:
    if result == FAIL:
        return rule.render_reason(facts, lang)
    if result == UNKNOWN:
        missing = ", ".join(rule.missing_facts(facts)) or "?"
        return _MISSING.get(lang, _MISSING["en"]).format(facts=missing)
    if result == NOT_APPLICABLE:
        return rule.render_scope_reason(facts, lang)
    return None


def _apply(rules: list[Rule], results: tuple[str, ...], facts: Mapping[str, Any],
           exemptions: Iterable[str] | Mapping[str, str], lang: str
           ) -> dict[str, tuple[str, str | None]]:
    waivers = exemptions if isinstance(exemptions, Mapping) else dict.fromkeys(exemptions, "")
    out: dict[str, tuple[str, str | None]] = {}
    for rule, result in zip(rules, results, strict=True):
        if rule.id in waivers and result != NOT_APPLICABLE:
            out[rule.id] = (EXEMPT, waivers[rule.id] or _EXEMPT.get(lang, _EXEMPT["en"]))
        else:
            out[rule.id] = (result, _reason(rule, result, facts, lang))
    return out


def evaluate_machine(ruleset: RuleSet, facts: Mapping[str, Any], *,
                     exemptions: Iterable[str] | Mapping[str, str] = frozenset(),
                     lang: str = "vi") -> dict[str, tuple[str, str | None]]:
    """{rule id: (result, reason)} for one machine's facts.

    `exemptions` holds the ids of rules waived for this machine (or a mapping id ->
    waiver reason). A waived rule that is out of scope stays not_applicable. The
    reason is set for fail (the rule's template), unknown (the missing facts),
    not_applicable (the scope and the values that put the machine out of it) and
    exempt; it is None for pass.
    """
    results = ruleset.machine_results(facts)
    return _apply(ruleset.machine_rules, results, facts, exemptions, lang)


class ReasonMemo:
    """Reason texts of many machines' results, each distinct text rendered once.

    A reason is a function of the rule, the result and the few facts it reads (the
    template's placeholders for fail, which of the rule's facts are missing for
    unknown), so a full re-evaluation of a fleet renders a handful of distinct texts
    instead of one per machine and rule. Same texts as evaluate_machine.
    """

    def __init__(self, rules: list[Rule], lang: str = "vi") -> None:
        self.rules = rules
        self.lang = lang
        self._placeholders = [tuple(PLACEHOLDER_RE.findall(
            r.reason.get(lang) or r.reason.get("en") or "")) for r in rules]
        self._memo: dict[tuple[Any, ...], str | None] = {}
        self._scope_facts = [r.scope_facts for r in rules]

    def placeholders(self, index: int) -> tuple[str, ...]:
        """The facts the fail reason of rules[index] shows (its template's placeholders)."""
        return self._placeholders[index]

    def key(self, index: int, result: str, facts: Mapping[str, Any]) -> tuple[Any, ...]:
        """What the reason of rules[index] for `result` (fail or unknown) depends on:
        equal keys, equal texts. May hold an unhashable value (a nested list)."""
        if result == FAIL:
            # type() in the key: True and 1 are equal keys but render differently.
            # A list comprehension: measurably faster than a generator here.
            return (index, result, *[(type(v), tuple(v) if type(v) is list else v)
                                     for v in map(facts.get, self._placeholders[index])])
        if result == NOT_APPLICABLE:
            return (index, result, *[(type(v), v) for v in map(
                facts.get, self._scope_facts[index])])
        return (index, result, *[facts.get(n) is None for n in self.rules[index].facts_used])

    def reason(self, index: int, result: str, facts: Mapping[str, Any]) -> str | None:
        """Reason of rules[index] for `result` (not exempt: waivers carry their own)."""
        if result != FAIL and result != UNKNOWN and result != NOT_APPLICABLE:
            return None
        key = self.key(index, result, facts)
        try:
            return self._memo[key]
        except KeyError:
            text = self._memo[key] = _reason(self.rules[index], result, facts, self.lang)
            return text
        except TypeError:  # an unhashable fact value (a nested list): render it directly
            return _reason(self.rules[index], result, facts, self.lang)


def evaluate_unit(ruleset: RuleSet, unit_facts: Mapping[str, Any], *,
                  exemptions: Iterable[str] | Mapping[str, str] = frozenset(),
                  lang: str = "vi") -> dict[str, tuple[str, str | None]]:
    """{rule id: (result, reason)} for one unit (facts from units.unit_facts)."""
    results = ruleset.unit_results(unit_facts)
    return _apply(ruleset.unit_rules, results, unit_facts, exemptions, lang)


def count_results(results: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(RESULTS, 0)
    for r in results:
        counts[r] += 1
    return counts


def ratio(counts: Mapping[str, int]) -> float | None:
    """pass / (pass + fail + unknown); None when nothing is in the denominator."""
    denominator = counts.get(PASS, 0) + counts.get(FAIL, 0) + counts.get(UNKNOWN, 0)
    if denominator == 0:
        return None
    return counts.get(PASS, 0) / denominator


def gap(counts: Mapping[str, int], target: float) -> int:
    """How many more machines (or units) must pass to reach `target`, never negative."""
    denominator = counts.get(PASS, 0) + counts.get(FAIL, 0) + counts.get(UNKNOWN, 0)
    # Round away float noise first: 0.7 * 10 is 7.000000000000001, which must need 7.
    needed = math.ceil(round(target * denominator, 9))
    return max(needed - counts.get(PASS, 0), 0)
