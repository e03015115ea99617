"""A bearer-token server for docker-registry's ``auth: token`` mode (distribution token.md).

Debian ships no token server, so tests run this one in a thread (PEERS.md §1):
``GET /token?service=&scope=`` with HTTP Basic (or anonymous), or ``POST
/token`` with an OAuth2 ``refresh_token`` grant (docker identity tokens).
Tokens are ES256 JWTs whose header carries ``x5c`` (registry 2.8 needs it) and
whose ``access`` grants every requested action to a known user. Every
request is recorded in ``requests`` so tests can count and inspect them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class TokenRequest:
    """What one request to the token server asked for and got."""

    method: str
    username: str | None
    """Who was granted (or who tried, when refused); None when anonymous."""
    scopes: tuple[str, ...]
    status: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 stalls concurrent clients for 1 s


def _self_signed(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _parse_scope(scope: str) -> dict[str, object] | None:
    """``repository:demo/app:pull,push`` -> one ``access`` entry."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not kind or not name:
        return None
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


@dataclass
class TokenServer:
    """A token server on 127.0.0.1; ``start(directory)`` writes its certificate there."""

    users: Mapping[str, str] = field(default_factory=dict)
    """username -> password accepted with HTTP Basic."""
    refresh_tokens: Mapping[str, str] = field(default_factory=dict)
    """refresh (identity) token -> username, for ``POST`` grants and ``<token>`` Basic logins."""
    service: str = "sealgate-test-registry"
    issuer: str = "sealgate-test-issuer"
    expires_in: int = 300
    anonymous_pull: bool = False
    """Grant ``pull`` to anonymous requests (like a public Docker Hub repository)."""
    requests: list[TokenRequest] = field(default_factory=list)
    port: int = 0
    cert_path: Path | None = None
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _key_pem: bytes = field(default=b"", repr=False)
    _x5c: list[str] = field(default_factory=list, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def start(self, directory: Path) -> TokenServer:
        """Listen on a free loopback port; write ``token.crt`` (the registry's rootcertbundle)."""
        key, cert = _self_signed(self.issuer)
        self._key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        directory.mkdir(parents=True, exist_ok=True)
        self.cert_path = directory / "token.crt"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._server = _Server(("127.0.0.1", self.port), self._handler())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="token-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def issue(self, subject: str, scopes: list[str]) -> str:
        """A signed token granting ``scopes`` to ``subject`` (every requested action)."""
        now = int(time.time())
        access = [a for a in (_parse_scope(s) for s in scopes) if a is not None]
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.expires_in,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        return jwt.encode(claims, self._key_pem, algorithm="ES256", headers={"x5c": self._x5c})

    def _record(self, entry: TokenRequest) -> None:
        with self._lock:
            self.requests.append(entry)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass  # keep pytest output clean; requests are recorded instead

            def _reply(self, status: int, body: dict[str, object]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _basic(self) -> tuple[str, str] | None:
                header = self.headers.get("Authorization", "")
                if not header.lower().startswith("basic "):
                    return None
                try:
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    return ("", "")
                return user, password

            def _grant(self, method: str, subject: str | None, scopes: list[str]) -> None:
                if subject is None and not server.anonymous_pull:
                    granted: list[str] = []
                elif subject is None:
                    granted = [s.rsplit(":", 1)[0] + ":pull" for s in scopes if ":" in s]
                else:
                    granted = scopes
                token = server.issue(subject or "", granted)
                server._record(TokenRequest(method, subject, tuple(scopes), 200))
                self._reply(
                    200,
                    {
                        "token": token,
                        "access_token": token,
                        "expires_in": server.expires_in,
                        "issued_at": dt.datetime.now(dt.UTC).isoformat(),
                    },
                )

            def _refuse(self, method: str, who: str | None, scopes: list[str]) -> None:
                server._record(TokenRequest(method, who, tuple(scopes), 401))
                self._reply(401, {"details": "incorrect username or password"})

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                scopes = [s for value in query.get("scope", []) for s in value.split()]
                if url.path != "/token":
                    self._reply(404, {"details": "not found"})
                    return
                creds = self._basic()
                if creds is None:
                    self._grant("GET", None, scopes)
                elif creds[0] == "<token>" and creds[1] in server.refresh_tokens:
                    self._grant("GET", server.refresh_tokens[creds[1]], scopes)
                elif creds[0] in server.users and server.users[creds[0]] == creds[1]:
                    self._grant("GET", creds[0], scopes)
                else:
                    self._refuse("GET", creds[0], scopes)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                scopes = form.get("scope", "").split()
                if urlsplit(self.path).path != "/token":
                    self._reply(404, {"details": "not found"})
                elif form.get("grant_type") == "refresh_token":
                    user = server.refresh_tokens.get(form.get("refresh_token", ""))
                    if user is None:
                        self._refuse("POST", "<refresh>", scopes)
                    else:
                        self._grant("POST", user, scopes)
                elif form.get("grant_type") == "password":
                    user, password = form.get("username", ""), form.get("password", "")
                    if server.users.get(user) == password and user:
                        self._grant("POST", user, scopes)
                    else:
                        self._refuse("POST", user, scopes)
                else:
                    self._reply(400, {"details": "unsupported grant_type"})

        return Handler
