"""Schemathesis hooks for tests/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS).

Generated report bodies get the enrolled machine's id and, where the generated
`collected_at` is a string, the current time, so that schema-valid reports reach storage
(otherwise every one would stop at 403 machine_mismatch, or at 400 clock_skew for a date
outside the collector's window, and the ingest path past those checks would go untested).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

import schemathesis

MACHINE_ID = os.environ.get("KIEMKE_FUZZ_MACHINE_ID", "")


@schemathesis.hook
def map_body(ctx: Any, body: Any) -> Any:
    if ctx.operation.path == "/api/v1/reports" and isinstance(body, dict) \
            and isinstance(body.get("identity"), dict) and MACHINE_ID:
        body["identity"]["machine_id"] = MACHINE_ID
        if isinstance(body.get("collected_at"), str):
            body["collected_at"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return body
