"""The antivirus capture corpus (tests/fixtures/corpus/antivirus/<case>/): load a case,
replay it through the real collector code, score the result against the hand-written
expectation. Used by tests/test_av_corpus.py; kept apart so the same scoring can be run
against another version of the agent.

A case directory holds:
  case.json      {"platform": "linux"|"windows", "collected_at": ISO time,
                  "max_signature_age_days": 7 (optional),
                  linux: "processes": [...], "binaries": [...], "files": [...],
                         "units": {"name.service": true|false},
                         "commands": {"<tool basename> <args>": "<file>"},
                         "clamscan": "<file with clamscan --version output>" (optional),
                  windows: "cim_errors": {"<namespace>:<Class>": [kind, message]}}
  windows:       cim/, registry/, services.json, processes.json (tests/windows_captures.py)
  linux ClamAV:  db/ (the database directory)
  expected.json  {"products": [every schema key of each product],
                  "rule_facts": {"antivirus.products": n, "antivirus.enabled": ..,
                                 "antivirus.up_to_date": .., "antivirus.licensed": ..}}
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from kiemke.agent.collectors import antivirus_linux, antivirus_windows
from kiemke.agent.collectors.antivirus import as_section
from kiemke.agent.collectors.base import CollectorError, Context
from kiemke.agent.config import AgentConfig
from kiemke.agent.parsers.av_vendors import builtin_table
from kiemke.compliance.config import load_config
from kiemke.compliance.facts import facts_from_report
from tests.windows_captures import WindowsCaptures

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "antivirus"
RULES = Path(__file__).resolve().parents[1] / "rules"
PRODUCT_KEYS = ("name", "vendor", "version", "enabled", "state", "up_to_date",
                "signatures_version", "signatures_date", "signatures_age_days", "licensed",
                "licence_expiry", "product_state", "detected_by")
RULE_FACTS = ("antivirus.products", "antivirus.enabled", "antivirus.up_to_date",
              "antivirus.licensed")
DANGEROUS = ("enabled", "up_to_date", "licensed")


def case_dirs() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if (p / "case.json").is_file())


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class _CaseWindows(WindowsCaptures):
    def __init__(self, root: Path, cim_errors: dict[str, Sequence[str]]) -> None:
        super().__init__(root)
        self.cim_errors = cim_errors

    def cim_query(self, class_name: str, namespace: str = "root/cimv2",
                  properties: Sequence[str] = (), timeout: float = 15.0
                  ) -> list[dict[str, Any]]:
        failure = self.cim_errors.get(f"{namespace}:{class_name}")
        if failure:
            self.calls.append(("cim", f"{namespace}:{class_name}"))
            raise CollectorError(failure[0], failure[1])
        return super().cim_query(class_name, namespace, properties, timeout)


def _install_linux(case: dict[str, Any], root: Path, mp: pytest.MonkeyPatch) -> None:
    processes = frozenset(p.lower() for p in case.get("processes", ()))
    binaries = set(case.get("binaries", ()))
    files = set(case.get("files", ())) | binaries
    units = case.get("units", {})
    commands = case.get("commands", {})
    clamscan_file = case.get("clamscan")

    def run(argv: Sequence[str], timeout: float = 10.0, env: Any = None) -> str:
        key = " ".join([os.path.basename(argv[0]), *argv[1:]])
        if os.path.basename(argv[0]) == "clamscan" and clamscan_file:
            return (root / clamscan_file).read_text("utf-8")
        if key not in commands:
            raise CollectorError("failed", f"{key} exited with 1")
        return (root / commands[key]).read_text("utf-8")

    mp.setattr(antivirus_linux, "process_names", lambda now: processes)
    mp.setattr(antivirus_linux, "_first_existing",
               lambda paths: next((p for p in paths if p in binaries), None))
    mp.setattr(antivirus_linux, "unit_active", lambda unit: units.get(unit))
    mp.setattr(antivirus_linux, "run", run)
    if hasattr(antivirus_linux, "_path_exists"):
        mp.setattr(antivirus_linux, "_path_exists", lambda path: path in files)
    else:  # an agent version without the seam: the whole os.path.exists, briefly
        mp.setattr(antivirus_linux.os.path, "exists", lambda path: str(path) in files)
    mp.setattr(antivirus_linux.shutil, "which",
               lambda name: "/usr/bin/clamscan" if name == "clamscan" and clamscan_file
               else None)


def run_case(root: Path, mp: pytest.MonkeyPatch) -> tuple[dict[str, Any], dict[str, Any]]:
    """-> (antivirus section, rule-relevant facts) for one case."""
    section, facts = run_case_facts(root, mp)
    return section, {k: facts.get(k) for k in RULE_FACTS}


def run_case_facts(root: Path, mp: pytest.MonkeyPatch) -> tuple[dict[str, Any], dict[str, Any]]:
    """-> (antivirus section, every fact the collector derives from it)."""
    case = json.loads((root / "case.json").read_text("utf-8"))
    now = _time(case["collected_at"])
    config = AgentConfig(max_signature_age_days=case.get("max_signature_age_days", 7.0))
    ctx = Context(config=config, state_dir=root / "no-state", platform=case["platform"],
                  now=now)
    table = builtin_table()
    if case["platform"] == "windows":
        _CaseWindows(root, case.get("cim_errors", {})).install(mp)
        section = as_section(antivirus_windows.read(ctx, table))
    else:
        _install_linux(case, root, mp)
        db = root / "db"
        section = as_section(antivirus_linux.read(ctx, table,
                                          clamav_db_dir=str(db) if db.is_dir() else
                                          str(root / "no-clamav-db")))
    report = {"collected_at": case["collected_at"], "antivirus": section}
    return section, facts_from_report(report, now=now, asset=None, config=load_config(RULES))


@dataclass
class Score:
    facts: int = 0
    right: int = 0
    wrong: list[str] = field(default_factory=list)
    # dangerous error -> the cases that have it (a false "yes" for the plan's targets)
    dangerous: dict[str, set[str]] = field(default_factory=lambda: {
        "no_antivirus": set(), "enabled": set(), "up_to_date": set(), "licensed": set()})

    def add(self, other: Score) -> None:
        self.facts += other.facts
        self.right += other.right
        self.wrong += other.wrong
        for k, v in other.dangerous.items():
            self.dangerous[k] |= v


def _same(key: str, want: Any, got: Any) -> bool:
    if key == "signatures_age_days" and isinstance(want, (int, float)) \
            and isinstance(got, (int, float)):
        return abs(want - got) <= 0.05
    return bool(want == got)


def score(name: str, expected: dict[str, Any], section: dict[str, Any],
          rule_facts: dict[str, Any]) -> Score:
    s = Score()
    got = {p["name"]: p for p in section.get("products", [])}
    want = {p["name"]: p for p in expected["products"]}
    if want and not got:
        s.dangerous["no_antivirus"].add(name)
    for pname, wp in want.items():
        gp = got.get(pname, {})
        for key in PRODUCT_KEYS:
            s.facts += 1
            if key not in wp:
                s.wrong.append(f"{name}/{pname}.{key}: missing from the expectation")
                continue
            if gp and _same(key, wp[key], gp.get(key)):
                s.right += 1
            else:
                s.wrong.append(f"{name}/{pname}.{key}: expected {wp[key]!r}, "
                               f"got {gp.get(key) if gp else 'no such product'!r}")
                if key in DANGEROUS and gp.get(key) is True and wp[key] is not True:
                    s.dangerous[key].add(name)
    for pname, gp in got.items():
        if pname not in want:
            s.facts += 1
            s.wrong.append(f"{name}/{pname}: reported but not expected")
            for key in DANGEROUS:
                if gp.get(key) is True:
                    s.dangerous[key].add(name)
    for key in RULE_FACTS:
        s.facts += 1
        wv = expected["rule_facts"].get(key)
        gv = rule_facts.get(key)
        if wv == gv:
            s.right += 1
        else:
            s.wrong.append(f"{name}: rule fact {key} expected {wv!r}, got {gv!r}")
            short = key.split(".", 1)[1]
            if short in DANGEROUS and gv is True and wv is not True:
                s.dangerous[short].add(name)
    return s
