"""The one JSON loader for request bodies: bounds that hold on both databases, text in NFC.

Every JSON body the collector accepts goes through `load_json` (the report route calls it
directly; every other route through Flask's `request.get_json()`, whose provider is
`BoundedJSONProvider`). What it refuses, with a `JsonInputError` naming the field:

- nesting deeper than MAX_DEPTH (Python's decoder would raise RecursionError);
- NaN, Infinity and numbers that overflow to them (1e999): JSON has no such values and
  PostgreSQL's jsonb refuses them while SQLite stored them, so the backends disagreed;
- integers outside the signed 64-bit range (no column or fact holds more);
- strings (or object keys) holding U+0000 or a lone UTF-16 surrogate (\\ud800): neither
  is text, PostgreSQL refuses both, and the surrogate cannot even be encoded as UTF-8.

It also returns every string normalised to Unicode NFC (a name typed in NFD with Unikey's
"Unicode tổ hợp" must match the same name typed in NFC).

Cost: the common body (an agent's periodic report, ASCII or NFC text, shallow) costs a
hook call per number and a few C-speed scans of the raw text beside the parse; the walk
over the parsed value runs only when a scan says a problem (or NFD text) may be there.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

MAX_DEPTH = 64
INT_MAX = 2**63 - 1
INT_MIN = -(2**63)
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
# \u0000 or \ud800-\udfff escapes; a false hit (an escaped backslash before "u") only
# costs the exact walk.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class JsonInputError(ValueError):
    """A body that is not acceptable JSON; `field` is the JSON path ("body" for all of it)."""

    def __init__(self, field: str, message: str, error: str = "invalid_field") -> None:
        super().__init__(message)
        self.field, self.message, self.error = field, message, error


class _Refused(Exception):
    pass


def _refuse_constant(_name: str) -> Any:
    raise _Refused


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999
        raise _Refused
    return value


def _bounded_int(text: str) -> int:
    value = int(text)
    if len(text) > 18 and not INT_MIN <= value <= INT_MAX:
        raise _Refused
    return value


# Built once: json.loads() with hooks would build a decoder (and its C scanner) per call.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float,
                            parse_int=_bounded_int)

def load_json(raw: bytes | str) -> Any:
    """Parse a request body; raise JsonInputError (field named) for anything refused."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonInputError("body", f"the body is not UTF-8 (byte {exc.start})",
                                 "malformed_json") from None
    else:
        text = raw
    try:
        value = _DECODER.decode(text)
    except _Refused:
        # Parse again with plain numbers, to name the field that holds the value. The
        # refused number may come before a syntax error (a truncated body): then that
        # error is what the client must hear about.
        try:
            plain = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise JsonInputError("body", f"the body is not valid JSON ({exc})",
                                 "malformed_json") from None
        _raise_first_problem(plain)
        raise JsonInputError("body", "the body holds a number JSON cannot carry (NaN, "
                             "Infinity or beyond 64 bits)") from None
    except RecursionError:
        raise JsonInputError("body", f"the body is nested deeper than {MAX_DEPTH} levels",
                             "malformed_json") from None
    except ValueError as exc:
        raise JsonInputError("body", f"the body is not valid JSON ({exc})",
                             "malformed_json") from None
    encoded = raw if isinstance(raw, bytes) else text.encode("utf-8", "surrogatepass")
    if encoded.count(b"[") + encoded.count(b"{") > MAX_DEPTH:
        _check_depth(encoded)
    if b"\\u" in encoded and _SUSPECT_ESCAPE.search(encoded):
        _raise_first_problem(value)
    # Non-ASCII text (or escapes of it): normalised unless it is NFC already.
    if "\\u" in text or (not text.isascii() and not unicodedata.is_normalized("NFC", text)):
        value = nfc_value(value)
    return value


def _check_depth(encoded: bytes) -> None:
    depth = 0
    for match in _TOKENS.finditer(encoded):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                raise JsonInputError("body", f"the body is nested deeper than {MAX_DEPTH} "
                                     f"levels", "malformed_json")
        elif token in (b"]", b"}"):
            depth -= 1


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains the character U+0000, which is not text"
    if _LONE_SURROGATE.search(text):
        return "contains a lone UTF-16 surrogate (like \\ud800), which is not text"
    return None


def _raise_first_problem(value: Any) -> None:
    """Walk `value` (iteratively: depth is bounded by the caller) and raise for the first
    refused item, naming its JSON path."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                raise JsonInputError(path or "body", f"{path or 'the body'} {problem}")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT_MIN <= item <= INT_MAX:
                raise JsonInputError(path or "body", f"{path or 'the body'} is a whole number "
                                     f"outside the range -2^63..2^63-1")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise JsonInputError(path or "body", f"{path or 'the body'} is NaN or "
                                     f"Infinity, which JSON does not have")
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                problem = _text_problem(key)
                if problem:
                    raise JsonInputError(path or "body",
                                         f"a key of {path or 'the body'} {problem}")
                stack.append((_path(path, key), child))
        elif isinstance(item, list):
            stack.extend((_path(path, i), child) for i, child in reversed(list(enumerate(item))))


def nfc(text: str) -> str:
    """`text` in Unicode NFC (cheap for text that is NFC already)."""
    if text.isascii() or unicodedata.is_normalized("NFC", text):
        return text
    return unicodedata.normalize("NFC", text)


def nfc_value(value: Any) -> Any:
    """A copy of a JSON value with every string (keys included) in NFC."""
    if isinstance(value, str):
        return nfc(value)
    if isinstance(value, dict):
        return {nfc(k): nfc_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nfc_value(v) for v in value]
    return value
