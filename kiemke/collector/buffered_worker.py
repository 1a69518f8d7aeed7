"""A gunicorn worker that reads whole requests in its event loop before a thread runs them.

Why: with gunicorn's `gthread` worker a thread waits on the socket while a request
arrives, so a few hundred idle connections or a few slow ("slowloris") clients hold every
thread and healthy agents wait (issue 11: 300 idle connections kept /healthz silent for
45 s; 10 slowloris connections silenced a 1-worker collector). Agents reach the collector
over provincial WANs, where slow and half-open connections are normal.

How: one selector loop per worker process accepts connections and reads bytes into a
buffer per connection. Only when a request is complete (its head, then Content-Length
bytes or a whole chunked body: kiemke/collector/http_framing.py) is it handed to the
thread pool, which parses it with gunicorn's own parser, runs the Flask app and returns
the whole response as bytes; the loop writes them out. A thread therefore never waits on
a client, in either direction. Bounds, all enforced in the loop:

- head within HEAD_TIMEOUT of its first byte, body within BODY_TIMEOUT of the head,
  response written within WRITE_TIMEOUT, else the connection is closed (408 for a head);
- an idle connection (no request started) is closed after `keepalive` seconds once it
  has served a request, after IDLE_TIMEOUT before its first;
- a body over the limit is answered 413 without being stored; the rest of it is read and
  discarded (up to DISCARD_MAX bytes) so the connection stays usable for the next
  request, beyond that the 413 carries `Connection: close`;
- at most `worker_connections` connections per worker (then the listener is paused).

The cost against plain gthread is measured by bench/bench_ingest.py (docs/deployment.md).
TLS is not terminated here: nginx does it (deploy/nginx/kiemke-collector.conf).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import socket
import time
from collections.abc import Callable
from concurrent import futures
from datetime import datetime
from queue import Empty, SimpleQueue
from typing import Any

from gunicorn import http  # type: ignore[import-untyped]
from gunicorn.http import errors as parse_errors  # type: ignore[import-untyped]
from gunicorn.http import wsgi  # type: ignore[import-untyped]
from gunicorn.workers import base  # type: ignore[import-untyped]

from kiemke.collector.http_framing import ChunkedScanner, FramingError, Head, find_head

HEAD_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
WRITE_TIMEOUT = 30.0
IDLE_TIMEOUT = 15.0
LINGER = 2.0  # read and drop what a client still sends before closing after an error
DISCARD_MAX = 16 * 1024 * 1024
RECV_BYTES = 256 * 1024
SWEEP_EVERY = 0.25  # seconds between timeout sweeps (timeouts are whole seconds)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
EMPTY = memoryview(b"")

# Connection states
IDLE, HEAD, BODY, DISCARD, BUSY, WRITE, LINGERING = range(7)


class _Conn:
    __slots__ = ("sock", "client", "server", "buf", "state", "deadline", "scanned", "head",
                 "chunks", "discard_left", "reject", "out", "keep", "served")

    def __init__(self, sock: socket.socket, client: Any, server: Any) -> None:
        self.sock = sock
        self.client = client
        self.server = server
        self.buf = bytearray()
        self.state = IDLE
        self.deadline = time.monotonic() + IDLE_TIMEOUT
        self.scanned = 0
        self.head: Head | None = None
        self.chunks: ChunkedScanner | None = None
        self.discard_left = 0
        self.reject: bytes = b""
        self.out = EMPTY
        self.keep = False
        self.served = 0


class _Sink:
    """Stands in for the socket gunicorn's Response writes to: collects the bytes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.parts.append(bytes(data))

    def send(self, data: bytes) -> int:
        # gunicorn sends "100 Continue" itself when it builds the environ; the loop has
        # already answered it (before the body arrived), so it is not sent twice.
        if data != CONTINUE:
            self.parts.append(bytes(data))
        return len(data)

    def value(self) -> bytes:
        return b"".join(self.parts)

    # gunicorn's error answer (util.write_nonblock) asks for these
    def gettimeout(self) -> float:
        return 0.0

    def setblocking(self, flag: bool) -> None:
        pass


class _Wakeup:
    """Lets pool threads run a callback on the loop thread (a pipe wakes the selector)."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self.queue: SimpleQueue[Callable[[], None]] = SimpleQueue()

    def call(self, callback: Callable[[], None]) -> None:
        self.queue.put(callback)
        try:  # noqa: SIM105 - once per request: no context manager object each time
            os.write(self.write_fd, b"\0")
        except BlockingIOError:
            pass  # the pipe is full, so the loop is already awake and will drain the queue

    def run(self) -> None:
        try:  # noqa: SIM105 - once per wake-up, on the loop's hot path
            os.read(self.read_fd, 4096)
        except BlockingIOError:
            pass
        while True:
            try:
                callback = self.queue.get_nowait()
            except Empty:
                return
            callback()


def error_response(status: int, error: str, field: str | None, message: str,
                   close: bool) -> bytes:
    """The collector's JSON error body ({"error", "field", "message"}) as a raw response."""
    reason = {400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large",
              414: "URI Too Long", 431: "Request Header Fields Too Large",
              501: "Not Implemented"}.get(status, "Error")
    body = json.dumps({"error": error, "field": field, "message": message},
                      ensure_ascii=False).encode()
    connection = "close" if close else "keep-alive"
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: {connection}\r\n\r\n").encode() + body


def parse_refusal(exc: Exception) -> tuple[int, str, str | None, str] | None:
    """(status, error, field, message) for a request gunicorn's parser refused; None if
    `exc` is not such a refusal (then it is a bug, answered 500 by gunicorn)."""
    if isinstance(exc, (parse_errors.InvalidResponseHeader, parse_errors.ConfigurationProblem,
                        parse_errors.InvalidResponseHeaderName)):
        return None  # the application's or the configuration's fault, not the client's
    if isinstance(exc, parse_errors.LimitRequestLine):
        return (414, "uri_too_long", "path",
                f"the request line is too long ({exc}); send the parameters in fewer or "
                f"shorter values")
    if isinstance(exc, parse_errors.LimitRequestHeaders):
        return 431, "headers_too_large", "headers", f"the request headers are too large: {exc}"
    if isinstance(exc, parse_errors.UnsupportedTransferCoding):
        return 501, "unsupported_transfer_coding", "Transfer-Encoding", str(exc)
    if isinstance(exc, (parse_errors.InvalidHeader, parse_errors.InvalidHeaderName,
                        parse_errors.ObsoleteFolding)):
        return 400, "invalid_header", "headers", f"a request header is invalid: {exc}"
    if isinstance(exc, parse_errors.ParseException):
        return 400, "invalid_request", "request_line", f"the request is not valid HTTP: {exc}"
    return None


class BufferedThreadWorker(base.Worker):
    """gunicorn worker: event loop buffers each request, a thread pool runs the app."""

    max_body_bytes = 1024 * 1024  # set by kiemke.collector.server from the config

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alive: bool = True
        self.conns: dict[int, _Conn] = {}
        self.accepting = False
        self.poller: selectors.BaseSelector | None = None
        self.pool: futures.ThreadPoolExecutor | None = None
        self.wakeup: _Wakeup | None = None

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        if cfg.is_ssl:
            raise RuntimeError("the kiemke buffered worker does not terminate TLS: put nginx "
                               "in front (deploy/nginx/kiemke-collector.conf)")

    def init_process(self) -> None:
        self.poller = selectors.DefaultSelector()
        self.pool = futures.ThreadPoolExecutor(max_workers=self.cfg.threads)
        self.wakeup = _Wakeup()
        super().init_process()

    def handle_exit(self, sig: int, frame: Any) -> None:
        if self.alive:
            self.alive = False
            if self.wakeup is not None:
                self.wakeup.call(lambda: None)

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        assert self.poller is not None and self.wakeup is not None
        self.poller.register(self.wakeup.read_fd, selectors.EVENT_READ, None)
        for listener in self.sockets:
            listener.setblocking(False)
        self._set_accepting(True)
        next_sweep = 0.0
        while self.alive:
            self._poll(1.0)
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + SWEEP_EVERY
                self.notify()
                if self.ppid != os.getppid():
                    self.log.info("Parent changed, shutting down: %s", self)
                    break
                self._sweep(now)
                self._set_accepting(len(self.conns) < self.cfg.worker_connections)
        self._stop()

    def _poll(self, timeout: float) -> None:
        assert self.poller is not None
        try:
            events = self.poller.select(timeout)
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise
            return
        for key, mask in events:
            data = key.data
            if data is None:
                assert self.wakeup is not None
                self.wakeup.run()
            elif isinstance(data, _Conn):
                if mask & selectors.EVENT_WRITE:
                    self._write(data)
                else:
                    self._read(data)
            else:
                self._accept(data)

    def _stop(self) -> None:
        """Graceful stop: no new connections; finish what is in flight, within the grace."""
        self._set_accepting(False)
        for conn in list(self.conns.values()):
            if conn.state == IDLE:
                self._close(conn)
        grace = time.monotonic() + self.cfg.graceful_timeout
        while self.conns and time.monotonic() < grace:
            self.notify()
            self._poll(0.2)
            self._sweep(time.monotonic())
            for conn in list(self.conns.values()):
                if conn.state == IDLE:
                    self._close(conn)
        for conn in list(self.conns.values()):
            self._close(conn)
        assert self.pool is not None
        self.pool.shutdown(wait=False)
        for listener in self.sockets:
            listener.close()

    def _set_accepting(self, enabled: bool) -> None:
        enabled = enabled and self.alive
        if enabled == self.accepting:
            return
        assert self.poller is not None
        for listener in self.sockets:
            if enabled:
                self.poller.register(listener, selectors.EVENT_READ, listener)
            else:
                self.poller.unregister(listener)
        self.accepting = enabled

    def _accept(self, listener: Any) -> None:
        assert self.poller is not None
        for _ in range(64):  # several at once: one wake-up per burst, not per connection
            if len(self.conns) >= self.cfg.worker_connections:
                self._set_accepting(False)
                return
            try:
                sock, client = listener.accept()
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                    return
                raise
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock, client, listener.getsockname())
            self.conns[sock.fileno()] = conn
            self.poller.register(sock, selectors.EVENT_READ, conn)

    def _sweep(self, now: float) -> None:
        for conn in list(self.conns.values()):
            if conn.state == BUSY or now < conn.deadline:
                continue
            if conn.state == HEAD:
                self._fail(conn, FramingError(
                    408, "request_timeout", "headers",
                    f"the request head did not arrive within {HEAD_TIMEOUT:g} s"))
            elif conn.state == BODY:
                self._fail(conn, FramingError(
                    408, "request_timeout", "body",
                    f"the request body did not arrive within {BODY_TIMEOUT:g} s"))
            else:  # idle, discarding, writing to a client that does not read, lingering
                self._close(conn)

    # ------------------------------------------------------------------ reading

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        if conn.state == LINGERING:
            return  # dropped: the answer is sent, the connection is closing
        conn.buf += data
        try:
            self._advance(conn)
        except FramingError as exc:
            self._fail(conn, exc)

    def _advance(self, conn: _Conn) -> None:
        """Move the connection on as far as the buffered bytes allow."""
        now = time.monotonic()
        if conn.state == IDLE and conn.buf:
            conn.state, conn.deadline, conn.scanned = HEAD, now + HEAD_TIMEOUT, 0
        if conn.state == HEAD:
            head = find_head(conn.buf, conn.scanned)
            if head is None:
                conn.scanned = len(conn.buf)
                return
            conn.head = head
            conn.state, conn.deadline = BODY, now + BODY_TIMEOUT
            limit = self.max_body_bytes
            if head.content_length is not None and head.content_length > limit:
                if head.expect_continue and len(conn.buf) == head.length:
                    # The client waits before sending the body: say no at once.
                    raise FramingError(413, "body_too_large", "body", self._too_large())
                self._reject_large(conn, head.content_length)
                del conn.buf[:head.length]
                return self._discard(conn)
            conn.chunks = ChunkedScanner(head.length) if head.chunked else None
            if head.expect_continue and len(conn.buf) == head.length:
                self._send_now(conn, CONTINUE)
        if conn.state == BODY:
            head = conn.head
            assert head is not None
            if conn.chunks is not None:
                conn.chunks.scan(conn.buf)
                if conn.chunks.data_bytes > self.max_body_bytes:
                    self._reject_large(conn, -1)
                    return self._discard(conn)
                if not conn.chunks.done:
                    return
                end = conn.chunks.end
            else:
                end = head.length + (head.content_length or 0)
                if len(conn.buf) < end:
                    return
            request = bytes(conn.buf[:end])
            del conn.buf[:end]
            self._dispatch(conn, request)
        elif conn.state == DISCARD:
            self._discard(conn)

    def _reject_large(self, conn: _Conn, left: int) -> None:
        """Answer 413 after dropping the body, if it is small enough to drop."""
        message = self._too_large()
        if left > DISCARD_MAX:
            raise FramingError(413, "body_too_large", "body", message)
        conn.state = DISCARD
        conn.discard_left = left
        conn.reject = error_response(413, "body_too_large", "body", message, close=False)
        if conn.chunks is not None:
            conn.chunks.skip_to_end(conn.buf)

    def _too_large(self) -> str:
        return (f"the request body is larger than the {self.max_body_bytes} bytes the "
                f"collector accepts; raise KIEMKE_MAX_BODY_BYTES on the collector if such "
                f"reports are expected")

    def _discard(self, conn: _Conn) -> None:
        if conn.chunks is not None:  # chunked: walk to its end, dropping the data
            conn.chunks.scan(conn.buf)
            dropped = conn.chunks.pos
            conn.chunks.skip_to_end(conn.buf)
            conn.discard_left -= dropped  # negative: counts what was dropped
            if -conn.discard_left > DISCARD_MAX:
                raise FramingError(413, "body_too_large", "body", self._too_large())
            if not conn.chunks.done:
                return
            conn.chunks = None
        else:
            take = min(conn.discard_left, len(conn.buf))
            del conn.buf[:take]
            conn.discard_left -= take
            if conn.discard_left > 0:
                return
        self._respond(conn, conn.reject, keep=True)

    # ------------------------------------------------------------------ the app

    def _dispatch(self, conn: _Conn, request: bytes) -> None:
        assert self.poller is not None and self.pool is not None
        conn.state = BUSY
        self.poller.unregister(conn.sock)
        future = self.pool.submit(self._handle, conn, request)
        wakeup = self.wakeup
        assert wakeup is not None
        future.add_done_callback(lambda f: wakeup.call(lambda: self._finished(conn, f)))

    def _handle(self, conn: _Conn, request: bytes) -> tuple[bytes, bool]:
        """Runs in a pool thread: the whole request in, the whole response out."""
        sink = _Sink()
        req = None
        try:
            parser = http.RequestParser(self.cfg, iter([request]), conn.client)
            req = next(parser)
            if not req:
                return b"", False
            return self._run_app(req, conn, sink)
        except parse_errors.ParseException as exc:
            refusal = parse_refusal(exc)
            if refusal is not None:  # the client's fault: a JSON answer like every other
                self.log.warning("Invalid request from ip=%s: %s", conn.client[0]
                                 if isinstance(conn.client, tuple) else conn.client, exc)
                status, error, field, message = refusal
                return error_response(status, error, field, message, close=True), False
            sink.parts.clear()
            self.handle_error(req, sink, conn.client, exc)
            return sink.value(), False
        except Exception as exc:  # noqa: BLE001 - gunicorn answers it (500) and logs
            sink.parts.clear()
            self.handle_error(req, sink, conn.client, exc)
            return sink.value(), False

    def _run_app(self, req: Any, conn: _Conn, sink: _Sink) -> tuple[bytes, bool]:
        started = datetime.now()
        resp, environ = wsgi.create(req, sink, conn.client, conn.server, self.cfg)
        environ["wsgi.multithread"] = True
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        if not self.alive or not self.cfg.keepalive:
            resp.force_close()
        respiter = self.wsgi(environ, resp.start_response)
        try:
            for item in respiter:
                resp.write(item)
            resp.close()
        finally:
            self.log.access(resp, req, environ, datetime.now() - started)
            if hasattr(respiter, "close"):
                respiter.close()
        return sink.value(), not resp.should_close()

    def _finished(self, conn: _Conn, future: futures.Future[tuple[bytes, bool]]) -> None:
        if conn.sock.fileno() < 0:
            return
        try:
            out, keep = future.result()
        except Exception:  # noqa: BLE001 - _handle answers errors itself; this is a bug
            self.log.exception("request handling failed")
            self._close(conn, unregister=False)
            return
        assert self.poller is not None
        self.poller.register(conn.sock, selectors.EVENT_READ, conn)
        self._respond(conn, out, keep=keep and self.alive)

    # ------------------------------------------------------------------ writing

    def _send_now(self, conn: _Conn, data: bytes) -> None:
        with contextlib.suppress(OSError):  # the response write will see a broken connection
            conn.sock.send(data)

    def _respond(self, conn: _Conn, data: bytes, keep: bool) -> None:
        conn.out = memoryview(data)
        conn.keep = keep
        conn.state = WRITE
        conn.deadline = time.monotonic() + WRITE_TIMEOUT
        self._write(conn)

    def _write(self, conn: _Conn) -> None:
        assert self.poller is not None
        try:
            while conn.out:
                sent = conn.sock.send(conn.out)
                conn.out = conn.out[sent:]
        except (BlockingIOError, InterruptedError):
            self.poller.modify(conn.sock, selectors.EVENT_WRITE, conn)
            return
        except OSError:
            self._close(conn)
            return
        # An empty slice still holds the whole response (20 MB for a plain /metrics at
        # 100,000 machines) for as long as the connection waits for its next request.
        conn.out = EMPTY
        if self.poller.get_key(conn.sock).events != selectors.EVENT_READ:
            self.poller.modify(conn.sock, selectors.EVENT_READ, conn)
        if not conn.keep:
            self._linger(conn)
            return
        conn.served += 1
        conn.state, conn.head, conn.chunks = IDLE, None, None
        conn.deadline = time.monotonic() + (self.cfg.keepalive or IDLE_TIMEOUT)
        if conn.buf:  # a pipelined request is already here
            try:
                self._advance(conn)
            except FramingError as exc:
                self._fail(conn, exc)

    def _fail(self, conn: _Conn, exc: FramingError) -> None:
        self.log.debug("refusing a request from %s: %s", conn.client, exc.message)
        conn.buf.clear()
        self._respond(conn, error_response(exc.status, exc.error, exc.field, exc.message,
                                           close=True), keep=False)

    def _linger(self, conn: _Conn) -> None:
        """Half-close, then drop what the client still sends for a moment: closing with
        unread bytes would reset the connection and could destroy the answer in flight."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.state, conn.deadline = LINGERING, time.monotonic() + LINGER
        conn.buf.clear()

    def _close(self, conn: _Conn, unregister: bool = True) -> None:
        fd = conn.sock.fileno()
        if fd < 0:
            return
        self.conns.pop(fd, None)
        if unregister and conn.state != BUSY:
            assert self.poller is not None
            with contextlib.suppress(KeyError, ValueError):
                self.poller.unregister(conn.sock)
        conn.sock.close()
