"""machines.results_digest: one hash of a machine's results, so that a full re-evaluation
compares one value per machine instead of every result row.

The digest is `digest(unit_id, signature(parts))` where `parts` are the machine's
`result_part()`s in rule-id order. The per-report path (kiemke.collector.evaluation.
store.ResultWriter, via `results_digest`) goes through these functions; the bulk
path's generated function (kiemke.collector.evaluation.signatures.compile_digest)
builds its parts with `result_part` and hashes the same bytes, ROW-joined after the
unit id, and test_compiled_digest_is_the_digest_of_evaluate_machine holds the two
equal. A digest that does not match only sends the machine down the full comparison:
never a wrong result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

Outcome = tuple[str, "str | None"]  # (result, reason)

FIELD, ROW, NULL = "\x1f", "\x1e", "\x1d"  # separators no rule id or reason contains


def result_part(rule_id: str, result: str, reason: str | None) -> str:
    """One rule's share of a machine's results signature."""
    return f"{rule_id}{FIELD}{result}{FIELD}{NULL if reason is None else reason}"


def signature(parts: Iterable[str]) -> str:
    """The signature of a machine's results: its result parts, in rule-id order."""
    return ROW.join(parts)


def digest(unit_id: int, sig: str) -> str:
    """The stored digest of a machine in `unit_id` whose results have signature `sig`."""
    return hashlib.blake2b(f"{unit_id}{ROW}{sig}".encode(), digest_size=16).hexdigest()


def results_digest(unit_id: int, results: Mapping[str, Outcome]) -> str:
    """machines.results_digest of a machine whose rule_results rows are `results`."""
    return digest(unit_id, signature(result_part(rule_id, *results[rule_id])
                                     for rule_id in sorted(results)))
