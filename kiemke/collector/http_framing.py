"""Find where one HTTP/1.1 request ends in a byte buffer, without trusting the client.

The buffered worker (kiemke/collector/buffered_worker.py) reads requests in its event
loop and hands a request to a thread only once all of it has arrived. For that it must
know, cheaply and safely, whether the bytes received so far hold a whole request: the
end of the head, then Content-Length bytes or a complete chunked body. This module does
only that framing (plus the limits that must apply before any body is stored); the full
parse and validation of the request is gunicorn's own parser, run on the complete bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

# Head (request line + headers): gunicorn's own limits allow ~800 KiB; agents send < 1 KiB.
MAX_HEAD_BYTES = 64 * 1024
# A chunk-size line ("1a2b;ext\r\n"): bounded so a client cannot make us buffer an endless
# line, and hex digits bounded so the size stays a small integer.
MAX_CHUNK_LINE = 1024
MAX_CHUNK_HEX_DIGITS = 15

_CRLF2 = b"\r\n\r\n"


class FramingError(Exception):
    """The bytes cannot be a valid request: answer `status` and close the connection."""

    def __init__(self, status: int, error: str, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.field, self.message = status, error, field, message


@dataclass
class Head:
    """What the framing needs from a request head."""

    length: int  # bytes of the head, including the blank line
    content_length: int | None
    chunked: bool
    expect_continue: bool


def find_head(buf: bytes | bytearray, start: int = 0) -> Head | None:
    """The head at the start of `buf`, or None while its blank line has not arrived.

    `start` is where the previous search stopped (so a head trickled in byte by byte is
    scanned once, not once per byte)."""
    end = buf.find(_CRLF2, max(0, start - 3), MAX_HEAD_BYTES + 4)
    if end < 0:
        if len(buf) > MAX_HEAD_BYTES:
            raise FramingError(431, "headers_too_large", "headers",
                               f"the request head is larger than {MAX_HEAD_BYTES} bytes")
        return None
    head = bytes(buf[:end]).lower()
    content_length: int | None = None
    chunked = False
    expect_continue = False
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue  # gunicorn's parser refuses it with its own message
        name = name.strip()
        value = value.strip()
        if name == b"content-length":
            if not value.isdigit() or len(value) > 18:
                raise FramingError(400, "invalid_header", "Content-Length",
                                   "Content-Length must be a whole number of bytes")
            number = int(value)
            if content_length is not None and content_length != number:
                raise FramingError(400, "invalid_header", "Content-Length",
                                   "the request has two different Content-Length headers")
            content_length = number
        elif name == b"transfer-encoding":
            codings = [c.strip() for c in value.split(b",")]
            if codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
                raise FramingError(501, "unsupported_transfer_encoding", "Transfer-Encoding",
                                   "only 'Transfer-Encoding: chunked' is supported")
            chunked = True
        elif name == b"expect" and value == b"100-continue":
            expect_continue = True
    if chunked and content_length is not None:
        # A request smuggling vector (RFC 9112 6.3): refuse rather than pick one.
        raise FramingError(400, "invalid_header", "Transfer-Encoding",
                           "a request may not have both Content-Length and "
                           "Transfer-Encoding")
    return Head(end + 4, content_length, chunked, expect_continue)


class ChunkedScanner:
    """Walks a chunked body as bytes arrive; knows where it ends and how much data it holds.

    Call `scan(buf, body_start)` after each read; it resumes where it stopped.
    `done` is True once the last chunk and the trailers have arrived; `end` is then the
    offset just past the body in `buf`.
    """

    def __init__(self, body_start: int) -> None:
        self.pos = body_start
        self.data_bytes = 0
        self.done = False
        self.end = -1
        self._state = "size"  # size -> data -> data_crlf -> size ... -> trailers
        self._remaining = 0

    def scan(self, buf: bytes | bytearray) -> None:  # noqa: C901 - one state machine
        while not self.done:
            if self._state == "size":
                eol = buf.find(b"\r\n", self.pos, self.pos + MAX_CHUNK_LINE)
                if eol < 0:
                    if len(buf) - self.pos > MAX_CHUNK_LINE:
                        raise _bad_chunk("a chunk-size line is too long")
                    return
                digits = bytes(buf[self.pos:eol]).split(b";", 1)[0].strip()
                if not digits or len(digits) > MAX_CHUNK_HEX_DIGITS or \
                        any(c not in b"0123456789abcdefABCDEF" for c in digits):
                    raise _bad_chunk("a chunk size is not a hexadecimal number")
                self._remaining = int(digits, 16)
                self.pos = eol + 2
                self._state = "data" if self._remaining else "trailers"
            elif self._state == "data":
                available = min(len(buf) - self.pos, self._remaining)
                self.pos += available
                self._remaining -= available
                self.data_bytes += available
                if self._remaining:
                    return
                self._state = "data_crlf"
            elif self._state == "data_crlf":
                if len(buf) - self.pos < 2:
                    return
                if buf[self.pos:self.pos + 2] != b"\r\n":
                    raise _bad_chunk("a chunk is not followed by CRLF")
                self.pos += 2
                self._state = "size"
            else:  # trailers: lines until an empty one
                eol = buf.find(b"\r\n", self.pos, self.pos + MAX_HEAD_BYTES)
                if eol < 0:
                    if len(buf) - self.pos > MAX_HEAD_BYTES:
                        raise _bad_chunk("the trailers are too long")
                    return
                empty = eol == self.pos
                self.pos = eol + 2
                if empty:
                    self.done = True
                    self.end = self.pos

    def skip_to_end(self, buf: bytearray) -> None:
        """Drop the bytes already scanned (an over-limit body being discarded)."""
        del buf[:self.pos]
        self.pos = 0


def _bad_chunk(why: str) -> FramingError:
    return FramingError(400, "malformed_chunked_body", "body",
                        f"the chunked request body is malformed: {why}")
