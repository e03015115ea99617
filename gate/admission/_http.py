"""HTTP/1.1 for the webhook, without I/O: strict, keep-alive, pipelining, nothing more.

``http.server`` parses every header block with the ``email`` package and
writes headers and body as two TLS records; on a warm admission that was
half the webhook's CPU. The API server sends small requests with a
``Content-Length`` over kept-alive connections, so this reads exactly that
and refuses everything else with a status and one sentence (the server then
closes the connection):

* a request head over ``MAX_HEAD`` bytes or ``MAX_HEADERS`` lines (431),
  folded or malformed header lines, control characters (a bare CR or LF, which
  ends a line for other parsers) in a value or the target, a bad request line (400), HTTP other
  than 1.0/1.1 (505);
* ``Transfer-Encoding`` (501: with ``Content-Length`` it is how requests
  are smuggled), a missing, repeated or non-numeric ``Content-Length`` on a
  body (411/400), a body over the limit (413, not read);
* a client that takes longer than ``REQUEST_TIMEOUT`` to send one whole
  request once it has started (408, enforced by the server with ``started``),
  or sits idle for ``IDLE_TIMEOUT``.

Pipelined requests are answered in order; ``Expect: 100-continue`` is honoured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEAD = 16 * 1024
"""Request line plus headers; the API server sends a few hundred bytes."""
MAX_HEADERS = 64
IDLE_TIMEOUT = 60.0
"""Seconds a kept-alive connection may sit idle; the API server reconnects when it needs to."""
REQUEST_TIMEOUT = 10.0
"""Seconds from a request's first byte to its last: how long a slow client may hold on."""
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
"""Not in a header value (tab is): a bare CR or LF ends a line for some parsers, not here."""
_REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class HTTPError(Exception):
    """A request that gets ``status`` and ``message``, after which the connection closes."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class HTTPRequest:
    method: str
    path: str
    """The target without its query."""
    headers: dict[str, str]
    """Names lowercased."""
    body: bytes
    keep_alive: bool


class RequestReader:
    """Bytes in, requests out, for one connection: the framing and the refusals, no I/O.

    ``feed`` what arrives, then call ``next`` until it returns None (more is
    needed); it raises HTTPError for a request that must be refused.
    """

    def __init__(self, *, max_body: int) -> None:
        self.max_body = max_body
        self.continue_needed = False
        """Set when a request asked for ``100 Continue`` and its body has not all arrived."""
        self._buffer = bytearray()
        self._head: tuple[str, str, str, dict[str, str], int] | None = None

    @property
    def started(self) -> bool:
        """Part of a request is here: the request deadline runs, not the idle timeout."""
        return self._head is not None or bool(self._buffer.strip(b"\r\n"))

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next(self) -> HTTPRequest | None:
        """The next whole request, or None until more bytes arrive."""
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0 and len(self._buffer) <= MAX_HEAD:
                return None
            if end < 0 or end > MAX_HEAD:
                raise HTTPError(431, f"the request head is larger than {MAX_HEAD} bytes")
            head = bytes(self._buffer[:end]).lstrip(b"\r\n")
            del self._buffer[: end + 4]
            method, path, version, headers = _parse_head(head)
            length = self._length(method, headers)
            self._head = (method, path, version, headers, length)
            if len(self._buffer) < length and headers.get("expect", "").lower() == "100-continue":
                self.continue_needed = True
        method, path, version, headers, length = self._head
        if len(self._buffer) < length:
            return None
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._head = None
        self.continue_needed = False
        connection = headers.get("connection", "").lower()
        keep = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        return HTTPRequest(method, path, headers, body, keep)

    def eof(self) -> None:
        """The client closed its side; HTTPError if that cut a request short."""
        if self.started:
            raise HTTPError(400, "the connection closed in the middle of a request")

    def _length(self, method: str, headers: dict[str, str]) -> int:
        if "transfer-encoding" in headers:
            raise HTTPError(501, "Transfer-Encoding is not accepted; send a Content-Length")
        text = headers.get("content-length")
        if text is None:
            if method == "POST":
                raise HTTPError(411, "a POST needs a Content-Length")
            return 0
        if not text.isascii() or not text.isdigit() or len(text) > 12:
            raise HTTPError(400, "the Content-Length is not a number of bytes")
        length = int(text)
        if length > self.max_body:
            raise HTTPError(413, f"the body is larger than {self.max_body} bytes")
        return length


def response(status: int, body: bytes, content_type: str, *, close: bool) -> bytes:
    """One whole response, to go out in one write (one TLS record for small answers)."""
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
        f"Server: sealgate-admission\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    )
    return head.encode("ascii") + body


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def timed_out() -> HTTPError:
    """The refusal of a request that did not arrive within ``REQUEST_TIMEOUT``."""
    return HTTPError(408, f"the request took longer than {REQUEST_TIMEOUT:g} s to arrive")


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Method, path (no query), version and lowercased headers; HTTPError when malformed."""
    lines = head.split(b"\r\n")
    if len(lines) > MAX_HEADERS + 1:
        raise HTTPError(431, f"the request has more than {MAX_HEADERS} header lines")
    parts = lines[0].split(b" ")
    if (
        len(parts) != 3
        or not _TOKEN.fullmatch(parts[0])
        or not parts[1].startswith(b"/")
        or _CONTROL.search(parts[1].replace(b"\t", b"\n"))
    ):
        raise HTTPError(400, "the request line is not 'METHOD /path HTTP/1.1'")
    version = parts[2]
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        if version.startswith(b"HTTP/"):
            raise HTTPError(505, "only HTTP/1.1 and HTTP/1.0 are spoken here")
        raise HTTPError(400, "the request line is not 'METHOD /path HTTP/1.1'")
    try:
        target = parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise HTTPError(400, "the request target is not ASCII") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HTTPError(400, "a header line is malformed (folded, or no 'Name: value')")
        key = name.decode("ascii").lower()
        if _CONTROL.search(value):
            raise HTTPError(400, "a header value has a control character (a bare CR or LF?)")
        text = value.strip(b" \t").decode("latin-1")
        if key in headers:
            if key in ("content-length", "transfer-encoding", "host"):
                raise HTTPError(400, f"the {key} header is repeated")
            text = headers[key] + ", " + text
        headers[key] = text
    return parts[0].decode("ascii"), target.split("?", 1)[0], version.decode("ascii"), headers
