"""Run every benchmark under bench/ and print one table against the budget.

A benchmark is a module bench/bench_<name>.py with `main() -> list[dict]`, rows
{"name", "value", "unit", "budget", "ok"} (budget None and ok None for a figure
reported for information only), and for a missed budget an optional "why": what bounds
the figure, printed under the table. New modules are discovered automatically;
ORDER only fixes which run first. `bench/run.py ingest agent` runs the matching ones.
Exit code 1 when any row misses its budget.
"""

from __future__ import annotations

import importlib
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ORDER = ["bench_agent", "bench_ingest", "bench_rules", "bench_metrics"]


def discover() -> list[str]:
    found = sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))
    return [m for m in ORDER if m in found] + [m for m in found if m not in ORDER]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def print_table(rows: list[dict[str, Any]]) -> None:
    header = ["benchmark", "value", "unit", "budget", "ok"]
    # ok None: a figure reported for information, with no budget to meet.
    cells = [[r["name"], _fmt(r["value"]), r["unit"],
              "-" if r["budget"] is None else r["budget"],
              "-" if r["ok"] is None else "yes" if r["ok"] else "NO"] for r in rows]
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in cells:
        print("  ".join(str(c).rjust(w) if i == 1 else str(c).ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    missed = [r for r in rows if r["ok"] is False]
    if missed:
        print(f"\n{len(missed)} budget(s) missed (NO): the measured figure and why")
        for r in missed:
            why = r.get("why") or "see the benchmark's output above"
            print(f"- {r['name']}: {_fmt(r['value'])} {r['unit']} against {r['budget']}: {why}")


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(BENCH_DIR))
    wanted = [a for a in argv if not a.startswith("-")]
    modules = [m for m in discover() if not wanted or any(w in m for w in wanted)]
    rows: list[dict[str, Any]] = []
    for name in modules:
        started = time.monotonic()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            rows += importlib.import_module(name).main()
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            traceback.print_exc()
            rows.append({"name": f"{name} crashed", "value": float("nan"), "unit": "",
                         "budget": "see traceback above", "ok": False})
        print(f"  {name} took {time.monotonic() - started:.0f} s", file=sys.stderr)
    print_table(rows)
    return 0 if all(r["ok"] is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
