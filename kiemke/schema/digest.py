"""facts_digest and the unchanged form of a report (docs/report-format.md, "Unchanged
reports"): shared by the agent, which computes and sends them, and the bench and tests.

The digest covers every section of the report (everything but the envelope), as
canonical JSON: keys sorted, compact separators, UTF-8 kept as is, without the VOLATILE
keys below. Two reports with the
same sections have the same digest whatever their report_id, times or counter.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

# What is not facts: the envelope of a report, different for every report.
ENVELOPE = ("schema_version", "report_id", "kind", "collected_at", "sent_at", "sequence",
            "agent")
NOT_SECTIONS = frozenset((*ENVELOPE, "facts_digest", "unchanged"))


# Measurements of the moment, different at every report, that no rule reads (probe
# timings): left out of the digest, or no report would ever be unchanged. An unchanged
# report's stored sections keep those of the last report sent in full.
VOLATILE = frozenset(("latency_ms",))


def _without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value


def facts_digest(report: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of the report's sections, VOLATILE left out."""
    sections = {k: _without_volatile(v) for k, v in report.items() if k not in NOT_SECTIONS}
    text = json.dumps(sections, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def unchanged_form(report: dict[str, Any]) -> dict[str, Any]:
    """The report as sent when the collector already holds its sections: the envelope,
    identity (which machine: checked against the credential) and the digest."""
    out = {k: report[k] for k in ENVELOPE if k in report}
    out["identity"] = report["identity"]
    out["facts_digest"] = report["facts_digest"]
    out["unchanged"] = True
    return out
