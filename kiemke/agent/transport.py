"""HTTP to the collector: enrolment, report delivery, spool flushing.

Every request has a timeout. Failures that may pass (connection errors, 5xx, 429) are
retried a bounded number of times with exponential backoff and full jitter
(sleep = uniform(0, min(backoff_max, backoff_base * 2**attempt))), honouring
Retry-After. TLS is verified by default (ca_bundle for a private PKI).

Plain http:// is refused for every request (enrolment, reports) unless the collector is
on loopback or the operator set `[agent] allow_insecure_http = true` (lab networks):
the secret and the reports would otherwise cross the network unencrypted. Redirects
are not followed (a redirect could lead the bearer secret to another host or to http://).
Every request first asks the allow-list (probe_policy.py), as probes do.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import requests

import kiemke
from kiemke.agent.collectors.base import iso_utc
from kiemke.agent.config import AgentConfig
from kiemke.agent.probe_policy import check_host
from kiemke.agent.report import encode, encode_gzip
from kiemke.agent.server_url import (  # noqa: F401 - re-exported for callers of transport
    INSECURE_HINT,
    InsecureServer,
    check_server_url,
    is_loopback_url,
)
from kiemke.agent.spool import Spool
from kiemke.agent.state import Credentials
from kiemke.schema.digest import unchanged_form

log = logging.getLogger(__name__)

USER_AGENT = f"kiemke-agent/{kiemke.__version__}"
DELIVERED, DUPLICATE, REJECTED, UNAUTHORIZED, RETRY_LATER = (
    "delivered", "duplicate", "rejected", "unauthorized", "retry_later")


class TransportError(Exception):
    """A request could not be completed; `outcome` says what the caller should do."""

    def __init__(self, outcome: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.status = status


def backoff_delay(attempt: int, base: float, cap: float,
                  rng: Callable[[float, float], float] = random.uniform) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**attempt)), attempt counted from 0."""
    ceiling = min(cap, base * (2 ** min(attempt, 30)))
    return rng(0.0, max(0.0, ceiling))


def _error_text(resp: requests.Response) -> str:
    """The collector's JSON error ({"error","field","message"}) as one line."""
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP {resp.status_code}: {resp.text[:200].strip() or resp.reason}"
    if isinstance(body, dict):
        parts = [str(body.get("message") or body.get("error") or "")]
        if body.get("field"):
            parts.append(f"(field: {body['field']})")
        return f"HTTP {resp.status_code}: " + " ".join(p for p in parts if p)
    return f"HTTP {resp.status_code}"


@dataclass
class Outcome:
    result: str  # DELIVERED | DUPLICATE | REJECTED | UNAUTHORIZED | RETRY_LATER
    message: str = ""
    status: int | None = None
    answer: dict[str, Any] | None = None  # the collector's JSON answer, when it had one
    error: str | None = None  # its `error` code on a 4xx


def _answer(resp: requests.Response) -> dict[str, Any] | None:
    try:
        body = resp.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def stamped_body(report: dict[str, Any], gzipped: bool) -> Callable[[], bytes]:
    """The report's body with `sent_at` set to the moment of each attempt (the collector
    measures the machine's clock offset with it); everything else, `sequence` included,
    stays what the report was given when it was made."""
    def body() -> bytes:
        report["sent_at"] = iso_utc(datetime.now(timezone.utc))
        return encode_gzip(report) if gzipped else encode(report)
    return body


class Transport:
    def __init__(self, config: AgentConfig, server: str,
                 sleep: Callable[[float], Any] = time.sleep,
                 rng: Callable[[float, float], float] = random.uniform) -> None:
        self.config = config
        # Every request of this object goes to this URL: checked once, here.
        self.server = check_server_url(server, insecure=config.allow_insecure_http)
        self.sleep = sleep
        self.rng = rng
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.trust_env = False  # never route reports through a user's proxy env
        if config.proxy:  # only the proxy the configuration names
            self.session.proxies = {"http": config.proxy, "https": config.proxy}
        if config.ca_bundle:
            self.session.verify = config.ca_bundle
        else:
            self.session.verify = bool(config.verify_tls)

    def close(self) -> None:
        self.session.close()

    def _retry_after(self, resp: requests.Response) -> float | None:
        value = resp.headers.get("Retry-After", "")
        try:
            return min(float(value), self.config.backoff_max)
        except ValueError:
            return None

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One call with bounded retries; raises TransportError(RETRY_LATER) at the end."""
        attempts = max(1, int(self.config.retries))
        host = urlsplit(self.server).hostname or ""
        last = ""
        for attempt in range(attempts):
            delay: float | None = None
            check_host(host, f"a request to the collector {self.server}")
            # A callable body is built again for each attempt (it carries the send time).
            call = {**kwargs, "data": kwargs["data"]()} if callable(kwargs.get("data")) \
                else kwargs
            try:
                resp = self.session.request(method, self.server + path,
                                            timeout=self.config.timeout,
                                            allow_redirects=False, **call)
            except requests.exceptions.SSLError as exc:
                raise TransportError(RETRY_LATER, f"TLS check of {self.server} failed: "
                                     f"{exc}. Set ca_bundle to your CA file.") from exc
            except requests.RequestException as exc:
                last = f"cannot reach the collector at {self.server}: " \
                       f"{type(exc).__name__}"
            else:
                if 300 <= resp.status_code < 400:
                    raise TransportError(RETRY_LATER, (
                        f"the collector at {self.server} answered HTTP {resp.status_code}, "
                        f"a redirect to {resp.headers.get('Location', '(no Location)')}; "
                        "the agent does not follow redirects. Set [agent] server to the "
                        "collector's own URL."), resp.status_code)
                if resp.status_code < 500 and resp.status_code != 429:
                    return resp
                last = _error_text(resp)
                delay = self._retry_after(resp)
            if attempt + 1 < attempts:
                if delay is None:
                    delay = backoff_delay(attempt, self.config.backoff_base,
                                          self.config.backoff_max, self.rng)
                log.info("%s %s failed (%s); retry %d/%d in %.1f s", method, path, last,
                         attempt + 1, attempts - 1, delay)
                if self.sleep(delay) is True:  # an Event.wait() said: stop now
                    break
        raise TransportError(RETRY_LATER, last)

    def enroll(self, token: str, machine_id: str, hostname: str) -> dict[str, Any]:
        resp = self._request("POST", "/api/v1/enroll", json={
            "token": token, "machine_id": machine_id, "hostname": hostname})
        if resp.status_code in (200, 201):
            body = resp.json()
            if not isinstance(body, dict) or not body.get("agent_id") or not body.get("secret"):
                raise TransportError(REJECTED, "the collector's enrolment answer has no "
                                     "agent_id/secret; is this URL a kiemke collector?")
            return body
        if resp.status_code in (401, 403):
            raise TransportError(UNAUTHORIZED, "the collector refused the enrolment token "
                                 f"({_error_text(resp)}). Ask for a new token "
                                 "(kiemke-collector tokens create --unit ...).", 401)
        if resp.status_code == 404:
            raise TransportError(REJECTED, f"{self.server} has no kiemke enrolment API "
                                 "(HTTP 404); check the server URL.", 404)
        raise TransportError(REJECTED, _error_text(resp), resp.status_code)

    def post_report(self, body: bytes | Callable[[], bytes], gzipped: bool,
                    creds: Credentials) -> Outcome:
        """POST one report body (bytes, or a callable making them at each attempt:
        stamped_body)."""
        headers = {"Authorization": creds.bearer(), "Content-Type": "application/json"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        try:
            resp = self._request("POST", "/api/v1/reports", data=body, headers=headers)
        except TransportError as exc:
            return Outcome(exc.outcome, exc.message, exc.status)
        answer = _answer(resp)
        if resp.status_code == 202:
            return Outcome(DELIVERED, "accepted", 202, answer)
        if 200 <= resp.status_code < 300:
            return Outcome(DUPLICATE if resp.status_code == 200 else DELIVERED,
                           "already received", resp.status_code, answer)
        if resp.status_code == 401:
            return Outcome(UNAUTHORIZED, "the collector no longer accepts this agent's "
                           "credentials: re-enroll with kiemke-agent enroll --server=URL "
                           "--token=TOKEN", 401)
        error = answer.get("error") if answer else None
        return Outcome(REJECTED, _error_text(resp), resp.status_code, answer,
                       error if isinstance(error, str) else None)

    def post_spooled(self, report: dict[str, Any], gzipped: bool, creds: Credentials,
                     known_digest: str | None) -> tuple[Outcome, str | None]:
        """Post one report: as `unchanged` when its facts_digest is the one the collector
        last acknowledged, else in full; the same report in full when the collector does
        not know the digest (409 facts_digest_unknown). Returns the outcome and the digest
        the collector now holds for this machine (None: not known, send in full next)."""
        digest = report.get("facts_digest")
        if digest and digest == known_digest and report.get("kind") == "periodic":
            def unchanged() -> bytes:  # stamped at each attempt, as stamped_body
                report["sent_at"] = iso_utc(datetime.now(timezone.utc))
                return encode(unchanged_form(report))

            outcome = self.post_report(unchanged, False, creds)
            if outcome.result != REJECTED or outcome.error != "facts_digest_unknown":
                return outcome, _held_digest(outcome, digest)
            log.info("the collector does not know the facts of report %s; sending it in "
                     "full", report.get("report_id"))
        outcome = self.post_report(stamped_body(report, gzipped), gzipped, creds)
        return outcome, _held_digest(outcome, digest)

    def flush(self, spool: Spool, creds: Credentials,
              known_digest: str | None = None) -> dict[str, Any]:
        """Deliver spooled reports oldest first; stop at the first one that must wait.
        `known_digest`: the facts_digest the collector last acknowledged.

        Returns {"delivered": [report_id...], "rejected": [...], "stopped": outcome|None,
        "message": str, "facts_digest": the digest the collector holds now or None}.
        """
        summary: dict[str, Any] = {"delivered": [], "rejected": [], "stopped": None,
                                   "message": "", "facts_digest": known_digest}
        for entry in spool.entries():
            try:
                report = json.loads(gzip.decompress(spool.raw(entry)))
                if not isinstance(report, dict):
                    raise ValueError("not a JSON object")
            except (OSError, ValueError, EOFError) as exc:  # rejected locally, not sent
                spool.reject(entry, f"the spooled file is damaged: {exc}")
                summary["rejected"].append(entry.report_id)
                continue
            outcome, summary["facts_digest"] = self.post_spooled(
                report, entry.kind == "full", creds, summary["facts_digest"])
            if outcome.result in (DELIVERED, DUPLICATE):
                spool.remove(entry)
                summary["delivered"].append(entry.report_id)
            elif outcome.result == REJECTED:
                spool.reject(entry, outcome.message)
                summary["rejected"].append(entry.report_id)
            else:
                summary["stopped"] = outcome.result
                summary["message"] = outcome.message
                break
        return summary


def _held_digest(outcome: Outcome, sent: str | None) -> str | None:
    """The digest the collector says it holds after this answer: only a 202 that names
    the digest just sent counts (a duplicate, a late report or an old collector: not)."""
    answer = outcome.answer or {}
    if outcome.status == 202 and sent and answer.get("facts_digest") == sent:
        return sent
    return None
