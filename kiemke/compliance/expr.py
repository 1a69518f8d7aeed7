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
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .values import BOOL, DATE, LIST, LIST_NUMBER, NUMBER, STRING, FactDef


class ExprError(Exception):
    """A syntax or type error at character `pos` (0-based) of the expression."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


# --------------------------------------------------------------------------- tokens

@dataclass(frozen=True)
class Token:
    kind: str  # num, str, name, op, kw, end
    value: Any
    pos: int


KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_DURATION_DAYS = {"d": 1.0, "w": 7.0, "h": 1.0 / 24.0}
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d+)?)(?P<unit>[dwh](?![A-Za-z0-9_]))?
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
  | (?P<quote>["'])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            ch = text[pos]
            hint = " (use == to compare)" if ch == "=" else ""
            if ch == "&" or ch == "|":
                hint = " (write 'and' / 'or')"
            if ch == "!":
                hint = " (write 'not', or != to compare)"
            raise ExprError(f"unexpected character '{ch}'{hint}", pos)
        if m.group("ws"):
            pos = m.end()
            continue
        if m.group("num") is not None:
            raw = m.group("num")
            number: float | int = float(raw) if "." in raw else int(raw)
            unit = m.group("unit")
            if unit:
                number = number * _DURATION_DAYS[unit]
            tokens.append(Token("num", number, pos))
            pos = m.end()
            continue
        if m.group("name") is not None:
            word = m.group("name")
            kind = "kw" if word in KEYWORDS else "name"
            if m.end() < len(text) and text[m.end()].isdigit():
                raise ExprError(f"unexpected text after '{word}'", m.end())
            tokens.append(Token(kind, word, pos))
            pos = m.end()
            continue
        if m.group("op") is not None:
            tokens.append(Token("op", m.group("op"), pos))
            pos = m.end()
            continue
        quote = m.group("quote")
        start, pos = pos, pos + 1
        chars: list[str] = []
        while True:
            if pos >= len(text):
                raise ExprError("text in quotes is not closed", start)
            ch = text[pos]
            if ch == quote:
                pos += 1
                break
            if ch == "\\" and pos + 1 < len(text) and text[pos + 1] in _ESCAPES:
                chars.append(_ESCAPES[text[pos + 1]])
                pos += 2
                continue
            chars.append(ch)
            pos += 1
        tokens.append(Token("str", "".join(chars), start))
    tokens.append(Token("end", None, len(text)))
    return tokens


# --------------------------------------------------------------------------- AST

@dataclass
class Node:
    pos: int
    type: str = field(default="", init=False)  # filled by the checker


@dataclass
class Literal(Node):
    value: Any


@dataclass
class ListLit(Node):
    items: list[Node]


@dataclass
class Fact(Node):
    name: str


@dataclass
class Unary(Node):
    op: str  # not, -
    operand: Node


@dataclass
class Binary(Node):
    op: str  # and or == != < <= > >= in notin + - * /
    left: Node
    right: Node


@dataclass
class Call(Node):
    name: str
    args: list[Node]


# --------------------------------------------------------------------------- parser

_COMPARE = {"==", "!=", "<", "<=", ">", ">="}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def accept(self, kind: str, value: Any = None) -> Token | None:
        tok = self.tok
        if tok.kind == kind and (value is None or tok.value == value):
            self.i += 1
            return tok
        return None

    def expect(self, kind: str, value: str, what: str) -> Token:
        tok = self.accept(kind, value)
        if tok is None:
            raise ExprError(f"expected {what}, found {self._describe(self.tok)}", self.tok.pos)
        return tok

    @staticmethod
    def _describe(tok: Token) -> str:
        if tok.kind == "end":
            return "the end of the expression"
        if tok.kind == "str":
            return f'"{tok.value}"'
        return f"'{tok.value}'"

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ExprError("the expression is empty", 0)
        node = self.parse_or()
        if self.tok.kind != "end":
            raise ExprError(f"unexpected {self._describe(self.tok)}", self.tok.pos)
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while (tok := self.accept("kw", "or")) is not None:
            node = Binary(tok.pos, "or", node, self.parse_and())
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while (tok := self.accept("kw", "and")) is not None:
            node = Binary(tok.pos, "and", node, self.parse_not())
        return node

    def parse_not(self) -> Node:
        if (tok := self.accept("kw", "not")) is not None:
            return Unary(tok.pos, "not", self.parse_not())
        return self.parse_compare()

    def parse_compare(self) -> Node:
        node = self.parse_additive()
        tok = self.tok
        if tok.kind == "op" and tok.value in _COMPARE:
            self.take()
            node = Binary(tok.pos, tok.value, node, self.parse_additive())
        elif tok.kind == "kw" and tok.value == "in":
            self.take()
            node = Binary(tok.pos, "in", node, self.parse_additive())
        elif tok.kind == "kw" and tok.value == "not" and self.tokens[self.i + 1].value == "in":
            self.i += 2
            node = Binary(tok.pos, "notin", node, self.parse_additive())
        else:
            return node
        nxt = self.tok
        if (nxt.kind == "op" and nxt.value in _COMPARE) or (nxt.kind == "kw" and nxt.value == "in"):
            raise ExprError("comparisons cannot be chained: join them with 'and'", nxt.pos)
        return node

    def parse_additive(self) -> Node:
        node = self.parse_term()
        while self.tok.kind == "op" and self.tok.value in ("+", "-"):
            tok = self.take()
            node = Binary(tok.pos, tok.value, node, self.parse_term())
        return node

    def parse_term(self) -> Node:
        node = self.parse_unary()
        while self.tok.kind == "op" and self.tok.value in ("*", "/"):
            tok = self.take()
            node = Binary(tok.pos, tok.value, node, self.parse_unary())
        return node

    def parse_unary(self) -> Node:
        if (tok := self.accept("op", "-")) is not None:
            operand = self.parse_unary()
            if isinstance(operand, Literal) and isinstance(operand.value, (int, float)) \
                    and not isinstance(operand.value, bool):
                return Literal(tok.pos, -operand.value)
            return Unary(tok.pos, "-", operand)
        return self.parse_primary()

    def parse_primary(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return Literal(tok.pos, tok.value)
        if tok.kind == "str":
            return Literal(tok.pos, tok.value)
        if tok.kind == "kw" and tok.value in ("true", "false"):
            return Literal(tok.pos, tok.value == "true")
        if tok.kind == "kw" and tok.value == "null":
            raise ExprError("null is not a value here: a missing fact is unknown; "
                            "test for it with exists(fact) or not exists(fact)", tok.pos)
        if tok.kind == "name":
            if self.accept("op", "(") is not None:
                args: list[Node] = []
                if self.accept("op", ")") is None:
                    args.append(self.parse_or())
                    while self.accept("op", ",") is not None:
                        args.append(self.parse_or())
                    self.expect("op", ")", "')' to close the function call")
                return Call(tok.pos, tok.value, args)
            return Fact(tok.pos, tok.value)
        if tok.kind == "op" and tok.value == "(":
            node = self.parse_or()
            self.expect("op", ")", "')'")
            return node
        if tok.kind == "op" and tok.value == "[":
            items: list[Node] = []
            if self.accept("op", "]") is None:
                items.append(self.parse_or())
                while self.accept("op", ",") is not None:
                    items.append(self.parse_or())
                self.expect("op", "]", "']' to close the list")
            return ListLit(tok.pos, items)
        raise ExprError(f"expected a value, found {self._describe(tok)}", tok.pos)


def parse(text: str) -> Node:
    """Parse an expression into an AST (not yet type-checked)."""
    if not isinstance(text, str):
        raise ExprError("the expression must be text", 0)
    return _Parser(text).parse()


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


def today_utc() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()
