"""Shared fixtures: databases (SQLite, PostgreSQL), a Flask test app and a real collector.

- `sqlite_url`: a fresh SQLite file in tmp_path (not migrated).
- `pg_url`: a fresh PostgreSQL database kiemke_t_<random> on 127.0.0.1:5432, dropped
  after the test. Skips when PostgreSQL is unreachable, except in CI (CI=true) where
  a missing component is a failure.
- `db_url`: parametrized over ["sqlite", "postgres"].
- `app` / `client`: create_app() on a migrated SQLite file, Flask test client.
- `collector_server`: `kiemke-collector db upgrade` + `kiemke-collector serve` (gunicorn,
  2 workers) as a subprocess on a free loopback port; see CollectorServer.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/reports.py for every test

PG_ADMIN_URL = os.environ.get("KIEMKE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI") == "true"


def missing_component(reason: str) -> None:
    """Skip outside CI; fail in CI, where every real component must be present."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: real components are required)", pytrace=False)
    pytest.skip(reason)


def collector_cmd() -> list[str]:
    """The kiemke-collector CLI of the running interpreter (works without PATH set up)."""
    return [sys.executable, "-m", "kiemke.collector"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- databases

@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kiemke.db'}"


def _pg_connect(url: str, **kwargs: Any):
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=3, **kwargs)


@pytest.fixture(scope="session")
def _pg_available() -> bool:
    try:
        with _pg_connect(PG_ADMIN_URL) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
        return f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}"  # type: ignore[return-value]


@pytest.fixture
def pg_url(_pg_available: Any) -> Iterator[str]:
    if _pg_available is not True:
        missing_component(str(_pg_available))
    name = f"kiemke_t_{uuid.uuid4().hex[:12]}"
    with _pg_connect(PG_ADMIN_URL) as conn:
        conn.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _pg_connect(PG_ADMIN_URL) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


def migrate(url: str) -> None:
    from kiemke.collector.db.migrate import upgrade

    upgrade(url)


# --------------------------------------------------------------------------- Flask app

@pytest.fixture(scope="session")
def _migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per session; tests get copies (migrating each time is slow)."""
    path = tmp_path_factory.mktemp("template") / "kiemke.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def app(sqlite_url: str, tmp_path: Path, _migrated_sqlite_template: Path):
    """create_app on a migrated SQLite database; no server, use app.test_client()."""
    import shutil

    from kiemke.collector.app import create_app

    shutil.copyfile(_migrated_sqlite_template, sqlite_url.removeprefix("sqlite:///"))
    application = create_app({"database_url": sqlite_url, "data_dir": str(tmp_path / "data"),
                              "maintenance_interval": 0})
    application.config["TESTING"] = True
    yield application
    application.extensions["kiemke"].engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


# --------------------------------------------------------------------------- real server

@dataclass
class CollectorServer:
    """A running `kiemke-collector serve` subprocess and helpers to administer it."""

    url: str
    db_url: str
    data_dir: Path
    env: dict[str, str]
    admin_token: str = ""
    process: subprocess.Popen | None = field(default=None, repr=False)
    log_path: Path | None = None

    def run_cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the kiemke-collector CLI against the same database and data dir."""
        result = subprocess.run([*collector_cmd(), *args], env=self.env, cwd=REPO,
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kiemke-collector {' '.join(args)} failed "
                                 f"({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def create_unit(self, name: str, parent: int | str | None = None,
                    code: str | None = None) -> int:
        args = ["units", "add", name]
        if parent is not None:
            args += ["--parent", str(parent)]
        if code:
            args += ["--code", code]
        return int(self.run_cli(*args).stdout.strip())

    def create_token(self, unit: int | str, max_uses: int | None = None,
                     expires: str | None = None) -> str:
        args = ["tokens", "create", "--unit", str(unit)]
        if max_uses is not None:
            args += ["--max-uses", str(max_uses)]
        if expires:
            args += ["--expires", expires]
        return self.run_cli(*args).stdout.strip()

    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path else ""


def _wait_ready(server: CollectorServer, timeout: float = 30.0) -> None:
    import requests

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise AssertionError(f"collector exited with {server.process.returncode}:\n"
                                 f"{server.log()}")
        try:
            resp = requests.get(f"{server.url}/readyz", timeout=2)
            if resp.status_code == 200:
                return
            last = resp.text
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.1)
    raise AssertionError(f"collector not ready after {timeout} s: {last}\n{server.log()}")


def start_collector(db_url: str, data_dir: Path, workers: int = 2,
                    extra_env: dict[str, str] | None = None) -> CollectorServer:
    """Migrate, create an admin token and start the server. Caller must stop_collector()."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "KIEMKE_DATABASE_URL": db_url, "KIEMKE_DATA_DIR": str(data_dir),
           "PYTHONUNBUFFERED": "1", "KIEMKE_MAINTENANCE_INTERVAL": "0", **(extra_env or {})}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = CollectorServer(url=f"http://127.0.0.1:{port}", db_url=db_url, data_dir=data_dir,
                             env=env, log_path=data_dir / "server.log")
    server.run_cli("db", "upgrade")
    server.admin_token = server.run_cli("admin-tokens", "create", "tests").stdout.strip()
    log = open(server.log_path, "wb")  # noqa: SIM115 - kept open for the process lifetime
    server.process = subprocess.Popen(
        [*collector_cmd(), "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        _wait_ready(server)
    except BaseException:
        stop_collector(server)
        raise
    return server


def stop_collector(server: CollectorServer) -> int | None:
    """SIGTERM (gunicorn's graceful stop), SIGKILL after 15 s; return the exit code."""
    proc = server.process
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    return proc.returncode


@pytest.fixture
def collector_server(db_url: str, tmp_path: Path) -> Iterator[CollectorServer]:
    server = start_collector(db_url, tmp_path / "collector")
    crashed = False
    try:
        yield server
    finally:
        crashed = server.process is not None and server.process.poll() is not None
        code = stop_collector(server)
    if crashed:
        pytest.fail(f"the collector process died during the test (exit {code}):\n{server.log()}")
    if code not in (0, -signal.SIGTERM):
        pytest.fail(f"the collector did not stop cleanly (exit {code}):\n{server.log()}")


# --------------------------------------------------------------------------- probe guard

# Every probe of the agent, in this process and in every process a test starts, is held to
# loopback and the namespaces a test creates; a refused probe fails its test (probe_guard.py).
from probe_guard import probe_guard  # noqa: E402, F401 - autouse fixture

# --------------------------------------------------------------------------- installed wheel

# tests/test_packaging_wheel.py runs some end-to-end tests again with the interpreter of a
# fresh venv holding the built wheel (KIEMKE_TEST_INSTALLED=that venv). Refuse to run them
# on the checkout by mistake: kiemke must then come from the venv's site-packages.
if os.environ.get("KIEMKE_TEST_INSTALLED"):
    import kiemke as _kiemke

    _where = Path(_kiemke.__file__).resolve()
    _venv = Path(os.environ["KIEMKE_TEST_INSTALLED"]).resolve()
    if REPO in _where.parents or _venv not in _where.parents:
        raise RuntimeError(f"KIEMKE_TEST_INSTALLED is set but kiemke was imported from "
                           f"{_where}, not from the installed wheel")


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kiemke wheel, built once per session by deploy/build_packages.py (≈ 20 s)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, str(REPO / "deploy" / "build_packages.py"), "wheel",
                    "--out", str(out)], check=True, timeout=300)
    (wheel,) = out.glob("kiemke-*.whl")
    return wheel


# --------------------------------------------------------------------------- parallel runs

# `make test` runs the suite in two phases (Makefile). First, everything but the
# `exclusive` tests in several pytest-xdist workers (--dist loadgroup): tests that measure
# recovery under faults run one after another on one worker; modules with module-scoped
# fixtures (a Prometheus, a browser, built packages) keep all their tests on one worker so
# the fixture is built once. Then the `exclusive` tests alone, in one process: the latency
# figures of the slow-client tests (p99 <= 1 s) and schemathesis's request volume (>= 10,000
# in 3 minutes, which keeps both cores busy) mean something only on an otherwise idle machine.
# Single tests may also be marked `exclusive` (test_reevaluate_bulk: a pass that forks).
_EXCLUSIVE = {"test_slow_clients", "test_schemathesis"}
_ONE_AFTER_ANOTHER = {"test_fault_suite", "test_multi_instance"}
_SHARED_BUILD = {"test_packaging_wheel", "test_packaging_deb", "test_packaging_msi"}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__ if item.module is not None else ""
        if module in _EXCLUSIVE:
            item.add_marker(pytest.mark.exclusive)
        if item.get_closest_marker("xdist_group") is not None:
            continue
        if module in _ONE_AFTER_ANOTHER | _EXCLUSIVE:
            group = "timing"
        elif module in _SHARED_BUILD:
            group = "packaging"
        elif any(getattr(fixdef, "scope", "") == "module"
                 for defs in item._fixtureinfo.name2fixturedefs.values() for fixdef in defs):
            group = module
        else:
            continue
        item.add_marker(pytest.mark.xdist_group(group))
