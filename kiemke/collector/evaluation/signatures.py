"""Results signatures of many machines, fast: one generated function per rule set.

A full re-evaluation needs, per machine, digest.signature of its results: each rule's
result_part (rule id, result, reason) in rule-id order. Reasons depend on a few facts
only (kiemke.compliance.evaluate.ReasonMemo says which), so each distinct part is built
once and found again by those facts' values. The function below does that for every
rule of the set in one call, unrolled, with the lookups of each rule's facts written
out: per machine it costs a few dictionary lookups per failing rule instead of the
generic key building (the largest share of a pass, measured with cProfile).

The keys are those of ReasonMemo.key (the value's type is part of them: True and 1 are
equal keys but render differently; lists as tuples); a key that cannot be hashed (a
nested list) renders the part directly. Fact names come from rules the loader checked
against the fact registry, and are written as Python string literals (repr).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kiemke.collector.evaluation.digest import ROW, result_part
from kiemke.compliance.evaluate import ReasonMemo
from kiemke.compliance.rules import FAIL, NOT_APPLICABLE, PASS, UNKNOWN

Signature = Callable[[tuple[str, ...], Mapping[str, Any]], str]


def compile_signature(memo: ReasonMemo) -> Signature:
    """sig(results, facts) == digest.signature of the result parts of memo.rules."""
    rules = memo.rules
    order = sorted(range(len(rules)), key=lambda i: rules[i].id)
    ns: dict[str, Any] = {"_list": list, "_type": type, "_tuple": tuple, "_TypeError": TypeError,
                          "_KeyError": KeyError}
    lines = ["def _signature(_r, _f):", "    _g = _f.get", "    _out = []"]
    for n, i in enumerate(order):
        rule = rules[i]
        memos: dict[str, dict[Any, str]] = {FAIL: {}, UNKNOWN: {}, NOT_APPLICABLE: {}}

        def make(result: str, facts: Mapping[str, Any], i: int = i, rid: str = rule.id) -> str:
            return result_part(rid, result, memo.reason(i, result, facts))

        ns[f"_make{n}"] = make
        ns[f"_pass{n}"] = result_part(rule.id, PASS, None)
        for result, found in memos.items():
            ns[f"_m{n}_{result}"] = found
        lines.append(f"    _x = _r[{i}]")
        lines.append(f"    if _x == 'pass':\n        _out.append(_pass{n})")
        branches = [
            (FAIL, [f"_g({name!r})" for name in memo.placeholders(i)], "fail"),
            (NOT_APPLICABLE, [f"_g({name!r})" for name in rule.scope_facts], "scope"),
            (UNKNOWN, [f"_g({name!r})" for name in rule.facts_used], "missing"),
        ]
        for result, gets, how in branches:
            lines.append(f"    elif _x == {result!r}:")
            parts = []
            for k, get in enumerate(gets):
                lines.append(f"        _v{k} = {get}")
                if how == "fail":
                    parts.append(f"_type(_v{k}), (_tuple(_v{k}) if _type(_v{k}) is _list "
                                 f"else _v{k})")
                elif how == "scope":
                    parts.append(f"_type(_v{k}), _v{k}")
                else:
                    parts.append(f"_v{k} is None")
            key = f"({', '.join(parts)},)" if parts else "()"
            lines.append(f"        _d = _m{n}_{result}")
            lines.append("        try:")
            lines.append(f"            _out.append(_d[{key}])")
            lines.append("        except _KeyError:")
            lines.append(f"            _p = _d[{key}] = _make{n}({result!r}, _f)")
            lines.append("            _out.append(_p)")
            lines.append("        except _TypeError:")
            lines.append(f"            _out.append(_make{n}({result!r}, _f))")
        # Any other result (exempt: not produced by rules): rendered as it is.
        lines.append(f"    else:\n        _out.append(_make{n}(_x, _f))")
    lines.append(f"    return {ROW!r}.join(_out)")
    src = "\n".join(lines) + "\n"
    exec(compile(src, "<kiemke signatures>", "exec"), ns)  # noqa: S102 - see the docstring
    function: Signature = ns["_signature"]
    return function
