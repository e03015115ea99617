"""HTTP/1.1 for the webhook: strict, keep-alive, one connection per thread, nothing more.

``http.server`` parses every header block with the ``email`` package and
writes headers and body as two TLS records; on a warm admission that was
half the webhook's CPU. The API server sends small requests with a
``Content-Length`` over kept-alive connections, so this reads exactly that
and refuses everything else with a status and one sentence, then closes:

* a request head over ``MAX_HEAD`` bytes or ``MAX_HEADERS`` lines (431),
  folded or malformed header lines, a bad request line (400), HTTP other
  than 1.0/1.1 (505);
* ``Transfer-Encoding`` (501: with ``Content-Length`` it is how requests
  are smuggled), a missing, repeated or non-numeric ``Content-Length`` on a
  body (411/400), a body over the limit (413, not read);
* a client that takes longer than ``REQUEST_TIMEOUT`` to send one whole
  request once it has started (408), or sits idle for ``IDLE_TIMEOUT``.

Pipelined requests are answered in order; ``Expect: 100-continue`` is honoured.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass

MAX_HEAD = 16 * 1024
"""Request line plus headers; the API server sends a few hundred bytes."""
MAX_HEADERS = 64
IDLE_TIMEOUT = 60.0
"""Seconds a kept-alive connection may sit idle; the API server reconnects when it needs to."""
REQUEST_TIMEOUT = 10.0
"""Seconds from a request's first byte to its last: a slow client cannot hold a thread longer."""
_READ = 65536
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
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


class Connection:
    """Requests read from, and responses written to, one blocking (TLS) socket."""

    def __init__(self, sock: socket.socket, *, max_body: int) -> None:
        self.sock = sock
        self.max_body = max_body
        self._buffer = bytearray()
        self._timeout: float | None = None
        """What the socket's timeout is set to: setting it is two fcntl calls, so only on change."""

    def _set_timeout(self, seconds: float) -> None:
        if seconds != self._timeout:
            self.sock.settimeout(seconds)
            self._timeout = seconds

    def next_request(self) -> HTTPRequest | None:
        """The next request; None when the client closed or went idle between requests.

        Raises HTTPError for a request that must be refused (then close), and
        OSError (e.g. TimeoutError) when the socket fails.
        """
        deadline: float | None = None
        searched = 0
        while True:
            end = self._buffer.find(b"\r\n\r\n", searched)
            if end >= 0:
                break
            if len(self._buffer) > MAX_HEAD:
                raise HTTPError(431, f"the request head is larger than {MAX_HEAD} bytes")
            searched = max(0, len(self._buffer) - 3)
            if deadline is None and self._buffer.strip():
                deadline = time.monotonic() + REQUEST_TIMEOUT
            if not self._receive(deadline):
                if self._buffer.strip():
                    raise HTTPError(400, "the connection closed in the middle of a request")
                return None
        if end > MAX_HEAD:
            raise HTTPError(431, f"the request head is larger than {MAX_HEAD} bytes")
        if deadline is None:
            deadline = time.monotonic() + REQUEST_TIMEOUT
        head = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        method, path, version, headers = _parse_head(head.lstrip(b"\r\n"))
        length = self._length(method, headers)
        if length and headers.get("expect", "").lower() == "100-continue":
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        while len(self._buffer) < length:
            if not self._receive(deadline):
                raise HTTPError(400, "the connection closed before the whole body arrived")
        body = bytes(self._buffer[:length])
        del self._buffer[:length]
        connection = headers.get("connection", "").lower()
        keep = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        return HTTPRequest(method, path, headers, body, keep)

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

    def _receive(self, deadline: float | None) -> bool:
        """Read more into the buffer; False when the client closed its side."""
        if deadline is None:
            self._set_timeout(IDLE_TIMEOUT)
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _slow()
            self._set_timeout(left)
        try:
            data = self.sock.recv(_READ)
        except TimeoutError:
            if deadline is None:
                return False  # idle between requests: close quietly
            raise _slow() from None
        self._buffer += data
        return bool(data)

    def send(self, status: int, body: bytes, content_type: str, *, close: bool) -> None:
        """One response in one write (one TLS record, one TCP segment for small answers)."""
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
            f"Server: sealgate-admission\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
        )
        # A client that stops reading is let go after IDLE_TIMEOUT (the timeout kept from the
        # read before, or less): one send of a small answer normally never waits at all.
        self._set_timeout(min(self._timeout or IDLE_TIMEOUT, IDLE_TIMEOUT))
        self.sock.sendall(head.encode("ascii") + body)


def _slow() -> HTTPError:
    return HTTPError(408, f"the request took longer than {REQUEST_TIMEOUT:g} s to arrive")


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Method, path (no query), version and lowercased headers; HTTPError when malformed."""
    lines = head.split(b"\r\n")
    if len(lines) > MAX_HEADERS + 1:
        raise HTTPError(431, f"the request has more than {MAX_HEADERS} header lines")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1].startswith(b"/"):
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
        text = value.strip(b" \t").decode("latin-1")
        if key in headers:
            if key in ("content-length", "transfer-encoding", "host"):
                raise HTTPError(400, f"the {key} header is repeated")
            text = headers[key] + ", " + text
        headers[key] = text
    return parts[0].decode("ascii"), target.split("?", 1)[0], version.decode("ascii"), headers
