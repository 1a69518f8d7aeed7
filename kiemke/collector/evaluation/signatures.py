"""Results digests of many machines, fast: one generated function per rule set.

A full re-evaluation needs, per machine, digest.digest(unit id, digest.signature of its
results): each rule's result_part (rule id, result, reason) in rule-id order, hashed
with the unit id. The function below computes every rule's result (the expressions of
RuleSet's own function, kiemke.compliance.rules.compile_rules) and, in the same call,
the finished parts: reasons depend on a few facts only (kiemke.compliance.evaluate.
ReasonMemo says which), so each distinct part is built and UTF-8 encoded once and found
again by those facts' values; a passing rule's part is a constant. It hashes the parts
as bytes. Per machine that is a few dictionary lookups per failing rule and one BLAKE2b,
instead of a tuple of results, then a string per rule looked up from it, joined,
encoded and hashed (1.9 us of the 5.9 us, measured on the bench's fleet).

The keys are those of ReasonMemo.key (the value's type is part of them: True and 1 are
equal keys but render differently; lists as tuples); a key that cannot be hashed (a
nested list) renders the part directly. Fact names come from rules the loader checked
against the fact registry, and are written as Python string literals (repr); the rules'
expressions are kiemke.compliance.expr's generated code (see its safety notes).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kiemke.collector.evaluation.digest import ROW, result_part
from kiemke.compliance import expr
from kiemke.compliance.evaluate import ReasonMemo
from kiemke.compliance.rules import FAIL, NOT_APPLICABLE, PASS, UNKNOWN

# (facts, unit prefix) -> the machine's results digest; the prefix is unit_prefix(unit id).
Digest = Callable[[Mapping[str, Any], bytes], str]
# facts -> the values of some facts, lists as tuples (hashable).
Values = Callable[[Mapping[str, Any]], tuple[Any, ...]]


def unit_prefix(unit_id: int) -> bytes:
    """What the digest of a machine in `unit_id` hashes before its result parts."""
    return str(unit_id).encode()


def compile_digest(memo: ReasonMemo) -> Digest:
    """fn(facts, unit_prefix(unit id)) == digest.results_digest(unit id, evaluate_machine
    (facts)) for the rules of `memo` (no waivers: a waived machine is written anyway)."""
    rules = memo.rules
    gen = expr.CodeGen()
    codes = [rule.result_code(gen) for rule in rules]
    ns: dict[str, Any] = gen.namespace()
    ns.update({"_list": list, "_type": type, "_tuple": tuple, "_TypeError": TypeError,
               "_KeyError": KeyError, "_hash": hashlib.blake2b})
    row = ROW.encode()
    lines = ["def _digest(_f, _u):", "    _g = _f.get"]
    lines += [f"    _r{i} = {code}" for i, code in enumerate(codes)]
    lines.append("    _out = [_u]")
    for n, i in enumerate(sorted(range(len(rules)), key=lambda i: rules[i].id)):
        rule = rules[i]

        def make(result: str, facts: Mapping[str, Any], i: int = i, rid: str = rule.id
                 ) -> bytes:
            return result_part(rid, result, memo.reason(i, result, facts)).encode()

        ns[f"_make{n}"] = make
        ns[f"_pass{n}"] = result_part(rule.id, PASS, None).encode()
        lines.append(f"    if _r{i} == 'pass':\n        _out.append(_pass{n})")
        branches = [
            (FAIL, [f"_g({name!r})" for name in memo.placeholders(i)], "fail"),
            (NOT_APPLICABLE, [f"_g({name!r})" for name in rule.scope_facts], "scope"),
            (UNKNOWN, [f"_g({name!r})" for name in rule.facts_used], "missing"),
        ]
        for result, gets, how in branches:
            ns[f"_m{n}_{result}"] = {}
            lines.append(f"    elif _r{i} == {result!r}:")
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
        lines.append(f"    else:\n        _out.append(_make{n}(_r{i}, _f))")
    # digest.digest hashes "<unit id><ROW><signature>": with no rule the signature is "".
    data = f"{row!r}.join(_out)" if rules else f"_u + {row!r}"
    lines.append(f"    return _hash({data}, digest_size=16).hexdigest()")
    src = "\n".join(lines) + "\n"
    exec(compile(src, "<kiemke digests>", "exec"), ns)  # noqa: S102 - see the docstring
    function: Digest = ns["_digest"]
    return function


def compile_values(names: Sequence[str]) -> Values:
    """fn(facts) == tuple(facts.get(n) for n in names), each list value as a tuple."""
    values = ", ".join(f"(_tuple(_v) if _type(_v := _g({name!r})) is _list else _v)"
                       for name in names)
    src = f"def _values(_f):\n    _g = _f.get\n    return ({values}{',' if names else ''})\n"
    ns: dict[str, Any] = {"__builtins__": {}, "_tuple": tuple, "_type": type, "_list": list}
    exec(compile(src, "<kiemke values>", "exec"), ns)  # noqa: S102 - names are repr()'d
    function: Values = ns["_values"]
    return function
