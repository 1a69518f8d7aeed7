"""Rule files: every load error names the file, the line and the rule id."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import REPO

from kiemke.compliance import RuleLoadError, load_rules, parse_duration

GOOD_RULE = """\
  - id: av-licensed
    title: {vi: "Có phần mềm diệt virus có bản quyền", en: "Licensed antivirus"}
    source:
      plan: "LĐLĐ tỉnh Bắc Giang"
      document: "Kế hoạch số 251/KH-LĐLĐ"
      seed: "001"
      quote: "100% máy tính kết nối mạng được cài đặt phần mềm diệt virus có bản quyền"
    scope: network.networked
    condition: antivirus.licensed
    target: 1.0
    severity: critical
    grace: 7d
    reason: {vi: "Không có bản quyền ({antivirus.names})", en: "not licensed"}
    tests:
      - {name: ok, facts: {network.networked: true, antivirus.licensed: true}, expect: pass}
"""


def write(tmp_path: Path, body: str, name: str = "antivirus.yml") -> Path:
    path = tmp_path / name
    path.write_text("rules:\n" + body, encoding="utf-8")
    return path


def errors_of(*paths: Path) -> list[str]:
    with pytest.raises(RuleLoadError) as info:
        load_rules(paths)
    return [e.format() for e in info.value.errors]


def only_error(tmp_path: Path, body: str) -> str:
    path = write(tmp_path, body)
    errs = errors_of(path)
    assert len(errs) == 1, errs
    return errs[0]


def test_good_rule_loads_with_all_fields(tmp_path: Path) -> None:
    rs = load_rules([write(tmp_path, GOOD_RULE)])
    (rule,) = rs.machine_rules
    assert rule.id == "av-licensed"
    assert rule.grace_seconds == 7 * 86400
    assert rule.source.seed == "001" and rule.source.document == "Kế hoạch số 251/KH-LĐLĐ"
    assert rule.title["vi"] == "Có phần mềm diệt virus có bản quyền"
    assert rule.line == 2
    assert rule.facts_used == ("network.networked", "antivirus.licensed")
    assert rule.tests[0].facts == {"network.networked": True, "antivirus.licensed": True}


def test_unknown_fact_in_condition(tmp_path: Path) -> None:
    err = only_error(tmp_path, GOOD_RULE.replace("condition: antivirus.licensed",
                                                 "condition: antivirus.licenced"))
    assert err == (f"{tmp_path}/antivirus.yml line 10, rule av-licensed: condition, at "
                   "character 1: unknown fact 'antivirus.licenced' (did you mean "
                   "'antivirus.licensed'?)")


def test_type_error_in_scope(tmp_path: Path) -> None:
    err = only_error(tmp_path, GOOD_RULE.replace("scope: network.networked",
                                                 'scope: hardware.memory_gb > "4"'))
    assert "antivirus.yml line 9, rule av-licensed: scope" in err
    assert "cannot compare number with string" in err


def test_expression_in_literal_block_reports_the_inner_line(tmp_path: Path) -> None:
    body = GOOD_RULE.replace("condition: antivirus.licensed",
                             "condition: |\n      antivirus.licensed\n      and bogus.fact")
    err = only_error(tmp_path, body)
    assert err.startswith(f"{tmp_path}/antivirus.yml line 12, rule av-licensed:")
    assert "unknown fact 'bogus.fact'" in err


@pytest.mark.parametrize(("old", "new", "line", "message"), [
    ("severity: critical", "severity: urgent", 12,
     "severity must be one of critical, high, medium, low, got 'urgent'"),
    ("target: 1.0", "target: 100", 11, "target must be a ratio from 0 to 1"),
    ("grace: 7d", "grace: a week", 13, "grace: expected a duration like 7d"),
    ('seed: "001"', "seed: 001", 7, 'seed must be quoted text, e.g. seed: "001"'),
    ('seed: "001"', 'seed: "009"', 7, "seed must be one of 000, 001, 002, 003, 004"),
    ("  - id: av-licensed", "  - id: AV_Licensed", 2, "must be kebab-case"),
    ("    grace: 7d", "    grace: 7d\n    condtion: x", 14,
     "unknown key 'condtion' (did you mean 'condition'?)"),
    ('reason: {vi: "Không có bản quyền ({antivirus.names})"',
     'reason: {vi: "Không có bản quyền ({antivirus.nams})"', 14,
     "names unknown fact '{antivirus.nams}' (did you mean 'antivirus.names'?)"),
    ("expect: pass", "expect: passes", 16, "expect must be pass, fail, unknown or not_applicable"),
    ("antivirus.licensed: true}", "antivirus.licensed: \"yes\"}", 16,
     "fact 'antivirus.licensed' is bool: expected true or false"),
    ("facts: {network.networked: true,", "facts: {network.networkd: true,", 16,
     "unknown fact 'network.networkd'"),
    ('en: "Licensed antivirus"}', 'de: "Lizenz"}', 3, "'en' is missing or empty"),
    ("    grace: 7d\n", "    grace: 7d\n    reason_code: Not-Licensed\n", 14,
     "reason_code must be a short code of lower-case letters, digits and underscores"),
    ("    grace: 7d\n", "    grace: 7d\n    reason_code: [a, b]\n", 14,
     "got ['a', 'b']"),
])
def test_field_errors_carry_file_line_and_rule(tmp_path: Path, old: str, new: str, line: int,
                                               message: str) -> None:
    assert old in GOOD_RULE
    err = only_error(tmp_path, GOOD_RULE.replace(old, new))
    rule_id = "AV_Licensed" if "AV_Licensed" in new else "av-licensed"
    assert f"antivirus.yml line {line}" in err
    if rule_id == "av-licensed":
        assert ", rule av-licensed:" in err
    assert message in err


def test_missing_fields_are_all_reported(tmp_path: Path) -> None:
    errs = errors_of(write(tmp_path, "  - id: bare-rule\n"))
    joined = "\n".join(errs)
    for piece in ("'title' must have vi: and en:", "'source' must name the plan",
                  "'scope' is missing", "'condition' is missing", "severity must be one of",
                  "'tests' is missing"):
        assert piece in joined
    assert all("line 2, rule bare-rule" in e for e in errs)


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    a = write(tmp_path, GOOD_RULE, "a.yml")
    b = write(tmp_path, GOOD_RULE, "b.yml")
    (err,) = errors_of(a, b)
    assert err == f"{b} line 2, rule av-licensed: duplicate rule id (also in {a} line 2)"


def test_duplicate_yaml_key_and_syntax_error(tmp_path: Path) -> None:
    dup = GOOD_RULE.replace("    target: 1.0\n", "    target: 1.0\n    target: 0.5\n")
    err = only_error(tmp_path, dup)
    assert "line 12" in err and "key 'target' appears twice (first on line 11)" in err
    broken = write(tmp_path, GOOD_RULE.replace("scope: network.networked", "scope: [oops"),
                   "broken.yml")
    (err,) = errors_of(broken)
    assert err.startswith(f"{broken} line ") and "YAML syntax error" in err


def test_file_without_rules_key_and_no_files(tmp_path: Path) -> None:
    path = tmp_path / "x.yml"
    path.write_text("- id: a\n", encoding="utf-8")
    (err,) = errors_of(path)
    assert err == f"{path} line 1: a rule file starts with 'rules:' followed by a list of rules"
    empty = tmp_path / "empty"
    empty.mkdir()
    (err,) = errors_of(empty)
    assert "no rule files (*.yml) found" in err


def test_unit_rule_level_and_unit_facts(tmp_path: Path) -> None:
    unit_rule = textwrap.dedent("""\
      - id: unit-has-printer
        title: {vi: "Cơ quan có máy in", en: "has a printer"}
        source: {plan: "Tổng LĐLĐ", document: "452/QĐ-TLĐ", seed: "000", quote: "có máy in"}
        scope: unit
        level: {max: 1}
        condition: unit.printers >= 1
        severity: medium
        reason: {vi: "Không có máy in", en: "no printer"}
        tests:
          - {name: ok, facts: {unit.level: 0, unit.printers: 2}, expect: pass}
    """)
    rs = load_rules([write(tmp_path, textwrap.indent(unit_rule, "  "))])
    (rule,) = rs.unit_rules
    assert rule.kind == "unit" and rule.level == (None, 1)
    assert rs.unit_results({"unit.level": 2, "unit.printers": 0}) == ("not_applicable",)
    assert rs.unit_results({"unit.level": 1, "unit.printers": 0}) == ("fail",)
    # machine facts are not unit facts
    bad = unit_rule.replace("unit.printers >= 1", "printers.physical_count >= 1")
    (err,) = errors_of(write(tmp_path, textwrap.indent(bad, "  "), "u.yml"))
    assert "rule unit-has-printer: condition" in err and "unknown fact" in err


def test_reason_code_named_or_default(tmp_path: Path) -> None:
    """The code labels failures in /metrics; it changes no result, so not the fingerprint."""
    default = load_rules([write(tmp_path, GOOD_RULE)])
    assert default.machine_rules[0].reason_code == "not_met"
    named = load_rules([write(tmp_path, GOOD_RULE.replace(
        "    grace: 7d\n", "    grace: 7d\n    reason_code: av_not_licensed\n"))])
    assert named.machine_rules[0].reason_code == "av_not_licensed"
    assert named.fingerprint == default.fingerprint


def test_bundled_rules_name_distinct_reason_codes() -> None:
    rules = load_rules([REPO / "rules"]).rules
    codes = [r.reason_code for r in rules]
    assert "not_met" not in codes and len(set(codes)) == len(codes), codes


def test_fingerprint_follows_definitions_not_layout(tmp_path: Path) -> None:
    base = load_rules([write(tmp_path, GOOD_RULE)]).fingerprint
    spaced = GOOD_RULE.replace("condition: antivirus.licensed",
                               "condition: ( antivirus.licensed )")
    with_tests = GOOD_RULE + "      - {name: two, facts: {network.networked: false}, " \
                             "expect: not_applicable}\n"
    assert load_rules([write(tmp_path, spaced)]).fingerprint == base
    assert load_rules([write(tmp_path, with_tests)]).fingerprint == base
    changed = GOOD_RULE.replace("target: 1.0", "target: 0.9")
    assert load_rules([write(tmp_path, changed)]).fingerprint != base


def test_parse_duration() -> None:
    assert parse_duration("7d") == 604800
    assert parse_duration("12h") == 43200
    assert parse_duration("30m") == 1800
    assert parse_duration("2w") == 1209600
    assert parse_duration(0) == 0
    assert parse_duration("90") == 90
    with pytest.raises(ValueError):
        parse_duration("-1d")
