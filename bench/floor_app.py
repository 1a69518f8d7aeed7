"""The floors kiemke's ingest is judged against (bench_ingest.py), served by gunicorn with
the settings of `kiemke-collector serve` (same worker class, workers, threads, access log):

- echo:  Flask parses the JSON body and answers 202 with its report_id;
- store: the same plus one INSERT of the body, committed per request, on the collector's
  own engine (SQLite in WAL with its pragmas, or PostgreSQL through psycopg 3).

Run: python bench/floor_app.py {echo|store} DATABASE_URL BIND WORKERS THREADS
"""

from __future__ import annotations

import json
import sys
import tempfile
from typing import Any

from flask import Flask, jsonify, request
from gunicorn.app.base import BaseApplication
from sqlalchemy import text

from kiemke.collector.config import CollectorConfig
from kiemke.collector.db.engine import make_engine, write_transaction
from kiemke.collector.server import server_options

TABLE = "floor_reports"


def create_table(url: str) -> None:
    engine = make_engine(url)
    serial = "SERIAL" if engine.dialect.name == "postgresql" else "INTEGER"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {TABLE} "
                          f"(id {serial} PRIMARY KEY, body TEXT NOT NULL)"))
    engine.dispose()


def make_app(mode: str, url: str) -> Flask:
    app = Flask("floor")
    engine = make_engine(url) if mode == "store" else None
    insert = text("INSERT INTO floor_reports (body) VALUES (:body)")

    @app.post("/api/v1/reports")
    def post_report() -> Any:
        raw = request.get_data(cache=False)
        report = json.loads(raw)
        if engine is not None:
            with write_transaction(engine) as conn:
                conn.execute(insert, {"body": raw.decode("utf-8")})
        resp = jsonify({"status": "accepted", "report_id": report.get("report_id")})
        resp.status_code = 202
        return resp

    @app.get("/readyz")
    def readyz() -> Any:
        return jsonify({"status": "ready"})

    return app


class FloorServer(BaseApplication):
    def __init__(self, mode: str, url: str, options: dict[str, Any]) -> None:
        self.mode, self.url, self.options = mode, url, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        return make_app(self.mode, self.url)


def main(argv: list[str]) -> None:
    mode, url, bind, workers, threads = argv
    if mode not in ("echo", "store"):
        raise SystemExit(f"mode must be echo or store, not {mode!r}")
    if mode == "store":
        create_table(url)
    # The bench's collector runs with KIEMKE_LOG_LEVEL=WARNING (fleet.start_collector).
    config = CollectorConfig.from_mapping({"database_url": url, "log_level": "WARNING",
                                           "data_dir": tempfile.mkdtemp(prefix="floor-")})
    options = server_options(config, bind, int(workers), int(threads))
    options.pop("child_exit")  # kiemke's prometheus bookkeeping: the floor has none
    options["proc_name"] = f"kiemke-floor-{mode}"
    FloorServer(mode, url, options).run()


if __name__ == "__main__":
    main(sys.argv[1:])
