"""What `send`, `run` and `enroll` do: collect, spool, deliver; enrol this machine."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from kiemke.agent.collectors.base import Context, iso_utc
from kiemke.agent.collectors.identity import IdentityCollector
from kiemke.agent.config import AgentConfig
from kiemke.agent.exitcodes import (
    EXIT_NOT_ENROLLED,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_SPOOL_FAILED,
    EXIT_SPOOLED,
)
from kiemke.agent.filelock import LockBusy, exclusive
from kiemke.agent.report import build_report, nfc
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
    stamped_body,
)

log = logging.getLogger(__name__)

MAX_SPOOL_ERRORS = 16  # the schema's bound on agent.spool_errors


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


def record_status(state: StateDir, **fields: Any) -> None:
    """status.json is bookkeeping: a full or read-only disk must not stop delivery."""
    try:
        state.update_status(**fields)
    except OSError as exc:
        log.warning("cannot update %s: %s", state.status_path, exc)


def spool_error_entry(spool: Spool, report: dict[str, Any], exc: OSError) -> dict[str, Any]:
    """The report's `agent.spool_errors` entry for a report the spool could not keep."""
    return {"at": iso_utc(datetime.now(timezone.utc)), "path": str(spool.dir)[:1024],
            "message": (f"{exc.strerror or exc} (errno {exc.errno})" if exc.errno
                        else str(exc))[:1024],
            "report_id": str(report.get("report_id"))[:64]}


def add_spool_errors(report: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    if entries:
        agent = report.setdefault("agent", {})
        agent["spool_errors"] = (agent.get("spool_errors", []) + entries)[-MAX_SPOOL_ERRORS:]


def spool_report(config: AgentConfig, state: StateDir, report: dict[str, Any]
                 ) -> dict[str, Any] | None:
    """Give the report its sequence number, then put it in the spool; when that fails
    (disk full, read-only), add the failure to the report itself and return it, to be
    sent directly."""
    sequence = state.next_sequence()
    if sequence is not None:
        report["sequence"] = sequence
    spool = open_spool(config, state)
    try:
        spool.put(report)
    except OSError as exc:
        entry = spool_error_entry(spool, report, exc)
        add_spool_errors(report, [entry])
        log.error("cannot keep report %s in the spool %s: %s. %s", report["report_id"],
                  spool.dir, entry["message"], disk_advice(state))
        return report
    return None


def disk_advice(state: StateDir) -> str:
    return (f"Free space on the disk that holds {state.path} (or make it writable), or set "
            "state_dir in the [agent] section of the configuration to a disk with room; "
            "the spool needs at most spool_max_bytes (50 MiB by default).")


def _lock(state: StateDir, wait: float) -> contextlib.AbstractContextManager[None]:
    path = state.path / "deliver.lock"
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as exc:  # cannot even create the lock file (full disk): deliver anyway
        log.warning("cannot use %s (%s); delivering without it", path, exc)
        return contextlib.nullcontext()
    return exclusive(path, wait=wait)


def _post_direct(transport: Transport, report: dict[str, Any], creds: Credentials,
                 summary: dict[str, Any]) -> None:
    """Send a report that is not in the spool; there is no file to keep or reject."""
    gzipped = report.get("kind") == "full"
    outcome = transport.post_report(stamped_body(report, gzipped), gzipped, creds)
    report_id = report["report_id"]
    if outcome.result in (DELIVERED, DUPLICATE):
        summary["delivered"].append(report_id)
    elif outcome.result == REJECTED:
        log.error("the collector rejected report %s (sent directly, not kept): %s",
                  report_id, outcome.message)
        summary["rejected"].append(report_id)
    else:
        summary["lost"].append(report_id)
        summary["stopped"] = outcome.result
        summary["message"] = outcome.message


def flush(config: AgentConfig, state: StateDir, creds: Credentials,
          sleep: Callable[[float], Any] = time.sleep,
          direct: dict[str, Any] | None = None) -> dict[str, Any]:
    """Deliver what the spool holds, then `direct` (a report the spool could not keep),
    and record the outcome in status.json.

    Returns {"delivered": [...], "rejected": [...], "lost": [...], "stopped": outcome|None,
    "message": str}; "lost" holds the direct report when it could not be delivered.
    """
    spool = open_spool(config, state)
    now = iso_utc(datetime.now(timezone.utc))
    summary: dict[str, Any] = {"delivered": [], "rejected": [], "lost": [], "stopped": None,
                               "message": ""}
    if not spool.entries() and direct is None:
        return summary
    try:
        transport = Transport(config, server_for(config, creds), sleep=sleep)
    except InsecureServer as exc:  # send/run check first; this covers a changed server
        summary.update(stopped="insecure", message=str(exc))
        if direct is not None:
            summary["lost"].append(direct["report_id"])
        record_status(state, last_attempt_at=now, last_error=str(exc), last_error_at=now)
        log.error("reports kept in the spool: %s", exc)
        return summary
    try:
        # One deliverer at a time: a manual `send` during a scheduled run waits its turn
        # instead of posting the same spooled reports twice.
        with _lock(state, config.timeout * 2):
            summary.update(transport.flush(spool, creds,
                                           state.status().get("facts_digest")))
            if direct is not None:
                if summary["stopped"]:  # the collector cannot be reached now
                    summary["lost"].append(direct["report_id"])
                else:
                    _post_direct(transport, direct, creds, summary)
    except LockBusy as exc:
        summary.update(stopped="busy", message=f"{exc}; the report stays in the spool and "
                       "goes with the next delivery")
        if direct is not None:
            summary["lost"].append(direct["report_id"])
    finally:
        transport.close()
    # Kept even when nothing was delivered: a 409 or a rejection forgets it (None).
    fields: dict[str, Any] = {"last_attempt_at": now,
                              "facts_digest": summary.get("facts_digest")}
    if summary["delivered"]:
        fields["last_success_at"] = now
    if summary["stopped"]:
        fields["last_error"] = summary["message"]
        fields["last_error_at"] = now
        log.warning("reports kept in the spool for later: %s", summary["message"])
    elif not summary["rejected"]:
        fields["last_error"] = None
    record_status(state, **fields)
    if summary["delivered"]:
        log.info("delivered %d report(s) to %s", len(summary["delivered"]),
                 server_for(config, creds))
    return summary


def send(config: AgentConfig, state: StateDir, force_full: bool = False,
         sleep: Callable[[float], Any] = time.sleep) -> SendResult:
    """Collect one report, spool it, deliver the spool in order.

    When the spool cannot keep the report (disk full, read-only), the spooled reports
    are still delivered and the new one is sent directly after them, carrying an
    `agent.spool_errors` entry; the exit code is then EXIT_SPOOL_FAILED.
    """
    creds = state.load_credentials()
    if creds is None:
        raise NotEnrolled(f"this agent is not enrolled (no {state.credentials_path}). Run: "
                          "kiemke-agent enroll --server=URL --token=TOKEN")
    kind = choose_kind(config, state, force_full)
    report = collect(config, state, kind)
    spool = open_spool(config, state)
    direct = spool_report(config, state, report)
    if kind == "full":
        record_status(state, last_full_at=report["collected_at"])
    report_id = report["report_id"]
    summary = flush(config, state, creds, sleep, direct=direct)
    result = SendResult(EXIT_OK, "", report_id, summary["delivered"], summary["rejected"])
    earlier = len([r for r in summary["delivered"] if r != report_id])
    if direct is not None:
        result.exit_code = EXIT_SPOOL_FAILED
        entry = direct["agent"]["spool_errors"][-1]
        head = (f"cannot keep report {report_id} in the spool {entry['path']}: "
                f"{entry['message']}. ")
        if report_id in summary["delivered"]:
            what = (f"It was sent directly to {server_for(config, creds)} and accepted"
                    + (f", after {earlier} spooled earlier" if earlier else "") + ".")
        elif report_id in summary["rejected"]:
            what = "It was sent directly and the collector rejected it (see the log)."
        else:
            what = (f"It could not be sent directly either ({summary['message']}), so it "
                    "is LOST" + (f"; {earlier} spooled earlier were delivered" if earlier
                                 else "") + ".")
        result.message = f"{head}{what} {disk_advice(state)}"
    elif report_id in summary["delivered"]:
        result.message = (f"report {report_id} ({kind}) delivered to "
                          f"{server_for(config, creds)}")
        if earlier:
            result.message += f", with {earlier} spooled earlier"
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
        body = transport.enroll(token, identity["machine_id"], nfc(identity["hostname"]))
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
