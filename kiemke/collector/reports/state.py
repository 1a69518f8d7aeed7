"""What the reports part keeps per app: its settings, the ranking configuration and the
daily history job (kiemke/collector/reports/wiring.py sets it up)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kiemke.collector.config import CollectorConfig
from kiemke.collector.reports.history import DailyJobThread
from kiemke.collector.reports.ranking import RankingConfig, load_ranking_config
from kiemke.collector.reports.settings import ReportSettings

JobRunner = Callable[["datetime | None"], "dict[str, Any]"]


@dataclass
class ReportsState:
    settings: ReportSettings
    ranking_config: RankingConfig
    runner: JobRunner | None = None  # set by wiring.init_app
    job: DailyJobThread | None = None  # the thread, when running

    def run_job(self, now: datetime | None = None) -> dict[str, Any]:
        """The daily history job and the deliveries it makes due (see delivery.py)."""
        if self.runner is None:
            return {"skipped": "not set up"}
        return dict(self.runner(now))


def load_state(config: CollectorConfig) -> ReportsState:
    return ReportsState(ReportSettings.from_env(), load_ranking_config(config.rules_dir))
