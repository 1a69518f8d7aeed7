"""The parts of the OpenAPI document that hold for every route, added in one place.

- The report schema (kiemke/schema/report-v1.json) is inlined: its `$defs` become
  components `Report.<name>` and its `$id` is dropped, so every `$ref` resolves inside
  the document (a client or a fuzzer can build a report body from it).
- The answers every route can give are documented on every route, whichever part of
  the collector added it: 503 where the database is used (database_unavailable, with
  Retry-After), 401 where a credential is required, 400 where parameters or a body are
  read, 413 and 415 where a body is read; 414 and 431 everywhere (the server refuses a
  request line or headers over its limits before any route sees them).
"""

from __future__ import annotations

import copy
from typing import Any

from kiemke.schema import load_schema

# Routes that never touch the database.
NO_DATABASE = {"/healthz", "/api/v1/openapi.json"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def inline_report_schema(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    report = copy.deepcopy(load_schema())
    report.pop("$id", None)
    report.pop("$schema", None)
    defs = report.pop("$defs", {})

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                node["$ref"] = "#/components/schemas/Report." + ref.removeprefix("#/$defs/")
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)
        return node

    for name, schema in defs.items():
        schemas[f"Report.{name}"] = rewrite(schema)
    schemas["Report"] = rewrite(report)


def add_common_responses(document: dict[str, Any]) -> None:
    unavailable = _error("The database does not answer (database_unavailable); nothing "
                         "was stored; retry after the Retry-After header's seconds")
    unavailable["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                              "description": "seconds to wait"}}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if path not in NO_DATABASE:
                responses.setdefault("503", unavailable)
            responses.setdefault("414", _error("Request line (path and query) longer than "
                                               "the server accepts (field: path)"))
            responses.setdefault("431", _error("Request headers larger than the server "
                                               "accepts (field: headers)"))
            if operation.get("security"):
                responses.setdefault("401", _error("Missing, wrong or revoked credential "
                                                   "(field: Authorization)"))
            if operation.get("parameters") or "requestBody" in operation:
                responses.setdefault("400", _error("A parameter or the body is invalid "
                                                   "(field names it)"))
            if "requestBody" in operation or method in ("post", "put", "patch"):
                responses.setdefault("413", _error("Body larger than KIEMKE_MAX_BODY_BYTES"))
                responses.setdefault("415", _error("Body is not application/json"))


def complete(document: dict[str, Any]) -> None:
    inline_report_schema(document)
    add_common_responses(document)
