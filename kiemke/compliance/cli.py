"""`rules check` and `rules test`: validate rule files and run their own test cases.

Used by `kiemke-collector rules check|test` (via add_rules_commands) and standalone as
`python -m kiemke.compliance check|test [paths]`. Exit code 0 on success, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .rule_loader import default_rules_dir, load_rules
from .rules import RuleLoadError, RuleSet


def _load(paths: Sequence[str | Path], err: TextIO) -> RuleSet | None:
    try:
        return load_rules(paths)
    except RuleLoadError as exc:
        for e in exc.errors:
            print(f"ERROR: {e.format()}", file=err)
        n = len(exc.errors)
        print(f"{n} error{'s' if n != 1 else ''}: fix the lines above and run the check again.",
              file=err)
        return None


def rules_check(paths: Sequence[str | Path], *, out: TextIO | None = None,
                err: TextIO | None = None) -> int:
    """Load and type-check every rule; print 'OK: N rules in M files' or each error."""
    out, err = out or sys.stdout, err or sys.stderr
    ruleset = _load(paths, err)
    if ruleset is None:
        return 1
    n, files = len(ruleset.all_rules), len(ruleset.files)
    extra = f" ({len(ruleset.disabled)} disabled)" if ruleset.disabled else ""
    print(f"OK: {n} rule{'s' if n != 1 else ''} in {files} file{'s' if files != 1 else ''}"
          f"{extra}; fingerprint {ruleset.fingerprint[:12]}", file=out)
    return 0


def _show(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def rules_test(paths: Sequence[str | Path], *, out: TextIO | None = None,
               err: TextIO | None = None) -> int:
    """Run every rule's test cases (like `promtool test rules`); print each failure."""
    out, err = out or sys.stdout, err or sys.stderr
    ruleset = _load(paths, err)
    if ruleset is None:
        return 1
    total = failed = 0
    for rule in ruleset.all_rules:
        for case in rule.tests:
            total += 1
            got = rule.evaluate(case.facts)
            if got == case.expect:
                continue
            failed += 1
            print(f"FAIL: {rule.path} line {case.line}, rule {rule.id}: test '{case.name}': "
                  f"expected {case.expect}, got {got}", file=err)
            shown = ", ".join(f"{k}={_show(v)}" for k, v in sorted(case.facts.items()))
            print(f"  facts: {shown or '(none)'}", file=err)
            missing = rule.missing_facts(case.facts)
            if missing:
                print(f"  missing (unknown): {', '.join(missing)}", file=err)
            print(f"  scope: {rule.scope}", file=err)
            print(f"  condition: {' '.join(rule.condition.split())}", file=err)
    if failed:
        print(f"FAILED: {failed} of {total} test cases", file=err)
        return 1
    print(f"OK: {total} test cases in {len(ruleset.all_rules)} rules passed", file=out)
    return 0


def _run(args: argparse.Namespace) -> int:
    paths = args.paths or [default_rules_dir()]
    return rules_check(paths) if args.rules_command == "check" else rules_test(paths)


def add_rules_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add `rules check|test [PATH ...]` to an argparse subparsers object.

    The parsed namespace gets `func`, a callable taking the namespace and returning the
    exit code.
    """
    parser = subparsers.add_parser("rules", help="check rule files or run their test cases")
    sub = parser.add_subparsers(dest="rules_command", required=True)
    for name, helptext in (("check", "load and type-check rule files"),
                           ("test", "run the test cases written in the rule files")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("paths", nargs="*", metavar="PATH",
                       help="rule files or directories (default: rules/)")
        p.set_defaults(func=_run, rules_command=name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiemke.compliance",
                                     description="Check kiemke rule files and run their tests.")
    sub = parser.add_subparsers(dest="rules_command", required=True)
    for name in ("check", "test"):
        p = sub.add_parser(name)
        p.add_argument("paths", nargs="*", metavar="PATH")
        p.set_defaults(func=_run, rules_command=name)
    args = parser.parse_args(argv)
    return args.func(args)
