"""Rule files (rules/*.yml): loading and validation into a RuleSet.

Format and every field are documented in docs/rules.md. All errors carry the file, the
line and the rule id, and loading goes on to the next rule so one run shows them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from . import expr
from .config import CONFIG_FILES, ComplianceConfig, load_config
from .fact_registry import FACTS
from .rules import (
    DEFAULT_REASON_CODE,
    FAIL,
    NOT_APPLICABLE,
    PASS,
    PLACEHOLDER_RE,
    REASON_CODE_RE,
    RULE_KEYS,
    SEEDS,
    SEVERITIES,
    UNKNOWN,
    Rule,
    RuleLoadError,
    RuleSet,
    Source,
    TestCase,
)
from .units import UNIT_FACTS
from .values import BOOL, FactDef, coerce
from .yamlsource import LineDict, LineList, SourceError, expression_line, load_yaml

_ID_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_DURATION_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# --------------------------------------------------------------------------- loading

def parse_duration(value: Any) -> int:
    """'7d', '12h', '30m', '2w', '45s' or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 7d")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return int(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return int(float(m.group(1)) * _DURATION_SECONDS[m.group(2)])
    raise ValueError(f"expected a duration like 7d, 12h, 30m or 2w, got {value!r}")


class _FileLoader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[SourceError] = []

    def err(self, line: int | None, message: str, rule_id: str | None = None) -> None:
        self.errors.append(SourceError(self.path, line, message, rule_id))

    def load(self) -> list[Rule]:
        try:
            data = load_yaml(self.path)
        except SourceError as exc:
            self.errors.append(exc)
            return []
        if not isinstance(data, LineDict) or "rules" not in data:
            self.err(1, "a rule file starts with 'rules:' followed by a list of rules")
            return []
        for key in data:
            if key not in ("rules", "description"):
                self.err(data.line_of(key), f"unknown top-level key '{key}' "
                                            "(expected rules: and description:)")
        items = data["rules"]
        if not isinstance(items, LineList):
            self.err(data.line_of("rules"),
                     "'rules' must be a list (each rule starts with '- id:')")
            return []
        rules = []
        for i, item in enumerate(items):
            rule = self.rule(item, items.line_of(i))
            if rule is not None:
                rules.append(rule)
        return rules

    def text(self, m: LineDict, key: str, rid: str | None, what: str) -> str | None:
        value = m.get(key)
        if not isinstance(value, str) or not value.strip():
            self.err(m.line_of(key) if key in m else m.line,
                     f"'{key}' is missing or empty: add {what}", rid)
            return None
        return value.strip()

    def pair(self, m: LineDict, key: str, rid: str | None, what: str) -> dict[str, str] | None:
        value = m.get(key)
        if not isinstance(value, LineDict):
            self.err(m.line_of(key) if key in m else m.line,
                     f"'{key}' must have vi: and en: texts ({what})", rid)
            return None
        out = {}
        for lang in ("vi", "en"):
            language = "Vietnamese" if lang == "vi" else "English"
            t = self.text(value, lang, rid, f"the {what} in {language}")
            if t is None:
                return None
            out[lang] = t
        for extra in value:
            if extra not in ("vi", "en"):
                self.err(value.line_of(extra), f"'{key}' has unknown language '{extra}' "
                                               "(use vi and en)", rid)
        return out

    def expression(self, m: LineDict, key: str, rid: str | None, registry: Mapping[str, FactDef]
                   ) -> expr.Node | None:
        text = m.get(key)
        if isinstance(text, bool):
            text = "true" if text else "false"
        if not isinstance(text, str) or not text.strip():
            self.err(m.line_of(key) if key in m else m.line,
                     f"'{key}' is missing: write an expression such as "
                     "antivirus.approved_active", rid)
            return None
        try:
            return expr.compile_expr(text, registry, want=BOOL)
        except expr.ExprError as exc:
            line = expression_line(m, key, exc.pos)
            col = exc.pos + 1
            self.err(line, f"{key}, at character {col}: {exc.message}", rid)
            return None

    def rule(self, m: Any, line: int) -> Rule | None:
        if not isinstance(m, LineDict):
            self.err(line, "each rule must be a mapping starting with 'id:'")
            return None
        rid_raw = m.get("id")
        rid = rid_raw if isinstance(rid_raw, str) else None
        if rid is None:
            self.err(m.line, "'id' is missing: give the rule a kebab-case id such as av-licensed")
        elif not _ID_RE.match(rid):
            self.err(m.line_of("id"), f"id '{rid}' must be kebab-case: lower-case letters, "
                                      "digits and single dashes, e.g. av-licensed", rid)
            rid = None
        before = len(self.errors)
        for key in m:
            if key not in RULE_KEYS:
                hint = expr.suggest(str(key), dict.fromkeys(RULE_KEYS))
                self.err(m.line_of(key), f"unknown key '{key}'{hint}", rid)
        title = self.pair(m, "title", rid, "the rule title")
        reason = self.pair(m, "reason", rid, "why a machine fails")
        source = self.source(m, rid)
        kind = "unit" if m.get("scope") == "unit" else "machine"
        registry = UNIT_FACTS if kind == "unit" else FACTS
        level = self.level(m, rid, kind)
        scope_node = None
        scope_text = "all"
        if kind == "unit":
            conds = []
            if level[0] is not None:
                conds.append(f"unit.level >= {level[0]}")
            if level[1] is not None:
                conds.append(f"unit.level <= {level[1]}")
            if conds:
                scope_text = " and ".join(conds)
                scope_node = expr.compile_expr(scope_text, UNIT_FACTS)
        elif m.get("scope") in (None, "all"):
            if "scope" not in m:
                self.err(m.line, "'scope' is missing: write all, unit, or an expression "
                                 "choosing the machines, e.g. network.networked", rid)
        else:
            scope_node = self.expression(m, "scope", rid, registry)
            scope_text = str(m.get("scope"))
        condition_node = self.expression(m, "condition", rid, registry)
        target = m.get("target", 1.0)
        if isinstance(target, bool) or not isinstance(target, (int, float)) \
                or not 0 <= target <= 1:
            self.err(m.line_of("target"), f"target must be a ratio from 0 to 1 (1.0 = 100%), "
                                          f"got {target!r}", rid)
            target = 1.0
        severity = m.get("severity")
        if severity not in SEVERITIES:
            self.err(m.line_of("severity") if "severity" in m else m.line,
                     f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}", rid)
        grace = 0
        try:
            grace = parse_duration(m.get("grace", 0))
        except ValueError as exc:
            self.err(m.line_of("grace"), f"grace: {exc}", rid)
        enabled = m.get("enabled", True)
        if not isinstance(enabled, bool):
            self.err(m.line_of("enabled"), "enabled must be true or false", rid)
        if reason is not None:
            for lang, template in reason.items():
                for name in PLACEHOLDER_RE.findall(template):
                    if name not in registry:
                        self.err(m.line_of("reason"),
                                 f"reason ({lang}) names unknown fact '{{{name}}}'"
                                 f"{expr.suggest(name, registry)}", rid)
        reason_code = m.get("reason_code", DEFAULT_REASON_CODE)
        if not isinstance(reason_code, str) or not REASON_CODE_RE.match(reason_code):
            self.err(m.line_of("reason_code"), f"reason_code must be a short code of lower-case "
                     f"letters, digits and underscores starting with a letter (at most 48), "
                     f"e.g. no_active_licensed_av; got {reason_code!r}", rid)
        tests = self.tests(m, rid, registry)
        if len(self.errors) > before or rid is None:
            return None
        assert title and reason and source and condition_node is not None
        used = expr.fact_names(condition_node)
        if scope_node is not None:
            used = list(dict.fromkeys(expr.fact_names(scope_node) + used))
        return Rule(rid, kind, title, source, scope_text, str(m["condition"]), float(target),
                    str(severity), grace, reason, bool(enabled), level, tests, str(self.path),
                    m.line, str(m.get("description", "")), scope_node, condition_node,
                    tuple(used), str(reason_code))

    def source(self, m: LineDict, rid: str | None) -> Source | None:
        src = m.get("source")
        if not isinstance(src, LineDict):
            self.err(m.line_of("source") if "source" in m else m.line,
                     "'source' must name the plan it comes from: plan, document, seed, quote",
                     rid)
            return None
        plan = self.text(src, "plan", rid, "the plan's name")
        document = self.text(src, "document", rid, "the document number, e.g. 251/KH-LĐLĐ")
        quote = self.text(src, "quote", rid, "the target as written in the plan (Vietnamese)")
        seed = src.get("seed")
        if isinstance(seed, int) and not isinstance(seed, bool):
            self.err(src.line_of("seed"), f"seed must be quoted text, e.g. seed: \"{seed:03d}\"",
                     rid)
            return None
        if seed not in SEEDS:
            self.err(src.line_of("seed") if "seed" in src else src.line,
                     f"seed must be one of {', '.join(SEEDS)} (the plan's file in seeds/)", rid)
            return None
        if plan is None or document is None or quote is None:
            return None
        return Source(plan, document, seed, quote)

    def level(self, m: LineDict, rid: str | None, kind: str) -> tuple[int | None, int | None]:
        if "level" not in m:
            return (None, None)
        if kind != "unit":
            self.err(m.line_of("level"), "level applies only to unit rules (scope: unit)", rid)
            return (None, None)
        lv = m["level"]
        if not isinstance(lv, LineDict) or not set(lv) <= {"min", "max"} or not lv:
            self.err(m.line_of("level"), "level must be {min: N} and/or {max: N} "
                                         "(0 = the root unit)", rid)
            return (None, None)
        out: list[int | None] = []
        for key in ("min", "max"):
            v = lv.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                self.err(lv.line_of(key), f"level {key} must be a whole number ≥ 0", rid)
                v = None
            out.append(v)
        return (out[0], out[1])

    def tests(self, m: LineDict, rid: str | None, registry: Mapping[str, FactDef]
              ) -> list[TestCase]:
        items = m.get("tests")
        if items is None:
            self.err(m.line, "'tests' is missing: give at least one passing and one failing "
                             "example", rid)
            return []
        if not isinstance(items, LineList):
            self.err(m.line_of("tests"), "'tests' must be a list of {name, facts, expect}", rid)
            return []
        out = []
        for i, t in enumerate(items):
            line = items.line_of(i)
            if not isinstance(t, LineDict):
                self.err(line, "each test must be a mapping with name, facts and expect", rid)
                continue
            given = t.get("name")
            name = given if isinstance(given, str) else f"test {i + 1}"
            expect = t.get("expect")
            if expect not in (PASS, FAIL, UNKNOWN, NOT_APPLICABLE):
                self.err(t.line_of("expect") if "expect" in t else t.line,
                         f"test '{name}': expect must be pass, fail, unknown or "
                         f"not_applicable, got {expect!r}", rid)
                continue
            raw = t.get("facts", LineDict())
            if not isinstance(raw, LineDict):
                self.err(t.line_of("facts"), f"test '{name}': facts must be a mapping "
                                             "of fact name: value", rid)
                continue
            facts: dict[str, Any] = {}
            for key, value in raw.items():
                fact = registry.get(key)
                if fact is None:
                    self.err(raw.line_of(key), f"test '{name}': unknown fact '{key}'"
                                               f"{expr.suggest(str(key), registry)}", rid)
                    continue
                try:
                    coerced = coerce(value, fact.type)
                except ValueError as exc:
                    self.err(raw.line_of(key), f"test '{name}': fact '{key}' is {fact.type}: "
                                               f"{exc}", rid)
                    continue
                if coerced is not None:
                    facts[key] = coerced
            out.append(TestCase(name, facts, str(expect), line))
        return out


def rule_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """Split the given files/directories into (rule files, config directories)."""
    files: list[Path] = []
    dirs: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            dirs.append(p)
            files.extend(f for f in sorted(p.glob("*.yml")) + sorted(p.glob("*.yaml"))
                         if f.name not in CONFIG_FILES)
        elif p.name in CONFIG_FILES:
            dirs.append(p.parent)
        else:
            files.append(p)
    return files, dirs


def load_rules(paths: Iterable[str | Path], *, config: ComplianceConfig | None = None
               ) -> RuleSet:
    """Load rule files and directories; raise RuleLoadError listing every problem.

    A directory also supplies approved.yml and depreciation.yml unless `config` is given.
    """
    files, dirs = rule_files(paths)
    errors: list[SourceError] = []
    if config is None:
        try:
            config = load_config(dirs[0] if dirs else None)
        except SourceError as exc:
            errors.append(exc)
            config = load_config(None)
    if not files:
        errors.append(SourceError(", ".join(map(str, paths)) or ".", None,
                                  "no rule files (*.yml) found"))
    rules: list[Rule] = []
    seen: dict[str, Rule] = {}
    for path in files:
        loader = _FileLoader(path)
        for rule in loader.load():
            other = seen.get(rule.id)
            if other is not None:
                loader.err(rule.line, f"duplicate rule id (also in {other.path} line "
                                      f"{other.line})", rule.id)
                continue
            seen[rule.id] = rule
            rules.append(rule)
        errors.extend(loader.errors)
    if errors:
        raise RuleLoadError(errors)
    return RuleSet([r for r in rules if r.enabled], [r for r in rules if not r.enabled],
                   config, files)


def default_rules_dir() -> Path:
    """The default rule set shipped in the package (kiemke/rules, package data).

    In a source checkout kiemke/rules is a symlink to the top-level rules/, so both are
    the same files; in an installed wheel it is a plain directory of site-packages.
    Operators who change rules point KIEMKE_RULES_DIR at their own copy.
    """
    return Path(str(resources.files("kiemke") / "rules"))
