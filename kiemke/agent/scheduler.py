"""`kiemke-agent run`: periodic reports with APScheduler 3.x (BlockingScheduler).

- The first report waits a random 0..start_delay_max seconds, so a thousand PCs switched
  on at 8:00 do not all report at 8:00; every later run adds 0..jitter seconds.
- A run sends a full inventory when full_interval has passed since the last one,
  otherwise a periodic report. Every report goes through the spool.
- Another job flushes the spool every few minutes while it holds reports, so reports
  kept while the collector was down arrive soon after it is back.
- SIGTERM / SIGINT (systemd stop, Ctrl-C; CTRL_BREAK on Windows) stop the scheduler after
  the current HTTP call: backoff waits are interruptible and anything not yet
  delivered is already on disk in the spool.
- After a 401 the agent keeps collecting into the spool but stops delivering until it
  is enrolled again (the credentials file changes).
"""

from __future__ import annotations

import ctypes
import functools
import gc
import logging
import random
import signal
import sys
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from kiemke.agent import delivery
from kiemke.agent.config import AgentConfig
from kiemke.agent.configure import forget_token, pending_token
from kiemke.agent.state import StateDir
from kiemke.agent.transport import UNAUTHORIZED, TransportError

log = logging.getLogger(__name__)

FLUSH_INTERVAL_MAX = 300.0  # seconds between spool flush attempts


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None  # musl and others: nothing to trim


def release_memory() -> None:
    """Return freed heap to the OS after a run (glibc keeps it otherwise): steady RSS."""
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class AgentService:
    def __init__(self, config: AgentConfig, state: StateDir) -> None:
        self.config = config
        self.state = state
        self.stopping = threading.Event()
        self.lock = threading.Lock()  # one report or flush at a time
        self.scheduler = BlockingScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=timezone.utc)
        self.runs = 0
        # agent.spool_errors entries the collector has not received yet (kept in memory:
        # the disk that failed cannot hold them).
        self.spool_errors: list[dict[str, Any]] = []

    def _sleep(self, seconds: float) -> bool:
        """Backoff wait that returns True at once when the agent is stopping."""
        return self.stopping.wait(seconds)

    def enroll_pending(self) -> None:
        """Enrol with the token an installer left (kiemke-agent configure --token=...).

        Tried at start and before every delivery until it works; the token file is
        deleted once the collector has answered (credentials, or a refusal of the token).
        """
        token = pending_token(self.state)
        if token is None or self.state.load_credentials() is not None:
            return
        if not self.config.server:
            log.error("an enrolment token is waiting but no server is configured: set "
                      "[agent] server in the configuration")
            return
        try:
            creds = delivery.enroll(self.config, self.state, self.config.server, token,
                                    sleep=self._sleep)
        except TransportError as exc:
            if exc.outcome == UNAUTHORIZED:
                forget_token(self.state)
                log.error("the collector refused the enrolment token left by the installer "
                          "(%s): create a new token and run kiemke-agent enroll", exc.message)
            else:
                log.warning("enrolment postponed, the collector cannot be reached: %s",
                            exc.message)
            return
        forget_token(self.state)
        log.info("enrolled with %s as agent %s", self.config.server, creds.agent_id)

    def _refused(self) -> bool:
        self.enroll_pending()
        creds = self.state.load_credentials()
        if creds is None and pending_token(self.state):
            log.warning("not enrolled yet: reports are kept in the spool; enrolment with the "
                        "installer's token is tried again before the next delivery")
            return True
        if creds is None:
            log.error("not enrolled: reports are kept in the spool. Run kiemke-agent enroll "
                      "--server=URL --token=TOKEN")
            return True
        if self.state.status().get("refused_agent_id") == creds.agent_id:
            log.error("the collector refused this agent's credentials (HTTP 401): reports "
                      "are kept in the spool. Re-enroll with kiemke-agent enroll.")
            return True
        return False

    def report_job(self) -> None:
        if self.stopping.is_set():
            return
        with self.lock:
            try:
                kind = delivery.choose_kind(self.config, self.state)
                report = delivery.collect(self.config, self.state, kind)
                # Spool failures not yet told to the collector ride with this report.
                delivery.add_spool_errors(report, self.spool_errors)
                direct = delivery.spool_report(self.config, self.state, report)
                if kind == "full":
                    delivery.record_status(self.state, last_full_at=report["collected_at"])
                log.info("collected %s report %s", kind, report["report_id"])
                self.runs += 1
                if direct is None:
                    self.spool_errors = []  # in the spool now, which delivers it in time
                    self._flush_locked()
                    return
                summary = self._flush_locked(direct)
                told = summary is not None and report["report_id"] in (
                    summary["delivered"] + summary["rejected"])
                self.spool_errors = [] if told else direct["agent"]["spool_errors"]
                if not told:
                    log.error("report %s could not be kept in the spool nor sent: it is "
                              "lost. %s", report["report_id"], delivery.disk_advice(self.state))
            except Exception:  # noqa: BLE001 - the scheduler must keep running
                log.exception("report run failed; the next run will try again")
            finally:
                release_memory()

    def flush_job(self) -> None:
        if self.stopping.is_set():
            return
        with self.lock:
            try:
                self._flush_locked()
            except Exception:  # noqa: BLE001
                log.exception("spool flush failed; the next run will try again")

    def _flush_locked(self, direct: dict[str, Any] | None = None) -> dict[str, Any] | None:
        if self._refused():
            return None
        creds = self.state.load_credentials()
        assert creds is not None
        summary = delivery.flush(self.config, self.state, creds, sleep=self._sleep,
                                 direct=direct)
        if summary["stopped"] == UNAUTHORIZED:
            delivery.record_status(self.state, refused_agent_id=creds.agent_id)
            log.error("%s", summary["message"])
        return summary

    def stop(self, *_: Any) -> None:
        if self.stopping.is_set():
            return
        log.info("stopping: reports not yet delivered stay in the spool")
        self.stopping.set()
        # shutdown(wait=False) from a signal handler: never join threads inside the handler
        self.scheduler.shutdown(wait=False)

    def install_signal_handlers(self) -> None:
        for name in ("SIGTERM", "SIGINT", "SIGBREAK", "SIGHUP"):
            sig = getattr(signal, name, None)
            if sig is not None:
                signal.signal(sig, self.stop)

    def schedule(self, rng: random.Random | None = None) -> datetime:
        """Add the jobs; returns when the first report will run."""
        rng = rng or random.Random()  # noqa: S311 - spreading load, not security
        now = datetime.now(timezone.utc)
        first = now + timedelta(seconds=rng.uniform(0, self.config.start_delay_max))
        interval = max(1.0, self.config.interval)
        self.scheduler.add_job(self.report_job, IntervalTrigger(
            seconds=interval, start_date=first, jitter=self.config.jitter or None,
            timezone=timezone.utc), id="report", next_run_time=first)
        flush_every = max(1.0, min(interval, FLUSH_INTERVAL_MAX))
        self.scheduler.add_job(self.flush_job, IntervalTrigger(
            seconds=flush_every, jitter=min(self.config.jitter, flush_every / 2) or None,
            timezone=timezone.utc), id="flush")
        return first

    def run(self) -> None:
        self.install_signal_handlers()
        first = self.schedule()
        log.info("kiemke agent running: first report at %s, then every %g s (+0..%g s)",
                 first.strftime("%Y-%m-%dT%H:%M:%SZ"), self.config.interval,
                 self.config.jitter)
        self.scheduler.start()
        self.stopping.set()
        log.info("kiemke agent stopped")
