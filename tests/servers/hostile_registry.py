"""A registry that is on the attacker's side, for tests of what Sealgate sends and waits for.

``HostileRegistry(answer)`` listens on a loopback address (any 127.x.y.z, so
"another host" needs no interface) and answers every request with what
``answer(request)`` returns: a bearer challenge naming any realm, a token, a
manifest, or a reply whose status line or body trickles out one byte at a
time. Every request is recorded in ``seen`` with its ``Authorization`` header,
so a test can say exactly which credentials reached this host. With
``tls=`` it speaks HTTPS, and answers plain HTTP the way Go's servers do
(``400 Client sent an HTTP request to an HTTPS server``), so the client's
HTTP-then-HTTPS probe for local registries works against it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MAX_TRICKLE_SECONDS = 60.0
"""A trickle ends by itself after this long, so a broken test cannot hang the suite."""


@dataclass(frozen=True)
class Request:
    """One request as the hostile server saw it."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    started: float
    """``time.monotonic()`` when the request arrived."""
    client_port: int = 0
    """The client's source port: the same port is the same (kept-alive) connection."""

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass(frozen=True)
class Answer:
    """What to send back; ``trickle`` sends one byte every that many seconds."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    trickle: float | None = None
    trickle_status_line: bool = False
    """Trickle from the first byte of the status line (else: headers at once, then the body)."""
    delay: float = 0.0
    """Seconds to wait before answering (to hold requests in flight)."""


Handler = Callable[[Request], Answer]


@dataclass(frozen=True)
class TLSFiles:
    cert: Path
    key: Path


def make_tls(directory: Path, address: str) -> TLSFiles:
    """A self-signed certificate for ``address`` (an IP), written under ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(directory / f"{address}.crt", directory / f"{address}.key")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


_PLAIN_TO_TLS = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
    b"Client sent an HTTP request to an HTTPS server.\n"
)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            first = request.recv(1, socket.MSG_PEEK)
            if first != b"\x16":  # not a TLS handshake: answer as Go's net/http does
                request.sendall(_PLAIN_TO_TLS)
                return
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            with contextlib.suppress(OSError):
                wrapped.close()


class HostileRegistry:
    """An HTTP(S) server on ``address`` answering with ``handler``; ``stop()`` it."""

    def __init__(
        self, handler: Handler, *, address: str = "127.0.0.1", tls: TLSFiles | None = None
    ) -> None:
        self.handler = handler
        self.seen: list[Request] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server((address, 0), self._handler_class())
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert, tls.key)
            self._server.tls = context
        self.scheme = "https" if tls is not None else "http"
        self.host = f"{address}:{self._server.server_address[1]}"
        """``address:port``, the registry part of an image reference."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def authorizations(self) -> list[str]:
        """Every Authorization header this host received."""
        with self._lock:
            return [r.authorization for r in self.seen if r.authorization]

    def _enter(self, request: Request) -> None:
        with self._lock:
            self.seen.append(request)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(min(length, 1 << 20))
                request = Request(
                    self.command,
                    url.path,
                    parse_qs(url.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    time.monotonic(),
                    int(self.client_address[1]),
                )
                server._enter(request)
                try:
                    self._answer(server.handler(request))
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                    self.close_connection = True
                finally:
                    server._leave()

            def _answer(self, answer: Answer) -> None:
                if answer.delay:
                    server._stopping.wait(answer.delay)
                head = f"HTTP/1.1 {answer.status} Hostile\r\n"
                head += f"Content-Length: {len(answer.body)}\r\n"
                for name, value in answer.headers.items():
                    head += f"{name}: {value}\r\n"
                head += "\r\n"
                body = b"" if self.command == "HEAD" else answer.body
                if answer.trickle is None:
                    self.wfile.write(head.encode() + body)
                    self.wfile.flush()
                    return
                self.close_connection = True
                data = head.encode() + body
                if not answer.trickle_status_line:
                    self.wfile.write(head.encode())
                    self.wfile.flush()
                    data = body
                ends = time.monotonic() + MAX_TRICKLE_SECONDS
                for byte in data:
                    if server._stopping.wait(answer.trickle) or time.monotonic() > ends:
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        return H


# --- answers a test can compose ----------------------------------------------------------


def manifest_body() -> bytes:
    """A small OCI manifest (its blobs do not exist: enough for resolve and for digests)."""
    empty = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": empty,
                "size": 2,
            },
            "layers": [],
        },
        separators=(",", ":"),
    ).encode()


def bearer_challenge(realm: str, scope: str = "") -> Answer:
    value = f'Bearer realm="{realm}",service="hostile"'
    if scope:
        value += f',scope="{scope}"'
    return Answer(401, b"{}", {"WWW-Authenticate": value, "Content-Type": "application/json"})


def basic_challenge() -> Answer:
    return Answer(401, b"{}", {"WWW-Authenticate": 'Basic realm="hostile"'})


def token_answer(token: str) -> Answer:
    body = json.dumps({"token": token, "expires_in": 300}).encode()
    return Answer(200, body, {"Content-Type": "application/json"})


def manifest_answer(body: bytes | None = None, **kwargs: Any) -> Answer:
    return Answer(200, body or manifest_body(), {"Content-Type": OCI_MANIFEST}, **kwargs)
