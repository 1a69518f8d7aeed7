"""Transport: backoff bounds, retries against a real loopback HTTP server, spool flush."""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kiemke.agent.config import AgentConfig
from kiemke.agent.spool import Spool
from kiemke.agent.state import Credentials
from kiemke.agent.transport import (
    RETRY_LATER,
    UNAUTHORIZED,
    USER_AGENT,
    Transport,
    backoff_delay,
    check_server_url,
)


def test_backoff_is_full_jitter_within_bounds():
    # the largest possible delay: rng returns its upper bound
    upper = [backoff_delay(a, 2.0, 300.0, rng=lambda lo, hi: hi) for a in range(12)]
    assert upper[:5] == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert max(upper) == 300.0 and upper[-1] == 300.0  # capped
    assert all(backoff_delay(a, 2.0, 300.0, rng=lambda lo, hi: lo) == 0.0 for a in range(12))
    import random
    rng = random.Random(7)
    samples = [backoff_delay(3, 1.0, 5.0, rng=rng.uniform) for _ in range(500)]
    assert all(0.0 <= s <= 5.0 for s in samples)
    assert max(samples) > 4.0 and min(samples) < 1.0  # spread over the whole range
    assert backoff_delay(10_000, 1.0, 60.0, rng=lambda lo, hi: hi) == 60.0  # no overflow


def test_server_url_rules():
    assert check_server_url("https://kiemke.bacgiang.gov.vn/") == "https://kiemke.bacgiang.gov.vn"
    assert check_server_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert check_server_url("http://[::1]:8080") == "http://[::1]:8080"
    with pytest.raises(ValueError, match="https://"):
        check_server_url("http://kiemke.bacgiang.gov.vn")
    assert check_server_url("http://10.0.0.5", insecure=True) == "http://10.0.0.5"
    with pytest.raises(ValueError, match="not a collector URL"):
        check_server_url("kiemke.bacgiang.gov.vn")


class _Collector:
    """A scripted HTTP server on 127.0.0.1: answers come from a list, requests are kept."""

    def __init__(self, answers: list[tuple[int, dict, dict]]) -> None:
        self.answers = answers
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                       "json": json.loads(body)})
                status, payload, headers = (outer.answers.pop(0) if outer.answers
                                            else (202, {"status": "accepted"}, {}))
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_answers():
    servers: list[_Collector] = []

    def make(answers):
        s = _Collector(answers)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


CREDS = Credentials(server="", agent_id="a1", secret="s" * 43, machine_id="0" * 32,
                    unit={"name": "Phòng Tổ chức"}, enrolled_at="2025-01-01T00:00:00Z")


def _cfg(**kw) -> AgentConfig:
    cfg = AgentConfig(retries=4, backoff_base=0.5, backoff_max=3.0, timeout=5.0)
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def _report(kind: str = "periodic") -> dict:
    return {"schema_version": 1, "report_id": str(uuid.uuid4()), "kind": kind,
            "identity": {"unit": "Liên đoàn Lao động tỉnh Bắc Giang"}}


def test_retries_5xx_with_bounded_backoff_then_delivers(fake_answers, tmp_path):
    server = fake_answers([(503, {"error": "busy"}, {}), (500, {}, {}),
                           (429, {"error": "slow down"}, {"Retry-After": "1"})])
    slept: list[float] = []
    t = Transport(_cfg(), server.url, sleep=slept.append)
    spool = Spool(tmp_path / "spool")
    spool.put(_report())
    summary = t.flush(spool, CREDS)
    assert len(summary["delivered"]) == 1 and spool.entries() == []
    assert len(server.requests) == 4
    assert 0 <= slept[0] <= 0.5 and 0 <= slept[1] <= 1.0
    assert slept[2] == 1.0  # Retry-After honoured
    h = server.requests[-1]["headers"]
    assert h["User-Agent"] == USER_AGENT and h["Authorization"] == f"Bearer a1.{'s' * 43}"
    assert server.requests[-1]["json"]["identity"]["unit"] == "Liên đoàn Lao động tỉnh Bắc Giang"


def test_attempts_are_bounded_and_report_stays_spooled(fake_answers, tmp_path):
    server = fake_answers([(503, {}, {})] * 10)
    slept: list[float] = []
    t = Transport(_cfg(retries=3), server.url, sleep=slept.append)
    spool = Spool(tmp_path / "spool")
    spool.put(_report())
    spool.put(_report())
    summary = t.flush(spool, CREDS)
    assert summary["stopped"] == RETRY_LATER and summary["delivered"] == []
    assert len(server.requests) == 3 and len(slept) == 2  # stops at the first report
    assert len(spool.entries()) == 2


def test_full_reports_are_gzipped(fake_answers, tmp_path):
    server = fake_answers([])
    t = Transport(_cfg(), server.url, sleep=lambda s: None)
    spool = Spool(tmp_path / "spool")
    spool.put(_report("periodic"))
    spool.put(_report("full"))
    t.flush(spool, CREDS)
    encodings = [r["headers"].get("Content-Encoding") for r in server.requests]
    assert encodings == [None, "gzip"]


def test_4xx_rejects_and_continues_401_stops(fake_answers, tmp_path):
    server = fake_answers([
        (400, {"error": "invalid", "field": "collected_at", "message": "not a date"}, {}),
        (202, {"status": "accepted"}, {}),
        (401, {"error": "unauthorized"}, {}),
    ])
    t = Transport(_cfg(), server.url, sleep=lambda s: None)
    spool = Spool(tmp_path / "spool")
    ids = [spool.put(_report()).report_id for _ in range(4)]
    summary = t.flush(spool, CREDS)
    assert summary["rejected"] == [ids[0]] and summary["delivered"] == [ids[1]]
    assert summary["stopped"] == UNAUTHORIZED and "re-enroll" in summary["message"]
    assert [e.report_id for e in spool.entries()] == ids[2:]
    reason = next(spool.rejected_dir.glob("*.reason.txt")).read_text("utf-8")
    assert "collected_at" in reason and "not a date" in reason
    assert len(server.requests) == 3  # 401 is not retried


def test_unreachable_is_retry_later(tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    slept: list[float] = []
    t = Transport(_cfg(retries=2), f"http://127.0.0.1:{port}", sleep=slept.append)
    outcome = t.post_report(b"{}", False, CREDS)
    assert outcome.result == RETRY_LATER and "cannot reach" in outcome.message
    assert len(slept) == 1
