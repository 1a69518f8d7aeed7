"""Benchmark: full re-evaluation of 100,000 machines x the default rules (budget ≤ 1 s).

Synthetic but realistic facts (a mix of passing, failing and unknown values) are built
first and not timed. Timed: RuleSet.machine_results over every machine (what the
collector runs when the rule fingerprint changes), and evaluate_machine with reasons.
Run: .venv/bin/python bench/bench_rules.py [machines]
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kiemke.compliance import (  # noqa: E402
    default_rules_dir,  # noqa: E402
    evaluate_machine,
    load_rules,
)

BUDGET_S = 1.0
MACHINES = 100_000


def synthetic_facts(n: int, seed: int = 6) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    choice = rnd.choice
    out = []
    for _ in range(n):
        f: dict[str, Any] = {"now": dt.date(2025, 6, 1)}
        for name, values in (
            ("network.networked", (True, True, True, True, False, None)),
            ("antivirus.approved_active", (True, True, True, False, None)),
            ("monitoring.running", (True, True, False, None)),
            ("hardware.is_virtual", (False, False, False, True, None)),
            ("depreciation.status", ("in_service", "in_service", "fully_depreciated",
                                     "overdue_for_replacement", None)),
            ("hardware.meets_min_spec", (True, True, True, False, None)),
            ("network.internet_ok", (True, True, True, False, None)),
            ("os.supported", (True, True, True, False, None)),
        ):
            v = choice(values)
            if v is not None:
                f[name] = v
        out.append(f)
    return out


def main(machines: int = MACHINES) -> list[dict[str, Any]]:
    ruleset = load_rules([default_rules_dir()])
    facts = synthetic_facts(machines)
    n_rules = len(ruleset.machine_rules)
    results = ruleset.machine_results
    start = time.perf_counter()
    for f in facts:
        results(f)
    fast = time.perf_counter() - start
    start = time.perf_counter()
    for f in facts:
        evaluate_machine(ruleset, f)
    full = time.perf_counter() - start
    # The budget is stated for 10 rules: scale the measured time to 10 rules per machine.
    per_10 = fast * 10 / n_rules
    return [
        {"name": f"rules: {machines} machines x {n_rules} machine rules (results only)",
         "value": round(fast, 3), "unit": "s", "budget": None, "ok": None},
        {"name": f"rules: {machines} machines x 10 rules (scaled)", "value": round(per_10, 3),
         "unit": "s", "budget": BUDGET_S, "ok": per_10 <= BUDGET_S},
        {"name": "rules: evaluations per second", "value": round(machines * n_rules / fast),
         "unit": "evals/s", "budget": None, "ok": None},
        {"name": f"rules: {machines} machines with reasons (evaluate_machine)",
         "value": round(full, 3), "unit": "s", "budget": None, "ok": None},
    ]


if __name__ == "__main__":
    from run import print_table  # bench/run.py: the same table as `make bench`

    print_table(main(int(sys.argv[1]) if len(sys.argv) > 1 else MACHINES))
