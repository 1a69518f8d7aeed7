"""Active network probes: TCP connect, HTTP(S) request, DNS lookup, ICMP ping.

Every probe has a timeout and returns a Probe (never raises for a network failure), so
the network collector can run them concurrently and report each one. Probes only go
where the caller says: the agent passes the targets named in its configuration, the
machine's own gateway (gateway_check) and DNS servers (dns_direct), and the collector.
Before sending, each probe asks the allow-list (probe_policy.py, KIEMKE_PROBE_ALLOW, set
by the test session, the demo and the benchmarks); a refused probe sends nothing and
reports the refusal as its error.
"""

from __future__ import annotations

import http.client as http_client
import ipaddress
import os
import random
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kiemke.agent.probe_policy import ProbeRefused, check_address, check_host, check_resolution
from kiemke.agent.runner import which


@dataclass
class Probe:
    """One probe's outcome, in the report's `probes[]` shape."""

    target: str
    method: str  # tcp | http | dns | icmp
    ok: bool
    latency_ms: float | None = None
    error: str | None = None
    # Addresses a DNS probe returned, or the peer a TCP probe reached; not in the report.
    answers: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target[:512], "method": self.method, "ok": self.ok,
                "latency_ms": self.latency_ms,
                "error": self.error[:512] if self.error else None}


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 2)


def _os_error_text(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"name not resolved ({exc.strerror or exc})"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "no answer (timed out)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = exc.strerror or str(exc) or type(exc).__name__
    return text[0].lower() + text[1:] if text else type(exc).__name__


def tcp(host: str, port: int, timeout: float, refused_is_reachable: bool = False) -> Probe:
    """Open and close a TCP connection.

    With refused_is_reachable, a RST (connection refused) counts as success: the host
    itself answered, which is all a gateway check needs to know.
    """
    target = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    try:
        check_host(host, f"a TCP probe to {target}")
    except ProbeRefused as exc:
        return Probe(target, "tcp", False, None, str(exc))
    start = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            peer = str(sock.getpeername()[0])
    except ConnectionRefusedError:
        if refused_is_reachable:
            return Probe(target, "tcp", True, _ms(start),
                         "connection refused: the host answered, so it is reachable")
        return Probe(target, "tcp", False, _ms(start),
                     f"connection refused: the host answers but nothing listens on port {port}")
    except OSError as exc:
        return Probe(target, "tcp", False, None, _os_error_text(exc))
    return Probe(target, "tcp", True, _ms(start), answers=(peer,))


def http(url: str, timeout: float, ca_bundle: str | None = None,
         verify_tls: bool = True) -> Probe:
    """HEAD the URL (no body is fetched); any HTTP answer below 500 proves the path works.

    5xx is a failure because proxies answer 502/503/504 when they cannot reach the
    target: the answer then proves only that the proxy is up.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return Probe(url, "http", False, None, "not an http:// or https:// URL")
    try:
        check_host(parts.hostname, f"an HTTP probe to {url}")
    except ProbeRefused as exc:
        return Probe(url, "http", False, None, str(exc))
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    start = time.perf_counter()
    conn: http_client.HTTPConnection
    try:
        if parts.scheme == "https":
            ctx = ssl.create_default_context(cafile=ca_bundle) if verify_tls \
                else ssl._create_unverified_context()  # noqa: S323 - operator turned verification off
            conn = http_client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout,
                                               context=ctx)
        else:
            conn = http_client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        try:
            conn.request("HEAD", path, headers={"User-Agent": "kiemke-agent probe"})
            status = conn.getresponse().status
        finally:
            conn.close()
    except ssl.SSLCertVerificationError as exc:
        return Probe(url, "http", False, None,
                     f"TLS certificate not trusted ({exc.verify_message}); a proxy or captive "
                     "portal may intercept the connection")
    except (OSError, http_client.HTTPException) as exc:
        text = _os_error_text(exc) if isinstance(exc, OSError) else \
            f"bad HTTP answer ({type(exc).__name__})"
        return Probe(url, "http", False, None, text)
    if status >= 500:
        return Probe(url, "http", False, _ms(start), f"HTTP {status} from the server or a proxy")
    return Probe(url, "http", True, _ms(start))


def icmp(host: str, timeout: float) -> Probe:
    """One echo request through the system ping (raw sockets need privileges)."""
    try:
        check_host(host, f"a ping to {host}")
    except ProbeRefused as exc:
        return Probe(host, "icmp", False, None, str(exc))
    ping = which("ping", ("/usr/bin", "/bin", "/usr/sbin", "/sbin"))
    if ping is None:
        return Probe(host, "icmp", False, None,
                     "ping is not installed; install iputils-ping or use gateway_check = tcp:PORT")
    wait = max(1, int(timeout + 0.999))
    if os.name == "nt":
        argv = [ping, "-n", "1", "-w", str(int(timeout * 1000)), host]
    else:
        argv = [ping, "-n", "-c", "1", "-W", str(wait), host]
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout + 1.0, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Probe(host, "icmp", False, None, "no answer (timed out)")
    except OSError as exc:
        return Probe(host, "icmp", False, None, f"cannot run ping: {exc}")
    if proc.returncode == 0:
        return Probe(host, "icmp", True, _ms(start))
    err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    return Probe(host, "icmp", False, None,
                 "no echo reply" + (f" ({err[-1]})" if err else ""))


def resolve_system(name: str, timeout: float) -> Probe:
    """Resolve through the system resolver (what every program on the machine uses).

    getaddrinfo has no timeout of its own, so it runs in a daemon thread we stop waiting for.
    """
    try:
        check_resolution(name, f"a DNS lookup of {name} through the system resolver")
    except ProbeRefused as exc:
        return Probe(name, "dns", False, None, str(exc))
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
            box["answers"] = tuple(dict.fromkeys(str(i[4][0]) for i in infos))
        except (OSError, UnicodeError) as exc:  # UnicodeError: not a valid host name
            box["error"] = exc

    start = time.perf_counter()
    thread = threading.Thread(target=work, name=f"resolve-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return Probe(name, "dns", False, None,
                     f"the system resolver gave no answer for {name} within {timeout:g} s")
    if "error" in box:
        failure = box["error"]
        why = _os_error_text(failure) if isinstance(failure, OSError) \
            else "not a valid host name"
        return Probe(name, "dns", False, None,
                     f"the system resolver cannot resolve {name}: {why}")
    return Probe(name, "dns", True, _ms(start), answers=box["answers"])


# --- a minimal DNS client (RFC 1035), A records over UDP, to ask one server directly ---

_RCODES = {1: "format error", 2: "server failure", 3: "name does not exist (NXDOMAIN)",
           4: "not implemented", 5: "refused"}


class DnsError(Exception):
    pass


def build_query(name: str, qid: int) -> bytes:
    """Header (id, RD set, one question) + QNAME + QTYPE A + QCLASS IN."""
    try:
        labels = name.rstrip(".").encode("idna").split(b".")
    except UnicodeError:
        labels = [b""]
    if any(not 0 < len(label) < 64 for label in labels):
        raise DnsError(f"{name!r} is not a valid host name")
    qname = b"".join(bytes([len(label)]) + label for label in labels) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)


def _skip_name(msg: bytes, pos: int) -> int:
    while True:
        if pos >= len(msg):
            raise DnsError("truncated answer")
        length = msg[pos]
        if length & 0xC0 == 0xC0:  # compression pointer ends the name
            return pos + 2
        if length == 0:
            return pos + 1
        pos += 1 + length


def parse_response(msg: bytes, qid: int) -> list[str]:
    """IPv4 addresses of the A records in a response; DnsError on an error answer."""
    if len(msg) < 12:
        raise DnsError("truncated answer")
    rid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    if rid != qid or not flags & 0x8000:
        raise DnsError("answer does not match the question")
    rcode = flags & 0x000F
    if rcode:
        raise DnsError(_RCODES.get(rcode, f"error code {rcode}"))
    pos = 12
    for _ in range(qd):
        pos = _skip_name(msg, pos) + 4
    addrs: list[str] = []
    for _ in range(an):
        pos = _skip_name(msg, pos)
        if pos + 10 > len(msg):
            raise DnsError("truncated answer")
        rtype, rclass, _ttl, rdlen = struct.unpack("!HHIH", msg[pos:pos + 10])
        pos += 10
        if rtype == 1 and rclass == 1 and rdlen == 4 and pos + 4 <= len(msg):
            addrs.append(socket.inet_ntoa(msg[pos:pos + 4]))
        pos += rdlen
    return addrs


def query_server(server: str, name: str, timeout: float, port: int = 53) -> Probe:
    """Ask one DNS server directly for the A record of `name` (one UDP packet each way)."""
    target = f"{name}@{server}"
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(server.split("%")[0]).version == 6 \
            else socket.AF_INET
    except ValueError:
        return Probe(target, "dns", False, None, f"{server!r} is not an IP address")
    try:
        check_address(server, f"a DNS query to {server} port {port}")
    except ProbeRefused as exc:
        return Probe(target, "dns", False, None, str(exc))
    qid = random.randrange(0, 65536)
    try:
        query = build_query(name, qid)
    except (DnsError, UnicodeError) as exc:
        return Probe(target, "dns", False, None, str(exc))
    start = time.perf_counter()
    deadline = start + timeout
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((server, port))  # connected: ICMP port unreachable surfaces as an error
            sock.send(query)
            while True:
                sock.settimeout(max(deadline - time.perf_counter(), 0.001))
                msg = sock.recv(4096)
                try:
                    addrs = parse_response(msg, qid)
                except DnsError as exc:
                    if str(exc) == "answer does not match the question":
                        continue  # a late answer to someone else's query: keep waiting
                    raise
                break
        except DnsError as exc:
            return Probe(target, "dns", False, _ms(start), f"DNS server {server}: {exc}")
        except OSError as exc:
            return Probe(target, "dns", False, None,
                         f"DNS server {server} does not answer: {_os_error_text(exc)}")
    if not addrs:
        return Probe(target, "dns", False, _ms(start),
                     f"DNS server {server} returned no IPv4 address for {name}")
    return Probe(target, "dns", True, _ms(start), answers=tuple(addrs))


def run_all(jobs: list[Callable[[], Probe]], fallbacks: list[Probe], budget: float) -> list[Probe]:
    """Run probe jobs concurrently; a job not done within `budget` s yields its fallback.

    Threads are daemons: a probe stuck in the OS (getaddrinfo, a hung connect) cannot hold
    the agent past the budget.
    """
    results: list[Probe | None] = [None] * len(jobs)

    def runner(i: int, job: Callable[[], Probe]) -> None:
        try:
            results[i] = job()
        except Exception as exc:  # noqa: BLE001 - a probe bug becomes a failed probe
            fb = fallbacks[i]
            results[i] = Probe(fb.target, fb.method, False, None,
                               f"probe failed: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=runner, args=(i, job), daemon=True, name=f"probe-{i}")
               for i, job in enumerate(jobs)]
    deadline = time.monotonic() + budget
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [r if r is not None else fallbacks[i] for i, r in enumerate(results)]
