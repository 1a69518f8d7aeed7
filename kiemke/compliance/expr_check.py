"""The rule expression language, part 2: the functions and the type checker.

`compile_expr(text, facts)` parses (kiemke.compliance.expr_syntax) and type-checks an
expression against a fact registry; `fact_names` and `canonical` read checked ASTs.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .expr_syntax import (
    Binary,
    Call,
    ExprError,
    Fact,
    ListLit,
    Literal,
    Node,
    Unary,
    parse,
)
from .values import BOOL, DATE, LIST, LIST_NUMBER, NUMBER, STRING, FactDef

# --------------------------------------------------------------------------- functions

@dataclass(frozen=True)
class Function:
    """A whitelisted function: checker(arg types) -> result type, and its implementation."""

    signature: str
    check: Callable[[list[str]], str | None]  # returns the result type or None if bad args
    impl: Callable[..., Any] | None  # None for special forms compiled inline


def _sig(*accepted: tuple[tuple[str, ...], str]) -> Callable[[list[str]], str | None]:
    def check(types: list[str]) -> str | None:
        for args, result in accepted:
            if tuple(types) == args:
                return result
        return None
    return check


def _contains(haystack: Any, needle: Any) -> bool:
    return needle in haystack


def _any_of(values: list[Any], wanted: frozenset[Any] | list[Any]) -> bool:
    return any(v in wanted for v in values)


def _startswith(text: str, prefix: str) -> bool:
    return text.startswith(prefix)


def _lower(text: str) -> str:
    return text.lower()


def _len(value: Any) -> int:
    return len(value)


def _min(a: Any, b: Any) -> Any:
    return a if a <= b else b


def _max(a: Any, b: Any) -> Any:
    return a if a >= b else b


FUNCTIONS: dict[str, Function] = {
    "exists": Function("exists(fact) -> bool: true when the fact is known", lambda t: BOOL, None),
    "coalesce": Function("coalesce(a, b) -> the first of a, b that is known (same types)",
                         lambda t: t[0] if len(t) == 2 and t[0] == t[1] else None, None),
    "days_since": Function("days_since(date) -> number of days from the date to `now`",
                           _sig(((DATE,), NUMBER)), None),
    "len": Function("len(list or string) -> number", _sig(((LIST,), NUMBER), ((STRING,), NUMBER)),
                    _len),
    "lower": Function("lower(string) -> string", _sig(((STRING,), STRING)), _lower),
    "contains": Function("contains(list, string) or contains(string, string) -> bool",
                         _sig(((LIST, STRING), BOOL), ((STRING, STRING), BOOL)), _contains),
    "startswith": Function("startswith(string, prefix) -> bool",
                           _sig(((STRING, STRING), BOOL)), _startswith),
    "any_of": Function("any_of(list, [\"a\", \"b\"]) -> bool: the list holds one of the values",
                       _sig(((LIST, LIST), BOOL)), _any_of),
    "min": Function("min(number, number) -> number", _sig(((NUMBER, NUMBER), NUMBER)), _min),
    "max": Function("max(number, number) -> number", _sig(((NUMBER, NUMBER), NUMBER)), _max),
}


# --------------------------------------------------------------------------- checker

def _literal_type(value: Any) -> str:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, (int, float)):
        return NUMBER
    return STRING


def suggest(name: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check(node: Node, facts: Mapping[str, FactDef]) -> str:
    """Type-check `node` against the fact registry; set node.type; return it."""
    node.type = _check(node, facts)
    return node.type


def _check(node: Node, facts: Mapping[str, FactDef]) -> str:
    if isinstance(node, Literal):
        return _literal_type(node.value)
    if isinstance(node, ListLit):
        types = {check(item, facts) for item in node.items}
        for item in node.items:
            if not isinstance(item, Literal):
                raise ExprError("list items must be plain values", item.pos)
        if types <= {STRING}:
            return LIST
        if types == {NUMBER}:
            return LIST_NUMBER
        raise ExprError("a list must hold only texts or only numbers", node.pos)
    if isinstance(node, Fact):
        fact = facts.get(node.name)
        if fact is None:
            raise ExprError(f"unknown fact '{node.name}'{suggest(node.name, facts)}", node.pos)
        return fact.type
    if isinstance(node, Unary):
        t = check(node.operand, facts)
        if node.op == "not":
            if t != BOOL:
                raise ExprError(f"'not' needs a true/false value, got {t}", node.pos)
            return BOOL
        if t != NUMBER:
            raise ExprError(f"'-' needs a number, got {t}", node.pos)
        return NUMBER
    if isinstance(node, Binary):
        return _check_binary(node, facts)
    if isinstance(node, Call):
        return _check_call(node, facts)
    raise ExprError("unsupported expression", node.pos)


def _check_binary(node: Binary, facts: Mapping[str, FactDef]) -> str:
    lt, rt = check(node.left, facts), check(node.right, facts)
    op = node.op
    if op in ("and", "or"):
        for side, t in ((node.left, lt), (node.right, rt)):
            if t != BOOL:
                raise ExprError(f"'{op}' needs true/false values on both sides, got {t}", side.pos)
        return BOOL
    if op in ("==", "!="):
        if lt != rt:
            raise ExprError(f"cannot compare {lt} with {rt}", node.pos)
        return BOOL
    if op in ("<", "<=", ">", ">="):
        if lt != rt:
            raise ExprError(f"cannot compare {lt} with {rt}", node.pos)
        if lt not in (NUMBER, DATE, STRING):
            raise ExprError(f"'{op}' needs numbers, dates or texts, got {lt}", node.pos)
        return BOOL
    if op in ("in", "notin"):
        word = "in" if op == "in" else "not in"
        wanted = {LIST: STRING, LIST_NUMBER: NUMBER}.get(rt)
        if wanted is None:
            raise ExprError(f"the right side of '{word}' must be a list, got {rt}", node.right.pos)
        if lt != wanted:
            raise ExprError(f"cannot look for a {lt} in a {rt}", node.pos)
        return BOOL
    if op in ("+", "-", "*", "/"):
        if lt != NUMBER or rt != NUMBER:
            bad = lt if lt != NUMBER else rt
            raise ExprError(f"'{op}' needs numbers on both sides, got {bad}", node.pos)
        return NUMBER
    raise ExprError(f"unknown operator '{op}'", node.pos)


def _check_call(node: Call, facts: Mapping[str, FactDef]) -> str:
    fn = FUNCTIONS.get(node.name)
    if fn is None:
        if node.name in facts:
            raise ExprError(f"'{node.name}' is a fact, not a function: remove the brackets",
                            node.pos)
        raise ExprError(f"unknown function '{node.name}'{suggest(node.name, FUNCTIONS)}; "
                        f"available: {', '.join(sorted(FUNCTIONS))}", node.pos)
    if node.name == "exists" and (len(node.args) != 1 or not isinstance(node.args[0], Fact)):
        raise ExprError("exists() takes one fact name, e.g. exists(antivirus.licensed)",
                        node.pos)
    types = [check(arg, facts) for arg in node.args]
    if node.name == "any_of" and len(node.args) == 2 and not isinstance(node.args[1], ListLit):
        raise ExprError("any_of() needs a list of values as its second argument", node.pos)
    result = fn.check(types)
    if result is None:
        got = ", ".join(types) or "nothing"
        raise ExprError(f"wrong arguments for {fn.signature} (got {got})", node.pos)
    return result


def compile_expr(text: str, facts: Mapping[str, FactDef], *, want: str | None = BOOL) -> Node:
    """Parse and type-check; `want` is the required result type (bool for conditions)."""
    node = parse(text)
    t = check(node, facts)
    if want is not None and t != want:
        raise ExprError(f"the expression must give {want} (true/false), but gives {t}", 0)
    return node


def fact_names(node: Node) -> list[str]:
    """The facts an expression reads, in order of first use."""
    seen: dict[str, None] = {}

    def walk(n: Node) -> None:
        if isinstance(n, Fact):
            seen.setdefault(n.name, None)
        elif isinstance(n, Unary):
            walk(n.operand)
        elif isinstance(n, Binary):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, Call):
            if n.name == "days_since":
                seen.setdefault("now", None)
            for a in n.args:
                walk(a)
        elif isinstance(n, ListLit):
            for a in n.items:
                walk(a)

    walk(node)
    return list(seen)


def canonical(node: Node) -> str:
    """A normalised text of the AST (for fingerprints): spacing and quoting do not matter."""
    if isinstance(node, Literal):
        return repr(node.value)
    if isinstance(node, ListLit):
        return "[" + ",".join(canonical(i) for i in node.items) + "]"
    if isinstance(node, Fact):
        return node.name
    if isinstance(node, Unary):
        return f"({node.op} {canonical(node.operand)})"
    if isinstance(node, Binary):
        return f"({canonical(node.left)} {node.op} {canonical(node.right)})"
    if isinstance(node, Call):
        return f"{node.name}(" + ",".join(canonical(a) for a in node.args) + ")"
    raise TypeError(node)

