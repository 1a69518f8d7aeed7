"""The default rule set in rules/: its own test cases pass, and a broken copy fails."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import missing_component

from kiemke.compliance import load_rules
from kiemke.compliance.cli import add_rules_commands, rules_check, rules_test
from kiemke.compliance.config import load_config, load_depreciation
from kiemke.compliance.yamlsource import SourceError

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "rules"
SEEDS = REPO.parent / "shared" / "seeds"  # ../shared/seeds next to the checkout


def shipped_counts() -> tuple[int, int]:
    """(rules, rule files) in rules/, counted from the YAML text itself: a file holds
    rules when it has a top-level `rules:` list, and each `- id:` item is one rule."""
    files = [p for p in sorted(RULES.glob("*.yml"))
             if re.search(r"^rules:", p.read_text("utf-8"), re.MULTILINE)]
    rules = sum(len(re.findall(r"^  - id: ", p.read_text("utf-8"), re.MULTILINE))
                for p in files)
    return rules, len(files)


def run(fn, paths) -> tuple[int, str, str]:  # noqa: ANN001
    out, err = io.StringIO(), io.StringIO()
    code = fn(paths, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_default_rules_check_and_own_tests_pass() -> None:
    rules, files = shipped_counts()
    assert rules >= 13 and files >= 7
    code, out, err = run(rules_check, [RULES])
    assert code == 0, err
    assert re.match(rf"OK: {rules} rules in {files} files; fingerprint [0-9a-f]{{12}}", out)
    code, out, err = run(rules_test, [RULES])
    assert code == 0, err
    assert re.match(rf"OK: \d+ test cases in {rules} rules passed", out)


def test_broken_copy_fails_with_expected_and_got(tmp_path: Path) -> None:
    shutil.copytree(RULES, tmp_path / "rules")
    av = tmp_path / "rules" / "antivirus.yml"
    text = av.read_text(encoding="utf-8")
    # Rule now ignores failed queries: the "query failed" case is no longer unknown.
    av.write_text(text.replace("condition: antivirus.approved_active",
                               "condition: coalesce(antivirus.approved_active, false)"),
                  encoding="utf-8")
    code, out, err = run(rules_test, [tmp_path / "rules"])
    assert code == 1
    assert "rule av-approved-active: test 'antivirus query failed': expected unknown, got fail" \
        in err
    assert "facts: antivirus.query_failed=true, network.networked=true" in err
    assert "FAILED: 1 of" in err
    av.write_text(text.replace("condition: antivirus.approved_active",
                               "condition: antivirus.aproved_active"), encoding="utf-8")
    code, out, err = run(rules_check, [tmp_path / "rules"])
    assert code == 1
    assert re.search(r"antivirus\.yml line \d+, rule av-approved-active: condition, at "
                     r"character 1: unknown fact 'antivirus.aproved_active' \(did you mean "
                     r"'antivirus.approved_active'\?\)", err)


def test_module_entry_point_runs_standalone() -> None:
    proc = subprocess.run([sys.executable, "-m", "kiemke.compliance", "check", str(RULES)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rules, files = shipped_counts()
    assert proc.stdout.startswith(f"OK: {rules} rules in {files} files")


def test_add_rules_commands_hooks_into_argparse() -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="kiemke-collector")
    add_rules_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["rules", "test", str(RULES)])
    assert args.func(args) == 0
    args = parser.parse_args(["rules", "check", str(RULES / "units.yml")])
    assert args.rules_command == "check" and args.func(args) == 0


def test_every_rule_cites_a_plan_and_quotes_it_verbatim() -> None:
    rs = load_rules([RULES])
    for rule in rs.all_rules:
        assert rule.source.seed in {"000", "001", "002", "003", "004"}, rule.id
        assert rule.tests and {t.expect for t in rule.tests} >= {"pass", "fail"}, rule.id
    if not SEEDS.is_dir():
        missing_component(f"the plan texts are not in {SEEDS} (../shared/seeds next to the "
                          "checkout)")
    for rule in rs.all_rules:
        (seed,) = SEEDS.glob(f"{rule.source.seed}_*.txt")
        # The articles use no-break spaces and doubled spaces: compare words, not spacing.
        text = " ".join(seed.read_text(encoding="utf-8").split())
        assert " ".join(rule.source.quote.split()) in text, rule.id


def test_default_config_values() -> None:
    cfg = load_config(RULES)
    assert cfg.min_memory_gb == 4 and cfg.min_cpu_cores == 2
    assert cfg.approved_antivirus("Kaspersky Endpoint Security for Windows").licence == "reported"
    assert cfg.approved_antivirus("Windows Defender").licence == "bundled"
    assert cfg.approved_antivirus("Avast Free Antivirus") is None
    assert cfg.approved_monitoring("Wazuh Agent") is not None
    dep = cfg.depreciation
    assert dep.document == "Thông tư 23/2023/TT-BTC"
    assert dep.categories["desktop_computer"].years == 5
    assert dep.categories["laptop_computer"].rate == pytest.approx(0.20)


def test_switching_regulation_is_one_line(tmp_path: Path) -> None:
    text = (RULES / "depreciation.yml").read_text(encoding="utf-8")
    newer = text.replace("regulations:\n", "regulations:\n  tt-moi:\n"
                         "    document: \"Thông tư mới\"\n    start: next_month\n    categories:\n"
                         "      desktop_computer: {years: 4, rate: 0.25}\n"
                         "      laptop_computer: {years: 4, rate: 0.25}\n", 1)
    path = tmp_path / "depreciation.yml"
    path.write_text(newer, encoding="utf-8")
    assert load_depreciation(path).document == "Thông tư 23/2023/TT-BTC"
    path.write_text(newer.replace("active: tt-23-2023", "active: tt-moi"), encoding="utf-8")
    switched = load_depreciation(path)
    assert switched.document == "Thông tư mới" and switched.categories["laptop_computer"].years == 4
    path.write_text(newer.replace("active: tt-23-2023", "active: tt-cu"), encoding="utf-8")
    with pytest.raises(SourceError, match=r"line 3: active regulation 'tt-cu' is not under"):
        load_depreciation(path)
    path.write_text(text.replace("years: 5, rate: 0.20}\n  ", "years: 5, rate: 0.25}\n  ", 1),
                    encoding="utf-8")
    with pytest.raises(SourceError, match="rate 0.25 does not match 5 years"):
        load_depreciation(path)


def test_approved_yml_errors_name_the_line(tmp_path: Path) -> None:
    text = (RULES / "approved.yml").read_text(encoding="utf-8")
    bad = text.replace("licence: bundled", "licence: maybe")
    (tmp_path / "approved.yml").write_text(bad, encoding="utf-8")
    line = next(i for i, ln in enumerate(bad.splitlines(), 1) if "licence: maybe" in ln)
    with pytest.raises(SourceError) as info:
        load_config(tmp_path)
    assert info.value.line == line
    assert "licence must be one of reported, bundled, free" in str(info.value)


def test_docs_list_every_fact_and_function() -> None:
    from kiemke.compliance.expr import FUNCTIONS
    from kiemke.compliance.facts import FACTS
    from kiemke.compliance.units import UNIT_FACTS

    doc = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    for name, fact in {**FACTS, **UNIT_FACTS}.items():
        assert f"| `{name}` | {fact.type} |" in doc, name
    for fn in FUNCTIONS.values():
        assert fn.signature in doc
