"""POST /api/v1/reports: the hot path. Auth, size limits, parse, then the ingest pipeline."""

from __future__ import annotations

import time
import zlib

from flask import Blueprint, current_app, jsonify, request

from kiemke.collector.api.auth import authenticate_agent
from kiemke.collector.api.errors import ApiError
from kiemke.collector.jsoninput import JsonInputError, load_json

bp = Blueprint("reports", __name__)


def _too_large(limit: int, what: str) -> ApiError:
    return ApiError(413, "body_too_large", "body",
                    f"the {what} is larger than the {limit} bytes the collector accepts; "
                    f"raise KIEMKE_MAX_BODY_BYTES on the collector if such reports are expected")


def _read_body(limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit, "request body")
    raw = request.get_data(cache=False)
    if len(raw) > limit:
        raise _too_large(limit, "request body")
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding != "gzip":
        raise ApiError(415, "unsupported_content_encoding", "Content-Encoding",
                       "only 'Content-Encoding: gzip' (or none) is accepted")
    # Bounded inflate: a small gzip bomb must not expand to gigabytes in memory.
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise ApiError(400, "malformed_gzip", "body",
                       "the body is marked gzip but is not valid gzip data") from None
    if len(body) > limit or inflater.unconsumed_tail:
        raise _too_large(limit, "decompressed request body")
    if not inflater.eof:
        raise ApiError(400, "malformed_gzip", "body", "the gzip body is truncated")
    if inflater.unused_data:
        # A second gzip member or trailing bytes: refused rather than silently dropped
        # (an agent sends exactly one member).
        raise ApiError(400, "malformed_gzip", "body",
                       "the gzip body has bytes after its end (trailing data or a second "
                       "gzip member); send exactly one gzip member")
    return body


@bp.post("/api/v1/reports")
def post_report():
    ext = current_app.extensions["kiemke"]
    started = time.perf_counter()
    try:
        agent = authenticate_agent()
        if request.mimetype != "application/json":
            raise ApiError(415, "unsupported_media_type", "Content-Type",
                           "send the report as JSON with 'Content-Type: application/json'")
        body = _read_body(ext.config.max_body_bytes)
        try:
            report = load_json(body)
        except JsonInputError as exc:
            raise ApiError(400, exc.error, exc.field, exc.message) from None
        # validate -> unchanged -> store -> assets -> evaluate -> changes
        # (kiemke.collector.pipeline)
        outcome = ext.pipeline.run(agent, report)
    except ApiError as exc:
        ext.ingest_metrics.rejected(exc.error, time.perf_counter() - started)
        raise
    if outcome.stored:
        ext.ingest_metrics.done("accepted", time.perf_counter() - started)
        ext.ingest_metrics.agent_spool_errors.inc(
            len(report.get("agent", {}).get("spool_errors", ())))
        answer = {"status": "accepted", "report_id": report["report_id"]}
        # The digest the collector now holds as this machine's facts: the agent may send
        # the next report with the same sections as `unchanged` (docs/report-format.md).
        if outcome.unchanged:
            answer["facts"] = "unchanged"
            answer["facts_digest"] = report["facts_digest"]
        elif outcome.facts_digest is not None:
            answer["facts_digest"] = outcome.facts_digest
        resp = jsonify(answer)
        resp.status_code = 202
        return resp
    ext.ingest_metrics.done("duplicate", time.perf_counter() - started)
    return jsonify({"status": "duplicate", "report_id": report["report_id"]})
