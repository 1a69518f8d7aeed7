"""The report validator (kiemke.collector.validation.compile_validator) is fastjsonschema's
generated code with its error names built by f-strings instead of format(**locals()):
it must accept and refuse exactly what fastjsonschema's own compile does, with the same
error (message, field name, rule, value), so the 400 answers name the same field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import fastjsonschema
import pytest
from reports import make_report

from kiemke.collector.validation import check_report, compile_validator
from kiemke.schema import SCHEMA_VERSION, load_schema

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """Set report[path] (dots and [index]) to value."""
    keys: list[Any] = []
    for part in path.replace("[", ".[").split("."):
        keys.append(int(part[1:-1]) if part.startswith("[") else part)

    def mutate(report: dict[str, Any]) -> None:
        target: Any = report
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return mutate


# Mostly inside array items: where the generated code names the item by its index.
CASES: list[tuple[str, Mutation, str]] = [
    ("disk-model-too-long", _set("hardware.disks[0].model", "x" * 600),
     "hardware.disks[0].model"),
    ("disk-model-wrong-type", _set("hardware.disks[0].model", 5), "hardware.disks[0].model"),
    ("evidence-date", _set("hardware.manufacture_date.evidence[1].date", "02/11/2019"),
     "hardware.manufacture_date.evidence[1].date"),
    ("av-vendor", _set("antivirus.products[1].vendor", ["Bkav"]),
     "antivirus.products[1].vendor"),
    ("av-signatures-date", _set("antivirus.products[0].signatures_date", "yesterday"),
     "antivirus.products[0].signatures_date"),
    ("av-licence-expiry", _set("antivirus.products[0].licence_expiry", "2025-3-31"),
     "antivirus.products[0].licence_expiry"),
    ("av-unknown-key", _set("antivirus.products[1].colour", "red"),
     "antivirus.products[1].colour"),
    ("iface-mac", _set("network.interfaces[0].mac", 12), "network.interfaces[0].mac"),
    ("iface-dhcp-lease", _set("network.interfaces[0].dhcp", {"lease_obtained": "soon"}),
     "network.interfaces[0].dhcp.lease_obtained"),
    ("printer-port", _set("printers", {"printers": [{"name": "HP", "port": 9100}]}),
     "printers.printers[0].port"),
    ("certificate-not-after", _set("signing", {"certificates": [
        {"store": "user", "not_after": "2030-13", "can_sign": True}]}),
     "signing.certificates[0].not_after"),
    ("spool-error-at", _set("agent", {"spool_errors": [
        {"at": "now", "path": "/x", "message": "disk full"}]}), "agent.spool_errors[0].at"),
    ("probe-error", _set("network.checks", {"gateway": {"ok": False, "probes": [
        {"target": "10.0.0.1", "method": "icmp", "ok": False, "error": 3}]}}),
     "network.checks.gateway.probes[0].error"),
    ("missing-hostname", lambda r: r["identity"].pop("hostname"), "identity.hostname"),
    ("report-id", _set("report_id", "not-a-uuid"), "report_id"),
    ("missing-section", lambda r: r.pop("network"), "network"),
]


@pytest.fixture(scope="module")
def validators() -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    return compile_validator(), fastjsonschema.compile(load_schema(SCHEMA_VERSION))


def test_the_rewritten_code_is_the_one_in_use(validators) -> None:
    # compile_validator falls back to fastjsonschema.compile when the rewrite leaves a
    # format(**locals()) behind: then the faster code is not what runs.
    assert validators[0].__code__.co_filename == "<report-v1 schema>"


def test_a_valid_report_passes_both() -> None:
    report = make_report()
    fast, plain = compile_validator(), fastjsonschema.compile(load_schema(SCHEMA_VERSION))
    assert fast(copy.deepcopy(report)) == plain(copy.deepcopy(report)) == report


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_errors_are_fastjsonschemas_own(validators, case) -> None:
    _id, mutate, field = case
    fast, plain = validators
    report = make_report()
    mutate(report)
    with pytest.raises(fastjsonschema.JsonSchemaValueException) as ours:
        fast(report)
    with pytest.raises(fastjsonschema.JsonSchemaValueException) as theirs:
        plain(report)
    assert (ours.value.message, ours.value.name, ours.value.rule, ours.value.value) == \
        (theirs.value.message, theirs.value.name, theirs.value.rule, theirs.value.value)
    problem = check_report(fast, report)
    assert problem is not None and problem == check_report(plain, report)
    assert problem.field == field
