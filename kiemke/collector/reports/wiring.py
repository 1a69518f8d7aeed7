"""How the reports part is put into an app (called by create_app, in this order):

- `load_state` (kiemke.collector.reports.state): settings and ranking configuration;
- `init_app`: the period-report and ranking API, and the daily job's runner;
- `start`, once every part is plugged in: the daily history job's thread, which runs the
  job at start-up (catch-up) and after every local midnight; the lock in
  history.run_daily_job lets one process of one instance do the work.
  KIEMKE_HISTORY_JOB=off, or maintenance turned off (KIEMKE_MAINTENANCE_INTERVAL=0, as in
  one-shot CLI commands and tests), leaves the thread out.
The OpenAPI part is kiemke.collector.reports.openapi (added by api/openapi.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask

from kiemke.collector.reports import api
from kiemke.collector.reports.delivery import deliver_due
from kiemke.collector.reports.figures import last_closed_day
from kiemke.collector.reports.history import DailyJobThread, run_daily_job
from kiemke.collector.reports.state import ReportsState, load_state
from kiemke.collector.timeutil import utcnow

__all__ = ["init_app", "load_state", "start"]


def init_app(app: Flask) -> None:
    ext = app.extensions["kiemke"]
    state: ReportsState = ext.reports
    config = ext.config

    def run(now: datetime | None = None) -> dict[str, Any]:
        now = now or utcnow()
        stats = run_daily_job(ext.engine, ext.compliance.ruleset, timezone=config.timezone,
                              stale_after=config.stale_after, now=now)
        if "skipped" not in stats:
            with ext.engine.connect() as conn:
                last = last_closed_day(conn)
            stats["delivered"] = deliver_due(ext.engine, state.settings, last, now=now,
                                             timezone=config.timezone,
                                             ranking_config=state.ranking_config)
        return stats

    state.runner = run
    app.register_blueprint(api.bp)


def start(app: Flask) -> None:
    ext = app.extensions["kiemke"]
    state: ReportsState = ext.reports
    if state.settings.history_job and ext.config.maintenance_interval > 0:
        state.job = DailyJobThread(state, ext.config.timezone)
        state.job.start()
