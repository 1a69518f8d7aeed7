"""The expression language: parsing, type errors with positions, Kleene logic, functions."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from kiemke.compliance import expr
from kiemke.compliance.facts import FACTS
from kiemke.compliance.values import BOOL, LIST, NUMBER, STRING, FactDef

REG = {
    "a": FactDef(BOOL, ""), "b": FactDef(BOOL, ""),
    "n": FactDef(NUMBER, ""), "m": FactDef(NUMBER, ""),
    "s": FactDef(STRING, ""), "names": FactDef(LIST, ""),
    "d": FactDef("date", ""), "now": FactDef("date", ""),
    "antivirus.licensed": FactDef(BOOL, ""),
}


def ev(text: str, facts: dict) -> object:
    return expr.evaluate(text, facts, REG)


def error(text: str, registry: dict = REG) -> expr.ExprError:
    with pytest.raises(expr.ExprError) as info:
        expr.compile_expr(text, registry, want=None)
    return info.value


# Kleene truth tables; None is unknown (a missing fact).
VALUES = (True, False, None)


def kleene_and(x: bool | None, y: bool | None) -> bool | None:
    if x is False or y is False:
        return False
    return None if x is None or y is None else True


def kleene_or(x: bool | None, y: bool | None) -> bool | None:
    if x is True or y is True:
        return True
    return None if x is None or y is None else False


@pytest.mark.parametrize(("x", "y"), list(itertools.product(VALUES, VALUES)))
def test_three_valued_and_or(x: bool | None, y: bool | None) -> None:
    facts = {k: v for k, v in (("a", x), ("b", y)) if v is not None}
    assert ev("a and b", facts) is kleene_and(x, y)
    assert ev("a or b", facts) is kleene_or(x, y)


@pytest.mark.parametrize("x", VALUES)
def test_not_and_literals_mix_with_unknown(x: bool | None) -> None:
    facts = {} if x is None else {"a": x}
    assert ev("not a", facts) is (None if x is None else not x)
    assert ev("a and false", facts) is False
    assert ev("true or a", facts) is True
    assert ev("a or false", facts) is (None if x is None else x)


def test_exists_is_never_unknown() -> None:
    assert ev("exists(a)", {}) is False
    assert ev("exists(a)", {"a": False}) is True
    assert ev("not exists(antivirus.licensed) or antivirus.licensed", {}) is True


def test_comparisons_and_arithmetic() -> None:
    assert ev("n >= 4", {"n": 4}) is True
    assert ev("n > 4", {"n": 4}) is False
    assert ev("n * 2 + 1 == 9", {"n": 4}) is True
    assert ev("n / m", {"n": 3, "m": 0}) is None  # division by zero is unknown, not a crash
    assert ev("(n - m) / 2", {"n": 9, "m": 1}) == 4
    assert ev("-n < 0", {"n": 1}) is True
    assert ev("n < 4", {}) is None
    assert ev("s == \"Văn phòng\"", {"s": "Văn phòng"}) is True
    assert ev("s != 'x'", {"s": "x"}) is False
    assert ev("d < now", {"d": dt.date(2024, 1, 1), "now": dt.date(2024, 1, 2)}) is True


def test_in_and_not_in() -> None:
    assert ev('s in ["in_service", "fully_depreciated"]', {"s": "in_service"}) is True
    assert ev('s not in ["in_service"]', {"s": "in_service"}) is False
    assert ev('"Wazuh agent" in names', {"names": ["Wazuh agent"]}) is True
    assert ev("n in [1, 2, 3]", {"n": 2}) is True
    assert ev('s in ["a"]', {}) is None


def test_durations_are_days() -> None:
    assert ev("n <= 7d", {"n": 7}) is True
    assert ev("n <= 2w", {"n": 15}) is False
    assert ev("n == 12h * 2", {"n": 1}) is True


def test_functions() -> None:
    facts = {"names": ["Kaspersky Endpoint Security", "Windows Defender"], "s": "Bkav Pro",
             "d": dt.date(2024, 1, 1), "now": dt.date(2024, 3, 1), "n": 3}
    assert ev("len(names) == 2", facts) is True
    assert ev('contains(lower(s), "bkav")', facts) is True
    assert ev('startswith(s, "Bkav")', facts) is True
    assert ev('any_of(names, ["Windows Defender", "ClamAV"])', facts) is True
    assert ev("days_since(d) == 60", facts) is True  # 2024 is a leap year
    assert ev("days_since(d) > 0", {"d": dt.date(2024, 1, 1)}) is None  # no `now`
    assert ev("coalesce(m, n) == 3", facts) is True
    assert ev("min(n, 10) + max(n, 10) == 13", facts) is True
    assert ev("len(names) > 0", {}) is None


@pytest.mark.parametrize(("text", "message", "pos"), [
    ("antivirus.licenced", "unknown fact 'antivirus.licenced' (did you mean "
                           "'antivirus.licensed'?)", 0),
    ('s == 4', "cannot compare string with number", 2),
    ("a and n", "'and' needs true/false values on both sides, got number", 6),
    ("n + s", "'+' needs numbers on both sides, got string", 2),
    ("not n", "'not' needs a true/false value, got number", 0),
    ("n < 1 < 2", "comparisons cannot be chained", 6),
    ("n = 1", "unexpected character '=' (use == to compare)", 2),
    ("a && b", "write 'and' / 'or'", 2),
    ("(a and b", "expected ')'", 8),
    ("a b", "unexpected 'b'", 2),
    ("", "the expression is empty", 0),
    ('s == "abc', "text in quotes is not closed", 5),
    ("s == null", "null is not a value here", 5),
    ("open(s)", "unknown function 'open'", 0),
    ("len(n)", "wrong arguments for len", 0),
    ("exists(1)", "exists() takes one fact name", 0),
    ("a()", "'a' is a fact, not a function", 0),
    ('s in "abc"', "the right side of 'in' must be a list", 5),
    ('n in ["a"]', "cannot look for a number in a list[string]", 2),
    ('[1, "a"] == names', "a list must hold only texts or only numbers", 0),
])
def test_errors_name_the_problem_and_position(text: str, message: str, pos: int) -> None:
    exc = error(text)
    assert message in exc.message
    assert exc.pos == pos


def test_condition_must_be_boolean() -> None:
    with pytest.raises(expr.ExprError, match="must give bool"):
        expr.compile_expr("n + 1", REG, want=BOOL)


def test_rule_text_never_becomes_code() -> None:
    # Strings that look like Python stay data: the generator writes them with repr().
    payload = "') or __import__('os').system('false') or ('"
    node = expr.compile_expr(f's == "{payload}"', REG)
    fn = expr.compile_function(node)
    assert fn({"s": payload}) is True
    assert fn({"s": "x"}) is False
    # Names outside the registry and dunder attribute tricks are rejected at check time.
    assert "unknown fact" in error("__import__.os").message
    assert "unknown function" in error("__import__(s)").message
    assert "__builtins__" in expr.CodeGen().namespace()
    assert expr.CodeGen().namespace()["__builtins__"] == {}


def test_fact_names_and_canonical_form() -> None:
    a = expr.compile_expr("a   and (n>=4)", REG)
    b = expr.compile_expr("a and n >= 4", REG)
    assert expr.canonical(a) == expr.canonical(b)
    assert expr.fact_names(b) == ["a", "n"]
    assert expr.fact_names(expr.compile_expr("days_since(d) > 1", REG)) == ["now", "d"]


def test_every_registered_fact_has_a_known_type() -> None:
    assert {f.type for f in FACTS.values()} <= {"bool", "number", "string", "date",
                                                 "list[string]"}
