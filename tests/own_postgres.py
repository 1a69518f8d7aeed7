"""A private PostgreSQL instance a test can stop and restart (never the shared service).

initdb into a fresh directory owned by the `postgres` system user (initdb refuses to run
as root), listening on 127.0.0.1 at a free port and a socket in its own directory;
`stop()`, `start()` and `restart()` go through pg_ctl.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg


def find_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


class OwnPostgres:
    def __init__(self, port: int) -> None:
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="kiemke-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "pg.log"
        user = pwd.getpwnam("postgres")
        os.chown(self.root, user.pw_uid, user.pw_gid)
        self.root.chmod(0o755)
        self._as_postgres([find_bin("initdb") or "initdb", "-D", str(self.data), "-U", "postgres",
                           "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"], timeout=120)
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {port}\n"
                       f"unix_socket_directories = '{self.root}'\nfsync = on\n"
                       f"max_connections = 100\n")
        self.start()
        self.url = f"postgresql://postgres@127.0.0.1:{port}/kiemke"
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE kiemke ENCODING 'UTF8' TEMPLATE template0")

    def _as_postgres(self, cmd: list[str], timeout: float = 60) -> None:
        runner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*runner, *cmd], check=True, capture_output=True, timeout=timeout)

    def _ctl(self, *args: str) -> None:
        self._as_postgres([find_bin("pg_ctl") or "pg_ctl", "-D", str(self.data), "-l",
                           str(self.log), "-w", "-t", "60", *args], timeout=90)

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self._ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)
