"""Rules and rule sets: what a loaded rule holds and how a RuleSet computes results.

A RuleSet compiles all rules of a kind into one generated function (kiemke.compliance.expr
explains why that is safe). Loading and validating rule files is
kiemke.compliance.rule_loader; the format is documented in docs/rules.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import expr
from .config import ComplianceConfig
from .fact_registry import FACTS
from .units import UNIT_FACTS
from .values import FactDef
from .yamlsource import SourceError

PASS, FAIL, UNKNOWN, NOT_APPLICABLE, EXEMPT = "pass", "fail", "unknown", "not_applicable", "exempt"
RESULTS = (PASS, FAIL, UNKNOWN, NOT_APPLICABLE, EXEMPT)
SEVERITIES = ("critical", "high", "medium", "low")
SEEDS = ("000", "001", "002", "003", "004")
RULE_KEYS = ("id", "title", "source", "scope", "condition", "target", "severity", "grace",
             "reason", "reason_code", "tests", "enabled", "level", "description")
# A failing result's stable machine code (the reason_code label of /metrics) when a rule
# does not name its own: the reason text changes with wording and fact values, this not.
DEFAULT_REASON_CODE = "not_met"
REASON_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


class RuleLoadError(Exception):
    """One or more errors in rule files; `errors` holds each as a SourceError."""

    def __init__(self, errors: list[SourceError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.format() for e in errors))


@dataclass(frozen=True)
class Source:
    plan: str
    document: str
    seed: str
    quote: str


@dataclass(frozen=True)
class TestCase:
    name: str
    facts: dict[str, Any]
    expect: str
    line: int


@dataclass
class Rule:
    id: str
    kind: str  # machine | unit
    title: dict[str, str]
    source: Source
    scope: str  # the expression text; "all" for machine rules that apply everywhere
    condition: str
    target: float
    severity: str
    grace_seconds: int
    reason: dict[str, str]
    enabled: bool
    level: tuple[int | None, int | None]
    tests: list[TestCase]
    path: str
    line: int
    description: str = ""
    scope_node: expr.Node | None = None
    condition_node: expr.Node | None = None
    facts_used: tuple[str, ...] = ()
    # Not part of normalised() (the fingerprint): it names the failure in metric labels
    # only and changes no result.
    reason_code: str = DEFAULT_REASON_CODE
    _fn: Callable[[Mapping[str, Any]], str] | None = field(default=None, repr=False)

    @property
    def registry(self) -> Mapping[str, FactDef]:
        return UNIT_FACTS if self.kind == "unit" else FACTS

    def normalised(self) -> dict[str, Any]:
        """The definition as the fingerprint sees it (tests and layout excluded)."""
        return {
            "id": self.id, "kind": self.kind, "title": self.title,
            "source": [self.source.plan, self.source.document, self.source.seed,
                       self.source.quote],
            "scope": expr.canonical(self.scope_node) if self.scope_node else "all",
            "condition": expr.canonical(self.condition_node) if self.condition_node else "",
            "target": self.target, "severity": self.severity, "grace": self.grace_seconds,
            "reason": self.reason, "enabled": self.enabled, "level": list(self.level),
        }

    @property
    def fingerprint(self) -> str:
        """SHA-256 of normalised(): the stored results of this rule were computed from
        the definition with this fingerprint (kiemke.collector.evaluation.rulestate)."""
        blob = json.dumps(self.normalised(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def facts_read(self, lang: str) -> tuple[str, ...]:
        """Every fact the rule's result and reason texts in `lang` read: its scope and
        condition, the placeholders of its reason (the template of `lang`, else en)."""
        template = self.reason.get(lang) or self.reason.get("en") or ""
        return tuple(dict.fromkeys((*self.facts_used, *PLACEHOLDER_RE.findall(template))))

    def result_code(self, gen: expr.CodeGen) -> str:
        """Python expression giving this rule's result string (see expr's safety notes)."""
        assert self.condition_node is not None
        cond, cond_null = gen.emit(self.condition_node)
        c = gen.tmp()
        if cond_null:
            verdict = (f"('pass' if ({c} := {cond}) is True else "
                       f"('fail' if {c} is False else 'unknown'))")
        else:
            verdict = f"('pass' if {cond} else 'fail')"
        if self.scope_node is None:
            return verdict
        scope, scope_null = gen.emit(self.scope_node)
        s = gen.tmp()
        if scope_null:
            return (f"('not_applicable' if ({s} := {scope}) is False else "
                    f"('unknown' if {s} is None else {verdict}))")
        return f"({verdict} if {scope} else 'not_applicable')"

    def evaluate(self, facts: Mapping[str, Any]) -> str:
        """Result of this one rule (slow path: tests and tools; RuleSet batches rules)."""
        if self._fn is None:
            batch = compile_rules([self])
            self._fn = lambda f: batch(f)[0]
        return self._fn(facts)

    def missing_facts(self, facts: Mapping[str, Any]) -> list[str]:
        return [name for name in self.facts_used if facts.get(name) is None]

    def render_reason(self, facts: Mapping[str, Any], lang: str = "vi") -> str:
        template = self.reason.get(lang) or self.reason.get("en") or ""
        return PLACEHOLDER_RE.sub(lambda m: show_value(facts.get(m.group(1)), lang), template)

    @property
    def scope_facts(self) -> tuple[str, ...]:
        return tuple(expr.fact_names(self.scope_node)) if self.scope_node is not None else ()

    def render_scope_reason(self, facts: Mapping[str, Any], lang: str = "vi") -> str:
        """Why the rule is not_applicable: its scope, and the values that put it out."""
        here = "; ".join(f"{name} = {show_value(facts.get(name), lang)}"
                         for name in self.scope_facts)
        if lang == "vi":
            what = "đơn vị" if self.kind == "unit" else "máy"
            return (f"Không áp dụng cho {what} này: quy tắc chỉ xét {what} thỏa «{self.scope}»; "
                    f"ở đây {here}")
        what, this = ("units", "unit") if self.kind == "unit" else ("machines", "machine")
        return (f"not applicable to this {this}: the rule covers only {what} where "
                f"«{self.scope}»; here {here}")


def show_value(v: Any, lang: str) -> str:
    """A fact value in a reason text."""
    if v is None:
        return "?"
    if isinstance(v, list):
        return ", ".join(map(str, v)) or "-"
    if isinstance(v, bool):
        return ("có" if v else "không") if lang == "vi" else ("yes" if v else "no")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def compile_rules(rules: list[Rule]) -> Callable[[Mapping[str, Any]], tuple[str, ...]]:
    """One generated function computing every rule's result for one facts mapping."""
    gen = expr.CodeGen()
    parts = [rule.result_code(gen) for rule in rules]
    body = "".join(f"        {part},\n" for part in parts)
    src = f"def _rules(_f):\n    _g = _f.get\n    return (\n{body}    )\n"
    ns = gen.namespace()
    exec(compile(src, "<kiemke rules>", "exec"), ns)  # noqa: S102 - generated, see expr docstring
    return ns["_rules"]


@dataclass
class RuleSet:
    """Loaded, checked and compiled rules plus the configuration the facts depend on."""

    rules: list[Rule]  # enabled rules, machine and unit
    disabled: list[Rule]
    config: ComplianceConfig
    files: list[Path]
    machine_rules: list[Rule] = field(init=False)
    unit_rules: list[Rule] = field(init=False)
    by_id: dict[str, Rule] = field(init=False)
    fingerprint: str = field(init=False)
    _machine_fn: Callable[[Mapping[str, Any]], tuple[str, ...]] = field(init=False, repr=False)
    _unit_fn: Callable[[Mapping[str, Any]], tuple[str, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.machine_rules = [r for r in self.rules if r.kind == "machine"]
        self.unit_rules = [r for r in self.rules if r.kind == "unit"]
        self.by_id = {r.id: r for r in self.rules + self.disabled}
        self._machine_fn = compile_rules(self.machine_rules)
        self._unit_fn = compile_rules(self.unit_rules)
        blob = json.dumps({"rules": sorted((r.normalised() for r in self.rules + self.disabled),
                                           key=lambda d: d["id"]),
                           "config": self.config.fingerprint},
                          sort_keys=True, ensure_ascii=False)
        self.fingerprint = hashlib.sha256(blob.encode("utf-8")).hexdigest()

    @property
    def all_rules(self) -> list[Rule]:
        return self.rules + self.disabled

    def machine_results(self, facts: Mapping[str, Any]) -> tuple[str, ...]:
        """Results of machine_rules, in order, without reasons (the fast path)."""
        return self._machine_fn(facts)

    def unit_results(self, facts: Mapping[str, Any]) -> tuple[str, ...]:
        return self._unit_fn(facts)
