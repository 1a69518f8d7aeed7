"""HTTP blueprints: enrolment, report ingest, read APIs, OpenAPI, health and metrics."""
