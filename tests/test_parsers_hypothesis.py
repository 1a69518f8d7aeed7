"""Property tests for the collector-side parsers: whatever the input, only the documented
error type escapes (issue 11, "Hypothesis property tests for every parser").

- asset register CSV (`parse_register`): RegisterError, with file and line;
- rule files (`load_rules` over a file we write): RuleLoadError;
- settings durations and sizes (`parse_duration`, `parse_size`) and rule durations
  (`rule_loader.parse_duration`): ValueError;
- request bodies (`load_json`): JsonInputError.
Bounded: 100 examples per property, ~30 s for the file on an idle machine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiemke.collector.assets.csv_import import RegisterError, parse_register
from kiemke.collector.config import parse_duration, parse_size
from kiemke.collector.jsoninput import JsonInputError, load_json
from kiemke.collector.units import Unit
from kiemke.compliance.config import DEFAULT_DEPRECIATION
from kiemke.compliance.rule_loader import load_rules
from kiemke.compliance.rule_loader import parse_duration as rule_duration
from kiemke.compliance.rules import RuleLoadError

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
UNITS = [Unit(1, None, "Liên đoàn Lao động tỉnh Bắc Giang", "LDLD-BG",
              "Liên đoàn Lao động tỉnh Bắc Giang", 0)]
HEADER = "asset_tag,serial,hostname,category,purchase_date,cost,unit,description\n"
TODAY = dt.date(2026, 12, 1)

# Text that looks like a register: the real header, then rows of odd cells.
CELL = st.one_of(st.text(max_size=20), st.sampled_from(
    ["", "01/02/2020", "2020-02-31", "32/13/2020", "15.000.000", "-5", "1e999", "\x00",
     "\ud800", "Máy tính để bàn", "desktop_computer", "LDLD-BG", '"', "\r", "\n", ";"]))
ROWS = st.lists(st.lists(CELL, min_size=0, max_size=9), max_size=6)


def _csv(rows: list[list[str]], delimiter: str) -> str:
    return HEADER.replace(",", delimiter) + "".join(delimiter.join(r) + "\n" for r in rows)


@SETTINGS
@given(rows=ROWS, delimiter=st.sampled_from([",", ";", "\t"]),
       encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "cp1258",
                                 "latin-1"]), cut=st.integers(min_value=0, max_value=400))
def test_register_csv_raises_only_register_error(rows, delimiter, encoding, cut) -> None:
    errors = "surrogatepass" if encoding.startswith("utf") else "replace"
    data = _csv(rows, delimiter).encode(encoding, errors)
    for sample in (data, data[:cut], data[:-1] if len(data) % 2 == 0 else data + b"\x00"):
        try:
            parse_register(sample, "assets.csv", DEFAULT_DEPRECIATION.categories, UNITS,
                           today=TODAY)
        except RegisterError as exc:
            assert all(p.file == "assets.csv" for p in exc.problems)


@SETTINGS
@given(st.binary(max_size=300))
def test_register_csv_bytes_raise_only_register_error(data: bytes) -> None:
    with contextlib.suppress(RegisterError):
        parse_register(data, "assets.csv", DEFAULT_DEPRECIATION.categories, UNITS, today=TODAY)


RULE_TEMPLATE = """rules:
  - id: {id}
    title: {{vi: "{title}", en: "x"}}
    source: {{plan: "p", document: "d", seed: "{seed}", quote: "q"}}
    scope: {scope}
    condition: {condition}
    target: {target}
    severity: {severity}
    grace: {grace}
    reason: {{vi: "r", en: "r"}}
"""
YAML_SCALAR = st.one_of(st.text(max_size=15), st.sampled_from(
    ["all", "unit", "true", "[", "{", "!!python/object:os.system", "*a", "&a x", "1e999",
     "-1", "2.5", "'", '"', "\\ud800", "network.networked and", "7d", "10y", "null"]))


@SETTINGS
@given(fields=st.fixed_dictionaries({k: YAML_SCALAR for k in (
    "id", "title", "seed", "scope", "condition", "target", "severity", "grace")}),
    garbage=st.one_of(st.none(), st.text(max_size=40), st.sampled_from(
        ["[" * 2000, "- " * 500, "\t", "\x00", "\ufeff"])))
def test_rule_files_raise_only_rule_load_error(fields, garbage) -> None:
    text = RULE_TEMPLATE.format(**fields) if garbage is None else garbage
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.yml"
        path.write_text(text, "utf-8", "surrogatepass")
        with contextlib.suppress(RuleLoadError):
            load_rules([path])


@SETTINGS
@given(st.one_of(st.text(max_size=20), st.from_regex(r"\s*-?[0-9]{0,400}(\.[0-9]*)?\s*"
                                                      r"[smhdwkKmMiIbB]{0,3}\s*")))
def test_setting_durations_and_sizes_raise_only_value_error(text: str) -> None:
    for parse in (parse_duration, parse_size):
        with contextlib.suppress(ValueError):
            parse(text)


@SETTINGS
@given(st.one_of(st.text(max_size=20), st.integers(), st.floats(allow_nan=True),
                 st.booleans(), st.none(), st.lists(st.integers(), max_size=2)))
def test_rule_durations_raise_only_value_error(value) -> None:
    try:
        seconds = rule_duration(value)
    except ValueError:
        return
    assert isinstance(seconds, int) and seconds >= 0


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
              st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=20)


@SETTINGS
@given(value=JSON_VALUES, depth=st.integers(min_value=0, max_value=200),
       cut=st.integers(min_value=0, max_value=200))
def test_request_bodies_raise_only_json_input_error(value, depth, cut) -> None:
    text = "[" * depth + json.dumps(value, allow_nan=True) + "]" * depth
    for sample in (text.encode("utf-8", "surrogatepass"), text[:cut].encode("utf-8",
                                                                           "surrogatepass")):
        try:
            loaded = load_json(sample)
        except JsonInputError as exc:
            assert exc.field and exc.message
        else:
            # What is accepted can be stored on both databases.
            json.dumps(loaded, allow_nan=False).encode("utf-8")
            assert "\\u0000" not in json.dumps(loaded)
