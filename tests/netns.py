"""Network namespaces for the network-check tests, and the tiny servers that run in them.

Topology (all addresses exist only inside namespaces the test creates):

    client (kk<id>c)            gateway (kk<id>g)                 internet (kk<id>i)
    kc0 10.213.0.2/24  <-veth->  kg0 10.213.0.1/24
                                 kg1 198.51.100.1/24  <-veth->  ki0 198.51.100.10/24
    default via 10.213.0.1       ip_forward = 1                 default via 198.51.100.1

The gateway runs an HTTP responder (the "collector", 10.213.0.1:8080) and a UDP DNS
responder (10.213.0.1:53); the internet namespace runs an HTTP responder on
198.51.100.10:80. The client's resolv.conf (/etc/netns/<client>/resolv.conf, which
`ip netns exec` bind-mounts over /etc/resolv.conf) names 10.213.0.1.

Also a command line for the servers:  python tests/netns.py serve-http ADDR PORT
                                       python tests/netns.py serve-dns ADDR PORT NAME=IP ...
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import socketserver
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

LAN_CLIENT = "10.213.0.2"
LAN_GATEWAY = "10.213.0.1"
WAN_GATEWAY = "198.51.100.1"
INTERNET_HOST = "198.51.100.10"
COLLECTOR_PORT = 8080
COLLECTOR_NAME = "kiemke.ldld-bacgiang.test"
INTERNET_NAME = "www.internet.test"


# ----------------------------------------------------------------------------- servers

class _Handler(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = "Liên đoàn Lao động tỉnh Bắc Giang\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    do_GET = _answer
    do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class _QuietServer(ThreadingHTTPServer):
    def server_bind(self) -> None:
        # HTTPServer.server_bind asks socket.getfqdn(addr): a reverse DNS question to the
        # host's resolver from inside the namespace. No name is needed; ask nobody.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


def serve_http(addr: str, port: int) -> None:
    server = _QuietServer((addr, port), _Handler)
    print("ready", flush=True)
    server.serve_forever()


def dns_answer(query: bytes, zone: dict[str, str]) -> bytes | None:
    """Answer one query: A records from `zone`, NOERROR/no data for other types of a
    known name, NXDOMAIN otherwise."""
    if len(query) < 12:
        return None
    qid, flags = struct.unpack("!HH", query[:4])
    pos, labels = 12, []
    while pos < len(query) and query[pos]:
        n = query[pos]
        labels.append(query[pos + 1:pos + 1 + n].decode("ascii", "replace").lower())
        pos += 1 + n
    end = pos + 5
    if end > len(query):
        return None
    qtype = struct.unpack("!H", query[pos + 1:pos + 3])[0]
    name = ".".join(labels)
    rcode = 0 if name in zone else 3
    answers = b""
    if name in zone and qtype == 1:
        answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(zone[name])
    header = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1,
                         1 if answers else 0, 0, 0)
    return header + query[12:end] + answers


def serve_dns(addr: str, port: int, zone: dict[str, str], sock: socket.socket | None = None,
              announce: bool = True) -> None:
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((addr, port))
    if announce:
        print("ready", flush=True)
    while True:
        try:
            query, peer = sock.recvfrom(4096)
        except OSError:
            return  # socket closed: stop
        reply = dns_answer(query, zone)
        if reply:
            sock.sendto(reply, peer)


# ---------------------------------------------------------------------------- namespaces

def netns_problem() -> str | None:
    """Why namespace tests cannot run here, or None."""
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    if os.geteuid() != 0:
        return "network namespace tests need root"
    probe = f"kk{uuid.uuid4().hex[:8]}p"
    proc = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        return f"ip netns add failed: {proc.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")


@dataclass
class Topology:
    client: str
    gateway: str
    internet: str
    etc_dir: Path
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @classmethod
    def create(cls) -> Topology:
        tag = f"kk{uuid.uuid4().hex[:8]}"
        topo = cls(f"{tag}c", f"{tag}g", f"{tag}i", Path("/etc/netns") / f"{tag}c")
        try:
            topo._build()
        except BaseException:
            topo.close()
            raise
        return topo

    def _build(self) -> None:
        c, g, i = self.client, self.gateway, self.internet
        for ns in (c, g, i):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        # veth ends are created directly inside the namespaces: no names in the root one.
        _ip("link", "add", "kc0", "netns", c, "type", "veth", "peer", "name", "kg0", "netns", g)
        _ip("link", "add", "kg1", "netns", g, "type", "veth", "peer", "name", "ki0", "netns", i)
        _ip("-n", c, "addr", "add", f"{LAN_CLIENT}/24", "dev", "kc0")
        _ip("-n", g, "addr", "add", f"{LAN_GATEWAY}/24", "dev", "kg0")
        _ip("-n", g, "addr", "add", f"{WAN_GATEWAY}/24", "dev", "kg1")
        _ip("-n", i, "addr", "add", f"{INTERNET_HOST}/24", "dev", "ki0")
        for ns, dev in ((c, "kc0"), (g, "kg0"), (g, "kg1"), (i, "ki0")):
            _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", c, "route", "add", "default", "via", LAN_GATEWAY)
        _ip("-n", i, "route", "add", "default", "via", WAN_GATEWAY)
        self.run(g, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.etc_dir.mkdir(parents=True, exist_ok=True)
        (self.etc_dir / "resolv.conf").write_text(
            f"# kiemke test namespace {self.client}\nnameserver {LAN_GATEWAY}\n"
            "options timeout:1 attempts:1\n", encoding="utf-8")
        self.start("collector", g, "serve-http", LAN_GATEWAY, str(COLLECTOR_PORT))
        self.start("dns", g, "serve-dns", LAN_GATEWAY, "53",
                   f"{COLLECTOR_NAME}={LAN_GATEWAY}", f"{INTERNET_NAME}={INTERNET_HOST}")
        self.start("web", i, "serve-http", INTERNET_HOST, "80")

    def run(self, ns: str, *argv: str) -> str:
        proc = subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True,
                              text=True, check=False, timeout=30)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} in {ns} failed: {proc.stderr.strip()}")
        return proc.stdout

    def start(self, key: str, ns: str, *args: str) -> None:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, PYTHON, __file__, *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
        self.procs[key] = proc
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        line = proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            err = proc.stderr.read().decode() if proc.poll() is not None else "no answer"
            raise RuntimeError(f"test server {args} in {ns} did not start: {err}")

    def stop(self, key: str) -> None:
        proc = self.procs.pop(key, None)
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    NETWORKS = ("10.213.0.0/24", "198.51.100.0/24")

    def allow_env(self) -> dict[str, str]:
        """The probe guard's allow-list for a process in the client namespace: loopback
        and the namespaces' own networks (tests/probe_guard.py)."""
        from probe_guard import allow_env

        return allow_env(*self.NETWORKS)

    def collect(self, config_text: str, tmp: Path) -> tuple[dict[str, Any], float]:
        """Run the network collector inside the client namespace; (section, wall seconds)."""
        cfg = tmp / "agent.conf"
        cfg.write_text(config_text, encoding="utf-8")
        start = time.monotonic()
        proc = subprocess.run(
            ["ip", "netns", "exec", self.client, PYTHON, "-m",
             "kiemke.agent.collectors.network", "--config", str(cfg)],
            capture_output=True, text=True, check=False, timeout=60, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), **self.allow_env()})
        wall = time.monotonic() - start
        if proc.returncode != 0:
            raise RuntimeError(f"network collector failed ({proc.returncode}): {proc.stderr}")
        return json.loads(proc.stdout), wall

    def close(self) -> None:
        for key in list(self.procs):
            self.stop(key)
        for ns in (self.client, self.gateway, self.internet):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(self.etc_dir, ignore_errors=True)


def main(argv: list[str]) -> int:
    cmd, addr, port, *rest = argv
    if cmd == "serve-http":
        serve_http(addr, int(port))
    elif cmd == "serve-dns":
        serve_dns(addr, int(port), dict(x.split("=", 1) for x in rest))
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
