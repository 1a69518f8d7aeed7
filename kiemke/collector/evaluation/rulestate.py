"""What the stored results were computed with, and what a rule change must re-evaluate.

`ruleset_state` (one row) records, when a re-evaluation ends: the rule set's fingerprint,
the facts configuration's, each enabled rule's (`Rule.fingerprint`, a JSON object) and
the rule engine's. When the rules change, `plan` compares them with the loaded rule set:
- the facts configuration changed: everything, with facts rebuilt from the reports;
- the engine changed (its code or the language of the reasons), the rule fingerprints
  are not known (before migration 0012) or a rule was removed or disabled (its rows go,
  every machine's results digest changes): a full pass from stored facts;
- otherwise only the machine rules whose fingerprint differs or that are new (their
  results, counts and the digests of the machines whose results change) and, when a
  unit rule changed, the unit rules of every unit.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kiemke.compliance
from kiemke.compliance import RuleSet

# The code that turns stored facts into stored rows: the rules' compiler and evaluation,
# the fact registry and decoding (all of kiemke/compliance), and the collector's writers
# of results and digests. Any edit of these files counts as another engine.
_EVALUATION = Path(__file__).resolve().parent
ENGINE_FILES = (*sorted(Path(kiemke.compliance.__file__).resolve().parent.glob("*.py")),
                *(_EVALUATION / name for name in ("bulk.py", "changed_rules.py", "digest.py",
                                                  "evaluator.py", "signatures.py",
                                                  "store.py")))


@functools.cache
def engine_fingerprint(lang: str) -> str:
    """SHA-256 of ENGINE_FILES' contents and the language of the reasons; read once per
    process (the code it runs is the code it imported)."""
    h = hashlib.sha256(lang.encode("utf-8"))
    for path in ENGINE_FILES:
        h.update(b"\0" + path.name.encode("utf-8") + b"\0" + path.read_bytes())
    return h.hexdigest()


def rule_fingerprints(ruleset: RuleSet) -> dict[str, str]:
    """{rule id: fingerprint} of the enabled rules (those that have results)."""
    return {rule.id: rule.fingerprint for rule in ruleset.rules}


def state_values(ruleset: RuleSet, lang: str) -> dict[str, Any]:
    """The ruleset_state columns of results computed with `ruleset` (and this engine)."""
    return {"fingerprint": ruleset.fingerprint,
            "config_fingerprint": ruleset.config.fingerprint,
            "rule_fingerprints": json.dumps(rule_fingerprints(ruleset), sort_keys=True),
            "engine_fingerprint": engine_fingerprint(lang)}


@dataclass(frozen=True)
class Plan:
    """What to re-evaluate. recompute: facts from reports (implies full); full: every
    machine; otherwise `machine_rules` (ids) and, if `unit_rules`, every unit's."""

    recompute: bool
    full: bool
    machine_rules: tuple[str, ...] = ()
    unit_rules: bool = False

    @property
    def nothing(self) -> bool:
        return not self.full and not self.machine_rules and not self.unit_rules


def plan(state: Mapping[str, Any], ruleset: RuleSet, lang: str, *, force: bool = False
         ) -> Plan:
    """What re-evaluation makes the results stored under `state` (a ruleset_state row
    as a mapping) those of `ruleset`; `force`: everything, whatever changed."""
    if state.get("config_fingerprint") != ruleset.config.fingerprint:
        return Plan(recompute=True, full=True)
    stored_raw = state.get("rule_fingerprints")
    stored: dict[str, str] = json.loads(stored_raw) if stored_raw else {}
    current = rule_fingerprints(ruleset)
    if (force or not stored_raw or state.get("engine_fingerprint") != engine_fingerprint(lang)
            or set(stored) - set(current)):
        return Plan(recompute=False, full=True)
    changed = {rule_id for rule_id, fp in current.items() if stored.get(rule_id) != fp}
    return Plan(recompute=False, full=False,
                machine_rules=tuple(r.id for r in ruleset.machine_rules if r.id in changed),
                unit_rules=any(r.id in changed for r in ruleset.unit_rules))
