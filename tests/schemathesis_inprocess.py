"""Schemathesis' engine against the collector's Flask app in this process (WSGI transport).

Run by tests/test_schemathesis.py as a subprocess (several at once, for volume):

    python tests/schemathesis_inprocess.py CONFIG.json RESULT.json

(started before CONFIG exists; it waits for the file).

CONFIG holds the database URL, data directory, credentials, machine id, seed, phases,
the number of requests (over all runs sharing `counts_dir`) to stop at and the time
(epoch seconds) to stop by. The schema is the one the app serves (GET
/api/v1/openapi.json through the same WSGI app), the checks are the same as the HTTP
run's. Every request the app answers is recorded by a WSGI middleware (method, path,
status), independently of schemathesis' own bookkeeping; RESULT gets those, every
failed check and every engine error.

Why in-process: over HTTP each generated case costs the fuzzer's CPU plus the HTTP
client's, gunicorn's and the access log's on the same two cores; in-process only the
fuzzer and the application itself remain (about 6-7 ms of CPU per request against
about 15 ms), which is what makes 10,000 requests fit in the test's time bound.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import schemathesis
from schemathesis.engine import Status, events, from_schema
from schemathesis.transport import wsgi as st_wsgi

START_WAIT = 300.0  # seconds to wait for CONFIG (the test writes it once the data is seeded)
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance")
OFF = ("negative_data_rejection", "positive_data_acceptance", "missing_required_header",
       "unsupported_method", "use_after_free", "ensure_resource_availability",
       "ignored_auth", "allow_header_conformance")


def _patch_wsgi_transport() -> None:
    """schemathesis 4.32 passes the socket options (max_redirects, verify, cert) to
    werkzeug's test client when the session is not a requests.Session, which raises
    TypeError for every case of such an operation; they mean nothing in-process."""
    send = st_wsgi.WSGITransport.send

    def patched(self: Any, case: Any, *, session: Any = None, **kwargs: Any) -> Any:
        for name in ("max_redirects", "verify", "cert", "proxies"):
            kwargs.pop(name, None)
        return send(self, case, session=session, **kwargs)

    st_wsgi.WSGITransport.send = patched  # type: ignore[method-assign]


class Recorder:
    """WSGI middleware: records (method, path, status) of every answer. Every 50 answers
    it writes its count to `counts/<name>` and stops the run once the counts of all the
    runs sharing that directory reach `stop_at` (the runs share one target, so a run
    that the machine's load slows down is made up for by the others)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], stop_at: int, counts: Path,
                 name: str) -> None:
        self.app = app
        self.stop_at = stop_at
        self.counts = counts
        self.name = name
        self.seen: list[tuple[str, str, int]] = []
        self.on_limit: Callable[[], None] = lambda: None

    def _publish(self) -> None:
        (self.counts / f"{self.name}.tmp").write_text(str(len(self.seen)), "ascii")
        (self.counts / f"{self.name}.tmp").replace(self.counts / self.name)
        total = sum(int(p.read_text("ascii") or 0) for p in self.counts.iterdir()
                    if not p.name.endswith(".tmp"))
        if total >= self.stop_at:
            self.on_limit()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")

        def recording(status: str, headers: list[Any], exc_info: Any = None) -> Any:
            self.seen.append((method, path, int(status[:3])))
            if len(self.seen) % 50 == 0:
                self._publish()
            return start_response(status, headers, exc_info)

        return self.app(environ, recording)


def _not_my_coverage(document: dict[str, Any], share: list[int]) -> list[str]:
    """Names of the operations whose coverage phase another run does: run k of n takes
    every n-th operation (sorted by name), so the coverage cases (deterministic, and
    about a seventh of a fuzzing case's CPU) are each sent once per database, early."""
    mine, runs = share
    names = sorted(f"{method.upper()} {path}" for path, operations in document["paths"].items()
                   for method in operations if method not in ("parameters", "summary"))
    return [name for i, name in enumerate(names) if i % runs != mine]


def _config(cfg: dict[str, Any], document: dict[str, Any]) -> schemathesis.Config:
    phases = cfg["phases"]
    others = _not_my_coverage(document, cfg["coverage_share"])
    return schemathesis.Config.from_dict({
        "operations": [{"include-name": others, "phases": {"coverage": {"enabled": False}}}]
        if others else [],
        # The time left until the test's deadline once the app and schema are loaded
        # (both take seconds on a loaded machine).
        "seed": cfg["seed"], "max-time": max(1, int(cfg["deadline"] - time.time())),
        "workers": 1,
        "generation": {"mode": "all", "no-shrink": True, "max-examples": cfg["max_examples"],
                       "database": "none"},
        "phases": {name: {"enabled": name in phases}
                   for name in ("examples", "coverage", "fuzzing", "stateful")},
        "checks": {**{name: {"enabled": True} for name in CHECKS},
                   **{name: {"enabled": False} for name in OFF}},
        # Constants scraped from the Python modules in sys.path: seconds of CPU per run
        # for values the schema's own enums and bounds already give.
        "analysis": {"constants": {"enabled": False}},
        "auth": {"openapi": {"agentCredential": {"bearer": cfg["agent"]},
                             "adminToken": {"bearer": cfg["admin"]}}},
    })


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    os.environ.update({"KIEMKE_DATABASE_URL": cfg["db_url"], "KIEMKE_DATA_DIR": cfg["data_dir"],
                       "KIEMKE_MAINTENANCE_INTERVAL": "0",
                       "KIEMKE_FUZZ_MACHINE_ID": cfg["machine_id"]})
    sys.path.insert(0, str(Path(__file__).parent))
    import schemathesis_hooks  # noqa: F401 - registers the report body hook

    from kiemke.collector.app import create_app

    _patch_wsgi_transport()
    app = create_app()
    counts = Path(cfg["counts_dir"])
    counts.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(app.wsgi_app, cfg["stop_at"], counts, cfg["name"])
    app.wsgi_app = recorder  # type: ignore[method-assign]
    document = app.test_client().get("/api/v1/openapi.json").get_json()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app,
                                            config=_config(cfg, document))
    recorder.seen.clear()  # the schema download is not a test request
    stream = from_schema(schema).execute()
    recorder.on_limit = stream.stop
    failures: list[str] = []
    errors: list[str] = []
    started = time.monotonic()
    for event in stream:
        if isinstance(event, events.ScenarioFinished) and event.status == Status.FAILURE:
            for case_checks in event.recorder.checks.values():
                for check in case_checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failures.append(f"{event.label}: {check.name}: "
                                        f"{check.failure_info.failure.title}\n"
                                        f"{check.failure_info.code_sample}")
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            errors.append(f"fatal: {event.exception!r}")
    recorder._publish()  # a run that ends early (all its examples done) says so
    return {"requests": recorder.seen, "failures": failures, "errors": errors,
            "seconds": time.monotonic() - started}


def main() -> None:
    """Started before the collectors: the imports (seconds of CPU) overlap their
    start-up; the run begins when the test has written CONFIG."""
    config = Path(sys.argv[1])
    import kiemke.collector.app  # noqa: F401 - imported now, used by run()

    give_up = time.monotonic() + START_WAIT
    while not config.exists():
        if time.monotonic() > give_up:
            raise SystemExit(f"{config} did not appear within {START_WAIT:g} s")
        time.sleep(0.1)
    cfg = json.loads(config.read_text("utf-8"))
    result = run(cfg)
    Path(sys.argv[2]).write_text(json.dumps(result, ensure_ascii=False), "utf-8")


if __name__ == "__main__":
    main()
