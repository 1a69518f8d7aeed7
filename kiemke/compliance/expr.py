"""The rule expression language: tokenizer, parser, type checker and compiler.

Small and safe on purpose. An expression is literals (numbers, "strings", true, false,
lists, durations such as 30d meaning a number of days), dotted fact names, comparison
(== != < <= > >= in, not in), and / or / not, arithmetic (+ - * /) and calls to a fixed
set of functions. Missing facts are UNKNOWN (None) and propagate with Kleene logic:
`false and unknown` is false, `true or unknown` is true, anything else touching
unknown is unknown. `exists(fact)` is the only way to test for a missing fact.

Speed: a checked expression is turned into Python source by `to_python` below and the
rule set compiles all rules of a kind into one function. This is not eval of rule text:
the generator only emits
  - `_g('fact.name')` where the name was checked against the fact registry and is
    written with repr() of a str (a string constant, never code),
  - constants written with repr() of int/float/bool/str values produced by our own
    tokenizer, or names `_cN` bound to frozensets built here,
  - fixed operators and conditional expressions chosen by the generator,
  - calls to `_fn_<name>` for names in the FUNCTIONS whitelist,
and the result is executed with empty `__builtins__`. Nothing the rule author writes
is ever placed in the source except through repr() of a checked value.

The language lives in three modules: expr_syntax (tokens, AST, parser), expr_check
(functions, type checker) and this one (code generation); the names callers use are
all importable from here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .expr_check import (
    FUNCTIONS,
    Function,
    canonical,
    check,
    compile_expr,
    fact_names,
    suggest,
)
from .expr_syntax import (
    Binary,
    Call,
    ExprError,
    Fact,
    ListLit,
    Literal,
    Node,
    Token,
    Unary,
    parse,
    tokenize,
)
from .values import BOOL, DATE, LIST, LIST_NUMBER, NUMBER, STRING, FactDef

__all__ = [
    "BOOL", "DATE", "FUNCTIONS", "LIST", "LIST_NUMBER", "NUMBER", "STRING", "Binary", "Call",
    "CodeGen", "ExprError", "Fact", "FactDef", "Function", "ListLit", "Literal", "Node",
    "Token", "Unary", "canonical", "check", "compile_expr", "compile_function", "evaluate",
    "fact_names", "parse", "suggest", "tokenize",
]


# --------------------------------------------------------------------------- code generation

class CodeGen:
    """Turns checked ASTs into one Python expression each (see the module docstring)."""

    def __init__(self) -> None:
        self.n = 0
        self.constants: dict[str, Any] = {}

    def tmp(self) -> str:
        self.n += 1
        return f"_t{self.n}"

    def const(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def namespace(self) -> dict[str, Any]:
        ns: dict[str, Any] = {"__builtins__": {}}
        ns.update(self.constants)
        for name, fn in FUNCTIONS.items():
            if fn.impl is not None:
                ns[f"_fn_{name}"] = fn.impl
        return ns

    def emit(self, node: Node) -> tuple[str, bool]:
        """Return (python expression, may_be_none)."""
        if isinstance(node, Literal):
            if isinstance(node.value, (bool, int, float, str)):
                return repr(node.value), False
            raise TypeError(node.value)
        if isinstance(node, ListLit):
            return self.const(frozenset(i.value for i in node.items if isinstance(i, Literal))), \
                False
        if isinstance(node, Fact):
            return f"_g({node.name!r})", True
        if isinstance(node, Unary):
            code, nullable = self.emit(node.operand)
            pyop = "not " if node.op == "not" else "-"
            if not nullable:
                return f"({pyop}{code})", False
            t = self.tmp()
            return f"(None if ({t} := {code}) is None else {pyop}{t})", True
        if isinstance(node, Binary):
            return self._binary(node)
        if isinstance(node, Call):
            return self._call(node)
        raise TypeError(node)

    def _binary(self, node: Binary) -> tuple[str, bool]:
        lc, ln = self.emit(node.left)
        rc, rn = self.emit(node.right)
        op = node.op
        if op == "and":
            if not ln and not rn:
                return f"({lc} and {rc})", False
            a, b = self.tmp(), self.tmp()
            return (f"(False if ({a} := {lc}) is False else (False if ({b} := {rc}) is False "
                    f"else (None if {a} is None or {b} is None else True)))"), True
        if op == "or":
            if not ln and not rn:
                return f"({lc} or {rc})", False
            a, b = self.tmp(), self.tmp()
            return (f"(True if ({a} := {lc}) is True else (True if ({b} := {rc}) is True "
                    f"else (None if {a} is None or {b} is None else False)))"), True
        pyop = {"in": "in", "notin": "not in"}.get(op, op)
        if op == "/":
            a, b = self.tmp(), self.tmp()
            nulls = [f"({a} := {lc}) is None" if ln else f"(({a} := {lc}) is None)",
                     f"({b} := {rc}) is None" if rn else f"(({b} := {rc}) is None)"]
            return f"(None if {' or '.join(nulls)} or {b} == 0 else {a} / {b})", True
        if not ln and not rn:
            return f"({lc} {pyop} {rc})", False
        a, b = self.tmp(), self.tmp()
        checks = []
        left = lc
        right = rc
        if ln:
            checks.append(f"({a} := {lc}) is None")
            left = a
        if rn:
            checks.append(f"({b} := {rc}) is None")
            right = b
        return f"(None if {' or '.join(checks)} else {left} {pyop} {right})", True

    def _call(self, node: Call) -> tuple[str, bool]:
        if node.name == "exists":
            fact = node.args[0]
            assert isinstance(fact, Fact)
            return f"(_g({fact.name!r}) is not None)", False
        if node.name == "coalesce":
            (ac, an), (bc, bn) = self.emit(node.args[0]), self.emit(node.args[1])
            if not an:
                return ac, False
            a = self.tmp()
            return f"({bc} if ({a} := {ac}) is None else {a})", bn
        if node.name == "days_since":
            code, _ = self.emit(node.args[0])
            a, now = self.tmp(), self.tmp()
            return (f"(None if ({a} := {code}) is None or ({now} := _g('now')) is None "
                    f"else ({now} - {a}).days)"), True
        parts = [self.emit(a) for a in node.args]
        names = []
        checks = []
        for code, nullable in parts:
            if nullable:
                t = self.tmp()
                checks.append(f"({t} := {code}) is None")
                names.append(t)
            else:
                names.append(code)
        call = f"_fn_{node.name}({', '.join(names)})"
        if not checks:
            return call, False
        return f"(None if {' or '.join(checks)} else {call})", True


def compile_function(node: Node) -> Callable[[Mapping[str, Any]], Any]:
    """One expression as a Python function of a facts mapping (used by tests and tools)."""
    gen = CodeGen()
    code, _ = gen.emit(node)
    src = f"def _expr(_f):\n    _g = _f.get\n    return {code}\n"
    ns = gen.namespace()
    exec(compile(src, "<kiemke expression>", "exec"), ns)  # noqa: S102 - generated, see docstring
    return ns["_expr"]


def evaluate(text: str, facts: Mapping[str, Any], registry: Mapping[str, FactDef]) -> Any:
    """Check and evaluate one expression (slow path: for tools and tests)."""
    node = compile_expr(text, registry, want=None)
    return compile_function(node)(facts)
