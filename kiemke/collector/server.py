"""`kiemke-collector serve`: gunicorn run programmatically with the app factory."""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from kiemke.collector.buffered_worker import BufferedThreadWorker
from kiemke.collector.config import CollectorConfig

# Request line, status, size, time: never headers (Authorization) and never bodies.
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms'


def prepare_multiproc_dir(data_dir: Path) -> Path:
    """A fresh directory for prometheus_client's multiprocess files (stale files would
    resurrect the counters of a previous run)."""
    path = data_dir / "prometheus-multiproc"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, mode=0o700)
    return path


def _child_exit(_server: Any, worker: Any) -> None:
    # Not at module level: see load() below.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


class CollectorServer(BaseApplication):
    def __init__(self, config: CollectorConfig, options: dict[str, Any]) -> None:
        self.collector_config = config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key, value)

    def load(self) -> Any:
        # Imported here, in each worker, after PROMETHEUS_MULTIPROC_DIR is set:
        # prometheus_client chooses per-process or multiprocess values on import.
        from kiemke.collector.app import create_app

        return_large_blocks()
        return create_app(self.collector_config)


# glibc's mallopt parameter number (malloc.h).
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 * 1024


def return_large_blocks() -> None:
    """Let glibc give large blocks (a /metrics body, 20 MB in plain text at 100,000
    machines) back to the system when they are freed.

    By default glibc serves blocks over 128 KiB by mmap but raises that threshold to the
    size of the first such block freed, so later bodies come from the arenas of the
    worker's threads and stay resident there: measured 163 -> 230-250 MB after twelve
    plain scrapes of one worker. Setting the threshold fixes it at its default. Other C
    libraries are left as they are.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


# `serve --worker`: the buffered worker is the default (docs/deployment.md, "Server
# model"); gthread stays selectable to measure the difference (bench/bench_ingest.py).
WORKER_MODELS = ("buffered", "gthread")


def worker_class(model: str, config: CollectorConfig) -> Any:
    if model == "gthread":
        return "gthread"
    if model != "buffered":
        raise ValueError(f"unknown worker model {model!r}: use one of {WORKER_MODELS}")
    # A subclass carrying this collector's body limit (the loop refuses larger bodies
    # before they are stored); gunicorn takes the class itself.
    return type("KiemkeBufferedWorker", (BufferedThreadWorker,),
                {"max_body_bytes": config.max_body_bytes})


def log_to_stderr(level: str) -> None:
    """kiemke's own log lines (jobs, outages) on stderr beside gunicorn's, i.e. in the
    journal under systemd; without a handler only warnings would reach stderr, unformatted."""
    logger = logging.getLogger("kiemke")
    if not any(getattr(h, "kiemke_serve", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(
            "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s",
            "%Y-%m-%d %H:%M:%S %z"))
        handler.kiemke_serve = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)


def serve(config: CollectorConfig, bind: str, workers: int, threads: int,
          model: str = "buffered") -> None:
    """Run until SIGINT/SIGTERM. gunicorn forks the workers; each builds its own app."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    log_to_stderr(config.log_level)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prepare_multiproc_dir(config.data_dir))
    CollectorServer(config, server_options(config, bind, workers, threads, model)).run()


def server_options(config: CollectorConfig, bind: str, workers: int, threads: int,
                   model: str = "buffered") -> dict[str, Any]:
    """gunicorn's settings for `serve` (bench/floor_app.py runs its floors with them)."""
    return {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_class": worker_class(model, config),
        "keepalive": 5,
        # Responses are built in memory by the buffered worker and written by its loop.
        "sendfile": False,
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": "-",
        "errorlog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "loglevel": config.log_level.lower(),
        "proc_name": "kiemke-collector",
        "child_exit": _child_exit,
        "preload_app": False,
        "forwarded_allow_ips": "127.0.0.1,::1",
        # gunicorn >= 25 opens a control socket in $HOME; several collectors on one host
        # would fight over it and nothing here uses it.
        "control_socket_disable": True,
    }
