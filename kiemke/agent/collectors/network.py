"""Section "network": interfaces, default gateway, DNS servers, and active checks.

Plan 000 (Tổng LĐLĐ 452/QĐ-TLĐ) asks that every office has an Internet connection and a
LAN. The local facts come from the platform modules; the checks (gateway, DNS, Internet,
collector) run concurrently here, each probe bounded by [network] probe_timeout and the
whole set by probe_timeout + 1 s, so a machine with everything down still reports quickly.
Probes go only to what the configuration names, the collector, and the machine's own
gateway and DNS servers only when gateway_check and dns_direct ask for it; every probe
passes the allow-list of probe_policy.py first. `kiemke-agent collect` runs none
(Context.network_checks). See docs/agent-network-probes.md.

Run alone for diagnostics: python -m kiemke.agent.collectors.network [--config FILE]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from kiemke.agent import probes
from kiemke.agent.collectors.base import (
    Collector,
    CollectorError,
    Context,
    read_platform,
    register,
)
from kiemke.agent.config import AgentConfig, ConfigError, load_config
from kiemke.agent.probes import Probe
from kiemke.agent.server_url import InsecureServer, check_server_url

BUDGET_SLACK = 1.0  # seconds on top of probe_timeout for the whole set of checks
MAX_DNS_SERVERS_ASKED = 4  # direct DNS queries per run; the report holds 16 probes per check
MAX_PROBES = 16


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _is_global(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]).is_global
    except ValueError:
        return False


def server_endpoint(server: str | None) -> tuple[str, int] | None:
    """(host, port) of the collector URL; the port defaults from the scheme."""
    if not server:
        return None
    parts = urlsplit(server)
    if not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _parse_tcp_target(spec: str) -> tuple[str, int] | None:
    """"tcp://host:port" or "tcp://[v6]:port"."""
    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "tcp" or not parts.hostname or not port:
        return None
    return parts.hostname, port


def _check(ok: bool | None, error: str | None, found: list[Probe]) -> dict[str, Any]:
    good = [p.latency_ms for p in found if p.ok and p.latency_ms is not None]
    return {"ok": ok, "latency_ms": min(good) if good else None,  # fastest working path
            "error": error[:512] if error else None,
            "probes": [p.as_dict() for p in found[:MAX_PROBES]]}


def _not_run(reason: str) -> dict[str, Any]:
    return {"ok": None, "latency_ms": None, "error": reason, "probes": []}


class _Plan:
    """The probes to run, each tagged with the check it belongs to."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.jobs: list[Callable[[], Probe]] = []
        self.fallbacks: list[Probe] = []
        self.tags: list[str] = []

    def add(self, tag: str, target: str, method: str, job: Callable[[], Probe]) -> None:
        self.jobs.append(job)
        self.fallbacks.append(Probe(target, method, False, None,
                                    f"no answer within {self.budget:g} s"))
        self.tags.append(tag)

    def run(self) -> dict[str, list[Probe]]:
        out: dict[str, list[Probe]] = {}
        for tag, probe in zip(self.tags, probes.run_all(self.jobs, self.fallbacks, self.budget),
                              strict=True):
            out.setdefault(tag, []).append(probe)
        return out


def _plan_gateway(plan: _Plan, mode: str, gateway: dict[str, Any] | None,
                  timeout: float) -> dict[str, Any] | None:
    """Queue the gateway probe; return the check result directly when nothing is probed."""
    mode = (mode or "off").strip().lower()
    if mode == "off":
        return _not_run("gateway check is off (set [network] gateway_check = tcp:PORT or icmp)")
    port = int(mode[4:]) if mode.startswith("tcp:") and mode[4:].isdigit() else 0
    if mode != "icmp" and not 0 < port < 65536:
        return _not_run(f"[network] gateway_check = {mode!r} is not valid: use off, icmp or "
                        "tcp:PORT (for example tcp:80)")
    if not gateway:
        return {"ok": False, "latency_ms": None, "error": "this machine has no default gateway",
                "probes": []}
    addr = str(gateway["address"])
    if addr.lower().startswith("fe80:") and "%" not in addr and gateway.get("interface"):
        addr = f"{addr}%{gateway['interface']}"  # link-local needs its interface
    if mode == "icmp":
        plan.add("gateway", addr, "icmp", lambda: probes.icmp(addr, timeout))
    else:
        plan.add("gateway", f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}", "tcp",
                 lambda: probes.tcp(addr, port, timeout, refused_is_reachable=True))
    return None


def run_checks(config: AgentConfig, gateway: dict[str, Any] | None,
               dns_servers: list[str]) -> dict[str, dict[str, Any]]:
    """Run every configured check concurrently; returns the report's `checks` object."""
    timeout = max(float(config.probe_timeout or 0.0), 0.1)
    plan = _Plan(timeout + BUDGET_SLACK)
    checks: dict[str, dict[str, Any]] = {}

    direct = _plan_gateway(plan, config.gateway_check, gateway, timeout)
    if direct is not None:
        checks["gateway"] = direct

    endpoint = server_endpoint(config.server)
    insecure = _insecure_problem(config.server, config.allow_insecure_http)
    if not config.check_collector:
        checks["collector"] = _not_run("collector check is off ([network] check_collector)")
    elif endpoint is None:
        checks["collector"] = _not_run("no collector configured ([agent] server)")
    elif insecure:
        # The agent will not deliver there, so "reachable" would mislead: say why instead.
        checks["collector"] = {"ok": False, "latency_ms": None, "error": insecure[:512],
                               "probes": []}
    else:
        host, port = endpoint
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        plan.add("collector", target, "tcp", lambda: probes.tcp(host, port, timeout))

    names = list(config.dns_names)
    if not names and endpoint and not _is_ip(endpoint[0]):
        names = [endpoint[0]]
    if not names:
        checks["dns"] = _not_run("no name to resolve: set [network] dns_names (the collector "
                                 "is given by IP address or not configured)")
    else:
        for name in names[:MAX_PROBES - MAX_DNS_SERVERS_ASKED]:
            plan.add("dns", name, "dns", partial(probes.resolve_system, name, timeout))
        direct_servers = dns_servers if config.dns_direct else []
        for server in direct_servers[:MAX_DNS_SERVERS_ASKED]:
            plan.add("dns_direct", f"{names[0]}@{server}", "dns",
                     partial(probes.query_server, server, names[0], timeout))

    internet_specs = list(config.internet_probes)
    bad_specs: list[str] = []
    for spec in internet_specs[:MAX_PROBES]:
        if spec.startswith(("http://", "https://")):
            plan.add("internet", spec, "http", partial(
                probes.http, spec, timeout, config.ca_bundle, config.verify_tls))
        elif (hp := _parse_tcp_target(spec)) is not None:
            plan.add("internet", spec, "tcp", partial(probes.tcp, hp[0], hp[1], timeout))
        else:
            bad_specs.append(spec)

    results = plan.run()

    if "gateway" not in checks:
        found = results.get("gateway", [])
        checks["gateway"] = _check(found[0].ok, None if found[0].ok else
                                   f"default gateway {gateway and gateway['address']} does not "
                                   f"answer: {found[0].error}", found)
    if "collector" not in checks:
        found = results.get("collector", [])
        checks["collector"] = _check(found[0].ok, None if found[0].ok else
                                     f"cannot reach the collector: {found[0].error}", found)
    if "dns" not in checks:
        checks["dns"] = _dns_check(results.get("dns", []), results.get("dns_direct", []))
    checks["internet"] = _internet_check(results.get("internet", []), bad_specs,
                                         results.get("collector", []))
    return {k: checks[k] for k in ("gateway", "dns", "internet", "collector")}


def _insecure_problem(server: str | None, allow_insecure_http: bool) -> str | None:
    if not server:
        return None
    try:
        check_server_url(server, insecure=allow_insecure_http)
    except InsecureServer as exc:
        return f"reports are not sent to this collector: {exc}"
    except ValueError:
        return None  # not a usable URL: server_endpoint() already said so
    return None


NOT_PROBED = ("not checked: `kiemke-agent collect` sends nothing on the network; "
              "`kiemke-agent send` and `run` check it (or: kiemke-agent collect --probes)")


def _dns_check(system: list[Probe], direct: list[Probe]) -> dict[str, Any]:
    """DNS works when every name resolves through the system resolver. The direct
    questions to each DNS server say which server is broken."""
    ok = all(p.ok for p in system)
    failed_direct = [p for p in direct if not p.ok]
    error: str | None = None
    if not ok:
        error = "; ".join(p.error or p.target for p in system if not p.ok)
        if direct and len(failed_direct) == len(direct):
            error += "; no DNS server answers: " + "; ".join(
                p.error or p.target for p in failed_direct)
    elif failed_direct:
        error = ("names resolve, but not every DNS server answers: "
                 + "; ".join(p.error or p.target for p in failed_direct))
    return _check(ok, error, system + direct)


def _internet_check(found: list[Probe], bad_specs: list[str],
                    collector: list[Probe]) -> dict[str, Any]:
    bad = (f"not a valid probe (use https://..., http://... or tcp://host:port): "
           f"{', '.join(bad_specs)}") if bad_specs else None
    if found:
        ok = any(p.ok for p in found)  # one working path to the Internet is enough
        error = None if ok else "no Internet probe answered: " + "; ".join(
            f"{p.target}: {p.error}" for p in found)
        return _check(ok, "; ".join(x for x in (error, bad) if x) or None, found)
    # No probe configured: a collector on a public address that answered proves the
    # Internet path. A collector that does not answer proves nothing (it may be down).
    if collector and collector[0].ok and collector[0].answers \
            and _is_global(collector[0].answers[0]):
        return _check(True, "no Internet probe configured; the collector is on the "
                      f"Internet ({collector[0].answers[0]}) and answered", collector)
    return _not_run(bad or "no Internet probe configured (set [network] internet_probes)")


def _platform_facts(ctx: Context) -> dict[str, Any]:
    reading = read_platform("network", ctx, "network facts")
    facts = dict(reading.facts)
    if reading.errors:
        facts["errors"] = reading.errors[:32]
    return facts


@register
class NetworkCollector(Collector):
    name = "network"
    section = "network"
    default_timeout = 10.0

    def collect(self, ctx: Context) -> dict[str, Any]:
        try:
            facts = _platform_facts(ctx)
        except CollectorError as exc:
            # The checks still say whether the network works.
            facts = {"errors": [exc.entry(self.name)]}
        if not ctx.network_checks:
            facts["checks"] = {k: _not_run(NOT_PROBED)
                               for k in ("gateway", "dns", "internet", "collector")}
            return facts
        facts["checks"] = run_checks(ctx.config, facts.get("default_gateway"),
                                     facts.get("dns_servers") or [])
        return facts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kiemke.agent.collectors.network",
                                 description="Print this machine's network section as JSON.")
    ap.add_argument("--config", help="agent configuration file (default: the agent's own)")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    section = NetworkCollector().collect(Context(config=cfg, state_dir=cfg.state_dir))
    print(json.dumps(section, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
