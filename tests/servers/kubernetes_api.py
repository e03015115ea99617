"""A Kubernetes API server for the two reads the admission webhook makes, over real HTTPS.

No API server runs on these machines, so this one serves what a real one
sends for ``GET /api/v1/namespaces/{ns}/secrets/{name}`` and
``.../serviceaccounts/{name}``: objects serialised by the official
``kubernetes`` client's models (``V1Secret`` with base64 ``data``,
``V1ServiceAccount``), errors as ``v1.Status`` objects with the API server's
own messages and reasons (401 Unauthorized, 403 Forbidden, 404 NotFound).
It listens on 127.0.0.1 with a certificate from its own CA and checks the
bearer token on every request, as the real one does. Every request is
recorded in ``requests`` (method, path, whether the token was right).

``kubeconfig(path)`` writes a kubeconfig for it (CA and token inline, as
``kubectl config view --raw`` shows them); ``service_account_dir(path)``
writes the files a pod gets (``token``, ``ca.crt``, ``namespace``) and
``env`` is the pod's ``KUBERNETES_SERVICE_HOST``/``_PORT``.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import (
    ApiClient,
    V1LocalObjectReference,
    V1ObjectMeta,
    V1Secret,
    V1ServiceAccount,
    V1Status,
    V1StatusDetails,
)

from tests.admission_wire import CA

USER = "system:serviceaccount:sealgate:sealgate-admission"
_PATH = re.compile(r"/api/v1/namespaces/([^/]+)/(secrets|serviceaccounts)/([^/?]+)")


def docker_config_json(host: str, username: str, password: str) -> dict[str, bytes]:
    """The ``data`` of a ``kubernetes.io/dockerconfigjson`` secret, as ``kubectl create
    secret docker-registry`` writes it."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    body = {"auths": {host: {"username": username, "password": password, "auth": auth}}}
    return {".dockerconfigjson": json.dumps(body).encode()}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    authorized: bool


@dataclass
class KubernetesAPI:
    """Start with ``start(directory)``; add objects with ``add_secret``/``add_service_account``."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    accounts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    forbidden: set[str] = field(default_factory=set)
    """Namespaces whose secrets the webhook's service account may not get (403)."""
    requests: list[Seen] = field(default_factory=list)
    drip: float = 0.0
    """Seconds between the bytes of a 200 body: a slow (or slowed) API server."""
    ca: CA | None = None
    _server: ThreadingHTTPServer | None = None

    def add_secret(self, namespace: str, name: str, data: dict[str, bytes], kind: str) -> None:
        model = V1Secret(
            api_version="v1",
            kind="Secret",
            metadata=self._meta(namespace, name),
            type=kind,
            data={k: base64.b64encode(v).decode() for k, v in data.items()},
        )
        self.secrets[(namespace, name)] = ApiClient().sanitize_for_serialization(model)

    def add_service_account(self, namespace: str, name: str, pull_secrets: list[str]) -> None:
        model = V1ServiceAccount(
            api_version="v1",
            kind="ServiceAccount",
            metadata=self._meta(namespace, name),
            image_pull_secrets=[V1LocalObjectReference(name=n) for n in pull_secrets] or None,
        )
        self.accounts[(namespace, name)] = ApiClient().sanitize_for_serialization(model)

    @staticmethod
    def _meta(namespace: str, name: str) -> V1ObjectMeta:
        return V1ObjectMeta(
            name=name,
            namespace=namespace,
            uid=str(uuid.uuid4()),
            resource_version="4711",
            creation_timestamp="2026-01-01T00:00:00Z",
        )

    # -- the server --

    def start(self, directory: Path) -> KubernetesAPI:
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = CA.create(directory)
        cert, key = directory / "apiserver.crt", directory / "apiserver.key"
        self.ca.issue(cert, key, common_name="kube-apiserver")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        api = self

        class Handler(_Handler):
            owner = api

        server = _Server(("127.0.0.1", 0), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, name="kube-api", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> KubernetesAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(self.port)}

    def kubeconfig(self, path: Path, *, token: str | None = None) -> Path:
        assert self.ca is not None
        ca = base64.b64encode(self.ca.bundle.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "test",
            "clusters": [
                {"name": "local", "cluster": {"server": self.url, "certificate-authority-data": ca}}
            ],
            "users": [{"name": "webhook", "user": {"token": token or self.token}}],
            "contexts": [{"name": "test", "context": {"cluster": "local", "user": "webhook"}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def service_account_dir(self, directory: Path) -> Path:
        assert self.ca is not None
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "token").write_text(self.token)
        (directory / "ca.crt").write_bytes(self.ca.bundle.read_bytes())
        (directory / "namespace").write_text("sealgate")
        return directory


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _status(code: int, reason: str, message: str, name: str = "", kind: str = "") -> bytes:
    details = V1StatusDetails(name=name, kind=kind) if name else None
    model = V1Status(
        api_version="v1",
        kind="Status",
        metadata={},
        status="Failure",
        message=message,
        reason=reason,
        details=details,
        code=code,
    )
    return json.dumps(ApiClient().sanitize_for_serialization(model)).encode()


class _Handler(BaseHTTPRequestHandler):
    owner: KubernetesAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        api = self.owner
        authorized = self.headers.get("Authorization") == f"Bearer {api.token}"
        api.requests.append(Seen("GET", self.path, authorized))
        if not authorized:
            self._send(401, _status(401, "Unauthorized", "Unauthorized"))
            return
        match = _PATH.fullmatch(self.path.split("?", 1)[0])
        if match is None:
            self._send(
                404, _status(404, "NotFound", "the server could not find the requested resource")
            )
            return
        namespace, resource, name = match.groups()
        if resource == "secrets" and namespace in api.forbidden:
            message = (
                f'secrets "{name}" is forbidden: User "{USER}" cannot get resource "secrets" '
                f'in API group "" in the namespace "{namespace}"'
            )
            self._send(403, _status(403, "Forbidden", message, name, resource))
            return
        found = (api.secrets if resource == "secrets" else api.accounts).get((namespace, name))
        if found is None:
            message = f'{resource} "{name}" not found'
            self._send(404, _status(404, "NotFound", message, name, resource))
            return
        if not api.drip:
            self._send(200, json.dumps(found).encode())
            return
        body = json.dumps(found).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        for i in range(len(body)):  # bounded: one pass over the body, ends when the client goes
            time.sleep(api.drip)
            try:
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
            except OSError:
                return
