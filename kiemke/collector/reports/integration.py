"""init_app(app): the report API, its OpenAPI part and the daily history job.

The job runs in a thread of each collector process (at start-up to catch up, then after
every local midnight); the lock in history.run_daily_job lets one process of one
instance do the work. KIEMKE_HISTORY_JOB=off, or maintenance turned off
(KIEMKE_MAINTENANCE_INTERVAL=0, as in one-shot CLI commands), leaves it out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask

from kiemke.collector.reports import api, openapi
from kiemke.collector.reports.delivery import deliver_due
from kiemke.collector.reports.figures import last_closed_day
from kiemke.collector.reports.history import DailyJobThread, run_daily_job
from kiemke.collector.reports.ranking import RankingConfig, load_ranking_config
from kiemke.collector.reports.settings import ReportSettings
from kiemke.collector.timeutil import utcnow

log = logging.getLogger(__name__)


@dataclass
class ReportsState:
    settings: ReportSettings
    ranking_config: RankingConfig
    job: DailyJobThread | None = None
    runner: Any = None

    def run_job(self, now: datetime | None = None) -> dict[str, Any]:
        """The daily job and the deliveries it makes due (see delivery.py)."""
        return dict(self.runner(now))


def init_app(app: Flask) -> None:
    ext = app.extensions["kiemke"]
    config = ext.config
    state = ReportsState(ReportSettings.from_env(), load_ranking_config(config.rules_dir))
    ext.reports = state
    app.register_blueprint(api.bp)
    ext.openapi_extenders.append(openapi.extend)

    def run(now: datetime | None = None) -> dict[str, Any]:
        evaluator = ext.compliance
        if evaluator is None:
            return {"skipped": "no rule set"}
        now = now or utcnow()
        stats = run_daily_job(ext.engine, evaluator.ruleset, timezone=config.timezone,
                              stale_after=config.stale_after, now=now)
        if "skipped" not in stats:
            with ext.engine.connect() as conn:
                last = last_closed_day(conn)
            stats["delivered"] = deliver_due(ext.engine, state.settings, last, now=now,
                                             timezone=config.timezone,
                                             ranking_config=state.ranking_config)
        return stats

    state.runner = run

    def start() -> None:
        if state.settings.history_job and config.maintenance_interval > 0:
            state.job = DailyJobThread(state, config.timezone)
            state.job.start()

    ext.startup_hooks.append(start)
