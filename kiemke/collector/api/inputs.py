"""Bounds on every request input, applied once for the whole app (not route by route).

- JSON bodies: Flask's JSON provider is kiemke's bounded loader (kiemke/collector/
  jsoninput.py), so `request.get_json()` anywhere refuses deep nesting, NaN/Infinity,
  integers past 64 bits, U+0000 and lone surrogates with a 400 naming the field, and
  returns text in NFC.
- Query and form parameters: text in NFC; a parameter holding U+0000 is refused (400
  `invalid_parameter` naming it) instead of reaching the database (PostgreSQL refuses
  NUL in text where SQLite stores it: the backends would answer differently).
- Path parameters: `<int:...>` only matches ids a database integer column can hold
  (larger ones are 404, never an OverflowError); text parameters are NFC and never hold
  U+0000.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Request
from flask.json.provider import DefaultJSONProvider
from werkzeug.datastructures import ImmutableMultiDict, iter_multi_items
from werkzeug.routing import BaseConverter, IntegerConverter, PathConverter, ValidationError

from kiemke.collector.api.errors import ApiError
from kiemke.collector.jsoninput import JsonInputError, load_json, nfc


class BoundedJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return load_json(s)


class NFCParameters(ImmutableMultiDict):  # type: ignore[type-arg]
    """Query/form parameters: NFC text, and no U+0000."""

    def __init__(self, mapping: Any = None) -> None:
        items = []
        for key, value in iter_multi_items(mapping or ()):
            if isinstance(value, str):
                if "\x00" in value or "\x00" in key:
                    raise ApiError(400, "invalid_parameter", nfc(key.replace("\x00", "")),
                                   f"the parameter {key!r} contains U+0000, which is not text")
                value = nfc(value)
            items.append((nfc(key), value))
        super().__init__(items)


class KiemkeRequest(Request):
    parameter_storage_class = NFCParameters

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        if e is None:
            raise ApiError(415, "unsupported_media_type", "Content-Type",
                           "send the body as JSON with 'Content-Type: application/json'")
        if isinstance(e, JsonInputError):
            raise ApiError(400, e.error, e.field, e.message)
        raise ApiError(400, "malformed_json", "body", f"the body is not valid JSON ({e})")


# Integer primary keys (units.id, waivers.id, ...) are 32-bit signed on PostgreSQL.
MAX_ID = 2**31 - 1
# 0 .. 2147483647 as a regex, digit by digit.
_UP_TO_MAX_ID = (r"(?:\d{1,9}|1\d{9}|20\d{8}|21[0-3]\d{7}|214[0-6]\d{6}|2147[0-3]\d{5}"
                 r"|21474[0-7]\d{4}|214748[0-2]\d{3}|2147483[0-5]\d{2}|21474836[0-3]\d"
                 r"|214748364[0-7])")


class BoundedIntConverter(IntegerConverter):
    """<int:id> within what an id column holds: a larger number matches no route (404)
    and never reaches the database. The bound is in the regex, not in to_python: a value
    the regex matches but to_python refuses makes werkzeug answer 405 for the routes of
    the other methods on the same path."""

    regex = _UP_TO_MAX_ID


class NFCStringConverter(BaseConverter):
    def to_python(self, value: str) -> str:
        if "\x00" in value:
            raise ValidationError()
        return nfc(value)


class NFCPathConverter(PathConverter):
    def to_python(self, value: str) -> str:
        if "\x00" in value:
            raise ValidationError()
        return nfc(value)


def init_app(app: Flask) -> None:
    """Before any blueprint is registered (the converters are looked up at registration)."""
    app.request_class = KiemkeRequest
    app.json = BoundedJSONProvider(app)
    app.url_map.converters.update(int=BoundedIntConverter, default=NFCStringConverter,
                                  string=NFCStringConverter, path=NFCPathConverter)
