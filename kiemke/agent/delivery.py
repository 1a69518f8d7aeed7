"""What `send`, `run` and `enroll` do: collect, spool, deliver; enrol this machine."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from kiemke.agent.collectors.base import Context, iso_utc
from kiemke.agent.collectors.identity import IdentityCollector
from kiemke.agent.config import AgentConfig
from kiemke.agent.exitcodes import EXIT_NOT_ENROLLED, EXIT_OK, EXIT_REJECTED, EXIT_SPOOLED
from kiemke.agent.filelock import LockBusy, exclusive
from kiemke.agent.report import build_report
from kiemke.agent.spool import Spool
from kiemke.agent.state import Credentials, StateDir
from kiemke.agent.transport import (
    DELIVERED,
    DUPLICATE,
    REJECTED,
    UNAUTHORIZED,
    InsecureServer,
    Transport,
    TransportError,
)

log = logging.getLogger(__name__)



class NotEnrolled(Exception):
    pass


@dataclass
class SendResult:
    exit_code: int
    message: str
    report_id: str | None = None
    delivered: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def open_spool(config: AgentConfig, state: StateDir) -> Spool:
    return Spool(state.spool_dir, config.spool_max_reports, config.spool_max_bytes)


def server_for(config: AgentConfig, creds: Credentials) -> str:
    """The configured server wins (collector moved), else the one enrolled with."""
    return (config.server or creds.server).rstrip("/")


def choose_kind(config: AgentConfig, state: StateDir, force_full: bool = False) -> str:
    """"full" when asked, when there has never been one, or full_interval has passed."""
    if force_full:
        return "full"
    last = state.status().get("last_full_at")
    if not last:
        return "full"
    try:
        then = datetime.strptime(last, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return "full"
    age = (datetime.now(timezone.utc) - then).total_seconds()
    return "full" if age >= config.full_interval or age < 0 else "periodic"


def collect(config: AgentConfig, state: StateDir, kind: str,
            network_checks: bool = True) -> dict[str, Any]:
    ctx = Context(config=config, state_dir=state.path, network_checks=network_checks)
    return build_report(config, kind=kind, ctx=ctx)


def flush(config: AgentConfig, state: StateDir, creds: Credentials,
          sleep: Callable[[float], Any] = time.sleep) -> dict[str, Any]:
    """Deliver what the spool holds and record the outcome in status.json."""
    spool = open_spool(config, state)
    now = iso_utc(datetime.now(timezone.utc))
    if not spool.entries():
        return {"delivered": [], "rejected": [], "stopped": None, "message": ""}
    try:
        transport = Transport(config, server_for(config, creds), sleep=sleep)
    except InsecureServer as exc:  # send/run check first; this covers a changed server
        summary = {"delivered": [], "rejected": [], "stopped": "insecure", "message": str(exc)}
        state.update_status(last_attempt_at=now, last_error=str(exc), last_error_at=now)
        log.error("reports kept in the spool: %s", exc)
        return summary
    try:
        # One deliverer at a time: a manual `send` during a scheduled run waits its turn
        # instead of posting the same spooled reports twice.
        with exclusive(state.path / "deliver.lock", wait=config.timeout * 2):
            summary = transport.flush(spool, creds)
    except LockBusy as exc:
        summary = {"delivered": [], "rejected": [], "stopped": "busy",
                   "message": f"{exc}; the report stays in the spool and goes with the "
                              "next delivery"}
    finally:
        transport.close()
    fields: dict[str, Any] = {"last_attempt_at": now}
    if summary["delivered"]:
        fields["last_success_at"] = now
    if summary["stopped"]:
        fields["last_error"] = summary["message"]
        fields["last_error_at"] = now
        log.warning("reports kept in the spool for later: %s", summary["message"])
    elif not summary["rejected"]:
        fields["last_error"] = None
    state.update_status(**fields)
    if summary["delivered"]:
        log.info("delivered %d report(s) to %s", len(summary["delivered"]),
                 server_for(config, creds))
    return summary


def send(config: AgentConfig, state: StateDir, force_full: bool = False,
         sleep: Callable[[float], Any] = time.sleep) -> SendResult:
    """Collect one report, spool it, deliver the spool in order."""
    creds = state.load_credentials()
    if creds is None:
        raise NotEnrolled(f"this agent is not enrolled (no {state.credentials_path}). Run: "
                          "kiemke-agent enroll --server URL --token TOKEN")
    kind = choose_kind(config, state, force_full)
    report = collect(config, state, kind)
    spool = open_spool(config, state)
    spool.put(report)
    if kind == "full":
        state.update_status(last_full_at=report["collected_at"])
    report_id = report["report_id"]
    summary = flush(config, state, creds, sleep)
    result = SendResult(EXIT_OK, "", report_id, summary["delivered"], summary["rejected"])
    if report_id in summary["delivered"]:
        result.message = (f"report {report_id} ({kind}) delivered to "
                          f"{server_for(config, creds)}")
        if len(summary["delivered"]) > 1:
            result.message += f", with {len(summary['delivered']) - 1} spooled earlier"
    elif report_id in summary["rejected"]:
        result.exit_code = EXIT_REJECTED
        result.message = (f"the collector rejected report {report_id}; it was moved to "
                          f"{spool.rejected_dir}. See the log for the reason.")
    elif summary["stopped"] == UNAUTHORIZED:
        result.exit_code = EXIT_NOT_ENROLLED
        result.message = summary["message"]
    else:
        result.exit_code = EXIT_SPOOLED
        result.message = (f"could not deliver the report now ({summary['message']}). It is "
                          f"kept in the spool ({len(spool.entries())} waiting) and will be "
                          "sent later.")
    return result


def enroll(config: AgentConfig, state: StateDir, server: str, token: str,
           sleep: Callable[[float], Any] = time.sleep) -> Credentials:
    """Exchange an enrolment token for agent credentials and store them (0600)."""
    ctx = Context(config=config, state_dir=state.path)
    identity = IdentityCollector().collect(ctx)
    transport = Transport(config, server, sleep=sleep)
    try:
        body = transport.enroll(token, identity["machine_id"], identity["hostname"])
    finally:
        transport.close()
    given = body.get("unit")
    unit: dict[str, Any] = given if isinstance(given, dict) else {}
    creds = Credentials(server=server, agent_id=str(body["agent_id"]),
                        secret=str(body["secret"]), machine_id=identity["machine_id"],
                        unit=unit, enrolled_at=iso_utc(datetime.now(timezone.utc)))
    state.save_credentials(creds)
    state.update_status(enrolled_at=creds.enrolled_at, last_error=None)
    return creds


__all__ = ["DELIVERED", "DUPLICATE", "REJECTED", "UNAUTHORIZED", "NotEnrolled", "SendResult",
           "TransportError", "choose_kind", "collect", "enroll", "flush", "send"]
