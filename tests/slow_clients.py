"""Hostile connections (idle and slowloris) and healthy agents measured beside them.

Used by tests/test_slow_clients.py against the collector directly and through nginx.
- `HostileConnections`: a process of its own keeping `idle` connections that send
  nothing and `slowloris` connections that send a request head one header line per
  second and never finish it. A connection the server closes is opened again at once, so
  the pressure stays what the issue describes for the whole measurement (the figures say
  how many were open on average and how often the server closed one). A process of its
  own, not a thread beside the measuring agents, so that its work (reopening 50 TLS
  connections at once each time nginx's header timeout closes them) never holds the
  GIL of the process that measures the agents' latencies.
- `healthy_agents`: enrolled agents sending fresh reports in a loop plus /healthz
  probes; every latency is recorded, every status counted.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import requests
from reports import make_report


@dataclass
class HostileFigures:
    opened: int = 0
    closed_by_server: int = 0
    open_samples: list[int] = field(default_factory=list)

    @property
    def mean_open(self) -> float:
        return sum(self.open_samples) / max(len(self.open_samples), 1)


class _Hostile:
    """The hostile connections themselves (run in the child process: main() below)."""

    def __init__(self, host: str, port: int, idle: int, slowloris: int, tls: bool) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.want = {"idle": idle, "slow": slowloris}
        self.conns: dict[str, list[Any]] = {"idle": [], "slow": []}
        self.figures = HostileFigures()
        self.stopping = threading.Event()
        self._ctx = ssl.create_default_context()
        self._ctx.check_hostname = False
        self._ctx.verify_mode = ssl.CERT_NONE

    def _open(self, kind: str) -> Any:
        sock = socket.create_connection((self.host, self.port), timeout=5)
        if kind == "slow":
            if self.tls:
                sock = self._ctx.wrap_socket(sock)
            sock.sendall(b"POST /api/v1/reports HTTP/1.1\r\nHost: kiemke\r\n")
        sock.setblocking(False)
        self.figures.opened += 1
        return sock

    def _alive(self, sock: Any) -> bool:
        try:
            data = sock.recv(4096)
        except (BlockingIOError, ssl.SSLWantReadError):
            return True
        except OSError:
            return False
        return bool(data)  # b"": closed; an answer (408) means it is closing

    def open_all(self) -> None:
        for kind, count in self.want.items():
            for _ in range(count):
                self.conns[kind].append(self._open(kind))

    def run(self) -> None:
        tick = 0
        while not self.stopping.wait(1.0):
            tick += 1
            for kind, socks in self.conns.items():
                for i, sock in enumerate(socks):
                    if not self._alive(sock):
                        self.figures.closed_by_server += 1
                        sock.close()
                        try:
                            socks[i] = sock = self._open(kind)
                        except OSError:
                            continue
                    if kind == "slow":
                        try:
                            sock.send(f"X-Slow-{tick}: {tick}\r\n".encode())
                        except (BlockingIOError, ssl.SSLWantWriteError):
                            pass
                        except OSError:
                            pass  # found closed on the next tick
            self.figures.open_samples.append(sum(len(s) for s in self.conns.values()))
        for socks in self.conns.values():
            for sock in socks:
                sock.close()


class HostileConnections:
    """Keeps `idle` + `slowloris` connections open to host:port (TLS when `tls`), from a
    child process (this module run as a script)."""

    def __init__(self, host: str, port: int, idle: int, slowloris: int,
                 tls: bool = False) -> None:
        self.args = {"host": host, "port": port, "idle": idle, "slowloris": slowloris,
                     "tls": tls}
        self.process: subprocess.Popen | None = None

    def start(self) -> HostileConnections:
        """Returns once every connection is open."""
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), json.dumps(self.args)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        if ready.strip() != "ready":
            self.process.kill()
            raise RuntimeError(f"the hostile connections could not be opened: {ready!r}")
        return self

    def stop(self) -> HostileFigures:
        assert self.process is not None and self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.close()  # the child's signal to stop
        out = self.process.stdout.read()
        self.process.wait(timeout=30)
        return HostileFigures(**json.loads(out))


def main() -> None:
    hostile = _Hostile(**json.loads(sys.argv[1]))
    hostile.open_all()
    print("ready", flush=True)
    thread = threading.Thread(target=hostile.run)
    thread.start()
    sys.stdin.read()  # until the parent closes it
    hostile.stopping.set()
    thread.join(timeout=10)
    print(json.dumps(asdict(hostile.figures)), flush=True)


@dataclass
class AgentFigures:
    report_latencies: list[float] = field(default_factory=list)
    health_latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @staticmethod
    def p99(values: list[float]) -> float:
        if not values:
            return float("inf")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def enroll(url: str, token: str, count: int, verify: Any = True) -> list[tuple[str, str]]:
    """Enrol `count` machines; return (machine_id, Authorization header) pairs."""
    agents = []
    for i in range(count):
        machine_id = uuid.uuid4().hex
        resp = requests.post(f"{url}/api/v1/enroll", timeout=10, verify=verify, json={
            "token": token, "machine_id": machine_id, "hostname": f"PC-LUCNGAN-{i:02d}"})
        assert resp.status_code == 201, resp.text
        body = resp.json()
        agents.append((machine_id, f"Bearer {body['agent_id']}.{body['secret']}"))
    return agents


def healthy_agents(url: str, agents: list[tuple[str, str]], seconds: float,
                   verify: Any = True) -> AgentFigures:
    """Each agent sends reports back to back on its keep-alive session; one more thread
    probes /healthz on a new connection each time. Timeouts count as errors."""
    figures = AgentFigures()
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def count(key: str) -> None:
        with lock:
            figures.statuses[key] = figures.statuses.get(key, 0) + 1

    def agent(machine_id: str, authorization: str) -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            body = make_report(machine_id=machine_id, hostname="PC-LUCNGAN")
            started = time.monotonic()
            try:
                resp = session.post(f"{url}/api/v1/reports", json=body, timeout=10,
                                     verify=verify, headers={"Authorization": authorization})
                key = str(resp.status_code)
            except requests.RequestException as exc:
                key = "error"
                with lock:
                    figures.errors.append(str(exc))
            with lock:
                figures.report_latencies.append(time.monotonic() - started)
            count(f"report {key}")
            time.sleep(0.05)

    def health() -> None:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                key = str(requests.get(f"{url}/healthz", timeout=10, verify=verify).status_code)
            except requests.RequestException as exc:
                key = "error"
                with lock:
                    figures.errors.append(str(exc))
            with lock:
                figures.health_latencies.append(time.monotonic() - started)
            count(f"healthz {key}")
            time.sleep(0.1)

    threads = [threading.Thread(target=agent, args=a) for a in agents]
    threads.append(threading.Thread(target=health))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 30)
    return figures


if __name__ == "__main__":
    main()
