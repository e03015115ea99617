"""A recording HTTP server on 127.0.0.1: the fake behind Slack, webhooks, GitHub and GitLab.

It stores every request it gets (method, path, query, headers, exact body
bytes, and the status it answered) and answers by rules you set; it can be
taken down and brought back on the same port to test outages::

    with Recorder() as server:                    # listening on a free port
        sink = WebhookSink(server.url + "/hook")
        server.reply(500, times=2)                # the next two requests fail
        server.reply(404, path="/gone")           # always, for that path
        server.route("POST", r"/repos/(?P<owner>[^/]+)/.*", handler)  # computed replies
        ...
        server.stop()                             # connection refused from now on
        server.start()                            # back, same port
        [request] = server.wait_for(1)            # bounded wait; AssertionError on timeout
        request.json(), request.header("X-Sealgate-Signature"), request.param("org")

Rules are tried newest first; the first that matches method and path (a
regular expression, matched in full against the path without its query)
answers. A rule with ``times`` is used that many times, then forgotten. With no
matching rule the server answers ``default`` (204 No Content unless told).
A handler gets the ``Request`` and returns a ``Reply`` (or None to fall
through to older rules). Answers are HTTP/1.0: one request per connection,
so a stopped server really refuses the next request.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Reply:
    """What to answer: status, body (bytes, text, or JSON-able), headers, and an optional delay."""

    status: int = 204
    body: bytes | str | Mapping[str, Any] | list[Any] = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode(), headers
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode(), headers


@dataclass(frozen=True)
class Request:
    """One request as received."""

    method: str
    path: str
    """The path, without the query string."""
    target: str
    """The request target exactly as sent (path and query)."""
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    """Header names in lower case."""
    body: bytes
    time: float
    status: int = 0
    """The status the recorder answered with."""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8")


Handler = Callable[[Request], Reply | None]


@dataclass
class _Rule:
    method: str | None
    path: re.Pattern[str] | None
    answer: Reply | Handler
    times: int | None

    def matches(self, request: Request) -> bool:
        if self.method is not None and self.method != request.method:
            return False
        return self.path is None or self.path.fullmatch(request.path) is not None


class Recorder:
    """A recording, scriptable HTTP server on 127.0.0.1 (see the module docstring)."""

    def __init__(self, port: int = 0, default: Reply | None = None) -> None:
        self.port = port
        self.default = default or Reply(204)
        self._requests: list[Request] = []
        self._rules: list[_Rule] = []
        self._lock = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Recorder:
        """Listen (again, on the same port once one was chosen)."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((HOST, self.port), _handler_for(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: clients get "connection refused" until ``start()``."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting ---------------------------------------------------------------------

    def reply(
        self,
        status: int = 204,
        body: bytes | str | Mapping[str, Any] | list[Any] = b"",
        headers: Mapping[str, str] | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer matching requests with this (``times`` uses, or until ``clear_rules``)."""
        answer = Reply(status, body, dict(headers or {}), delay)
        self._add(_Rule(method, re.compile(path) if path else None, answer, times))

    def route(self, method: str | None, path: str, handler: Handler) -> None:
        """Answer matching requests with whatever ``handler(request)`` returns."""
        self._add(_Rule(method, re.compile(path), handler, None))

    def clear_rules(self) -> None:
        with self._lock:
            self._rules.clear()

    def clear(self) -> None:
        """Forget recorded requests (rules stay)."""
        with self._lock:
            self._requests.clear()

    def _add(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.insert(0, rule)

    # --- inspection --------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def wait_for(self, count: int, timeout: float = 10.0, **where: str) -> list[Request]:
        """Wait until ``count`` requests (matching ``method=``/``path=`` if given) have arrived."""

        def matching() -> list[Request]:
            return [r for r in self._requests if all(getattr(r, k) == v for k, v in where.items())]

        deadline = time.monotonic() + timeout
        with self._lock:
            while len(found := matching()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} requests {where or ''} within {timeout} s, "
                        f"got {len(found)}: {[(r.method, r.target, r.status) for r in found]}"
                    )
                self._lock.wait(left)
            return found

    # --- serving -----------------------------------------------------------------------

    def _answer(self, request: Request) -> Reply:
        with self._lock:
            rules = list(self._rules)
        for rule in rules:
            if not rule.matches(request):
                continue
            answer = rule.answer if isinstance(rule.answer, Reply) else rule.answer(request)
            if answer is None:
                continue
            with self._lock:
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0 and rule in self._rules:
                        self._rules.remove(rule)
            return answer
        return self.default

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()


def _handler_for(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def _handle(self) -> None:
            split = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=split.path,
                target=self.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self._body(),
                time=time.time(),
            )
            reply = recorder._answer(request)
            if reply.delay:
                time.sleep(reply.delay)
            body, headers = reply.encoded()
            # Recorded before answering, so a client that got its answer finds its request here.
            recorder._record(replace(request, status=reply.status))
            self.send_response(reply.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return _Handler
