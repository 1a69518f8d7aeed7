"""The rule expression language, part 1: tokens, the AST and the parser.

`parse(text)` gives an AST that is not yet type-checked (kiemke.compliance.expr_check);
kiemke.compliance.expr turns checked ASTs into Python. Errors are ExprError with the
0-based character position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


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

