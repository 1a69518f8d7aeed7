"""Table-driven corpus test for antivirus/EDR detection (issue 14, classes 7-9).

Every capture under tests/fixtures/corpus/antivirus/ is replayed through the real
collector code (only the OS boundary is replaced: command output, process list, file
existence, PowerShell answers) and every product fact plus the rule-relevant facts are
compared with the expected.json written by hand beside it. A fact missing from the
expectation counts as wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.av_corpus import Score, case_dirs, run_case, score

CASES = case_dirs()


@pytest.mark.parametrize("root", CASES, ids=[c.name for c in CASES])
def test_case_matches_expectation(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = json.loads((root / "expected.json").read_text("utf-8"))
    section, rule_facts = run_case(root, monkeypatch)
    result = score(root.name, expected, section, rule_facts)
    assert result.wrong == [], "\n".join(result.wrong)
    assert not any(result.dangerous.values()), result.dangerous


def test_corpus_has_no_dangerous_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The targets: 0 false "no antivirus", "enabled", "up to date", "licensed"."""
    total = Score()
    for root in CASES:
        expected = json.loads((root / "expected.json").read_text("utf-8"))
        with monkeypatch.context() as mp:
            section, rule_facts = run_case(root, mp)
        total.add(score(root.name, expected, section, rule_facts))
    assert len(CASES) >= 40
    assert {k: sorted(v) for k, v in total.dangerous.items() if v} == {}
    assert total.right == total.facts, "\n".join(total.wrong)
