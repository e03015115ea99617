"""A small Kubernetes API client: GET one object as JSON, from a kubeconfig or in-cluster.

The webhook needs two reads (a Secret, a ServiceAccount), so instead of the
official client (a heavy dependency for two GETs) this is ``requests`` with a
kubeconfig reader for what ``kubectl`` reads most often: the server and its
CA, a bearer token (inline or ``tokenFile``), a client certificate and key
(files or ``-data``), or a username and password. ``exec`` and
``auth-provider`` plugins run programs and are out of scope: they are an
error that says so, never a silent anonymous request.

In-cluster, the service account's files under
``/var/run/secrets/kubernetes.io/serviceaccount`` (``token``, ``ca.crt``) and
``KUBERNETES_SERVICE_HOST``/``_PORT`` name the API; the token is read again
for every request, since the kubelet rotates bound tokens in place.

Errors are one sentence from our side of the wire: the reply body of a
Secret holds the secret, so no body and no token ever reaches a message or a
log line.

NOTE: https://kubernetes.io/docs/reference/config-api/kubeconfig.v1/ and
https://kubernetes.io/docs/tasks/run-application/access-api-from-pod/
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import yaml

from gate.errors import UnavailableError, UsageError
from gate.registry_deadline import BoundedAdapter, Deadline

log = logging.getLogger("gate.admission")
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 2.0
"""Per socket read; the time an object's reads take comes out of its ``--verify-timeout``."""
REQUEST_BUDGET = 3.0
"""Seconds one GET may take in all (connect, headers and body): per-read timeouts alone
let a server that sends a byte a second hold the request for as long as the body is."""
POOL_SIZE = 8
MAX_REPLY = 1024 * 1024
"""A Secret is at most 1 MiB; anything larger is not one."""


class KubeError(UnavailableError):
    """The Kubernetes API could not be asked, or refused; the message is safe to show."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class KubeAPI:
    """GET JSON objects from one API server; thread-safe, ``close()`` when done."""

    def __init__(
        self,
        server: str,
        *,
        ca: str | None = None,
        insecure: bool = False,
        token: str | None = None,
        token_file: str | None = None,
        client_cert: tuple[str, str] | None = None,
        basic: tuple[str, str] | None = None,
        cleanup: str | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self._verify: bool | str = False if insecure else (ca or True)
        self._token = token
        self._token_file = token_file
        self._cleanup = cleanup
        self._session = requests.Session()
        self._session.trust_env = False  # our CA and no proxies from the environment
        self._session.headers["Accept"] = "application/json"
        self._session.headers["User-Agent"] = "sealgate-admission"
        adapter = BoundedAdapter(POOL_SIZE)  # its pools cut connections at a request's deadline
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        if client_cert is not None:
            self._session.cert = client_cert
        if basic is not None:
            self._session.auth = basic
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KubeAPI({self.server!r})"  # never the token

    # -- configuration --

    @classmethod
    def in_cluster(
        cls,
        base: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
        env: Mapping[str, str] | None = None,
    ) -> KubeAPI:
        """The API as a pod sees it: the service-account files in ``base`` and the env."""
        env = os.environ if env is None else env
        host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port:
            raise UsageError(
                "--in-cluster needs KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, "
                "which Kubernetes sets in every pod; outside a cluster use --kubeconfig FILE"
            )
        folder = Path(base)
        token, ca = folder / "token", folder / "ca.crt"
        for path in (token, ca):
            if not path.is_file():
                raise UsageError(
                    f"--in-cluster: {path} does not exist; mount the service-account token "
                    "(automountServiceAccountToken: true, as `admission manifests "
                    "--pull-secrets` does)"
                )
        netloc = f"[{host}]" if ":" in host else host
        return cls(f"https://{netloc}:{port}", ca=str(ca), token_file=str(token))

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], context: str | None = None) -> KubeAPI:
        """The cluster and user of ``context`` (default: ``current-context``) in a kubeconfig."""
        source = Path(path)
        try:
            data = yaml.safe_load(source.read_text(encoding="utf-8"))
        except OSError as e:
            raise UsageError(f"cannot read the kubeconfig {source}: {e.strerror}") from None
        except (yaml.YAMLError, UnicodeDecodeError):
            raise UsageError(f"the kubeconfig {source} is not YAML") from None
        if not isinstance(data, dict):
            raise UsageError(f"the kubeconfig {source} is not a kubeconfig (no mapping)")
        name = context or data.get("current-context")
        if not name:
            raise UsageError(f"the kubeconfig {source} has no current-context")
        ctx = _named(data, "contexts", "context", name, source)
        cluster = _named(data, "clusters", "cluster", ctx.get("cluster"), source)
        user = _named(data, "users", "user", ctx.get("user"), source) if ctx.get("user") else {}
        if "exec" in user or "auth-provider" in user:
            plugin = "exec" if "exec" in user else "auth-provider"
            raise UsageError(
                f"the kubeconfig {source} user '{ctx.get('user')}' authenticates with an "
                f"{plugin} plugin, which Sealgate does not run; give it a token, tokenFile "
                "or client certificate (e.g. a service account's kubeconfig)"
            )
        server = cluster.get("server")
        if not isinstance(server, str) or not server.startswith("https://"):
            raise UsageError(f"the kubeconfig {source} cluster has no https:// server")
        if "@" in urlsplit(server).netloc:  # the server is logged and named in every error
            raise UsageError(
                f"the kubeconfig {source} cluster's server URL holds a user name or password; "
                "put credentials in the user entry (token, tokenFile or client certificate)"
            )
        insecure = cluster.get("insecure-skip-tls-verify") is True
        if insecure and (
            cluster.get("certificate-authority") or cluster.get("certificate-authority-data")
        ):
            raise UsageError(
                f"the kubeconfig {source} cluster gives both a certificate authority and "
                "insecure-skip-tls-verify; keep the CA and drop insecure-skip-tls-verify"
            )
        if insecure:
            log.warning(
                "the kubeconfig %s says insecure-skip-tls-verify: Sealgate does not verify the "
                "Kubernetes API's TLS certificate, and its token goes to whoever answers at %s",
                source,
                server,
            )
        folder = source.parent
        spool: list[str] = []

        def file(key: str, where: Mapping[str, Any]) -> str | None:
            """``key`` as a path (relative to the kubeconfig), or ``key-data`` spooled to one."""
            if isinstance(where.get(f"{key}-data"), str):
                if not spool:
                    spool.append(tempfile.mkdtemp(prefix="sealgate-kube-"))
                try:
                    raw = base64.b64decode(where[f"{key}-data"], validate=True)
                except (binascii.Error, ValueError):
                    raise UsageError(f"the kubeconfig {source}: {key}-data is not base64") from None
                target = Path(spool[0]) / key
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(raw)
                return str(target)
            value = where.get(key)
            if isinstance(value, str) and value:
                return str(folder / value) if not Path(value).is_absolute() else value
            return None

        try:
            cert, key = file("client-certificate", user), file("client-key", user)
            token_file = user.get("tokenFile")
            return cls(
                server,
                ca=file("certificate-authority", cluster),
                insecure=insecure,
                token=user.get("token") if isinstance(user.get("token"), str) else None,
                token_file=str(folder / token_file) if isinstance(token_file, str) else None,
                client_cert=(cert, key) if cert and key else None,
                basic=(
                    (str(user["username"]), str(user["password"]))
                    if user.get("username") and user.get("password")
                    else None
                ),
                cleanup=spool[0] if spool else None,
            )
        except BaseException:
            if spool:
                shutil.rmtree(spool[0], ignore_errors=True)
            raise

    def close(self) -> None:
        self._session.close()
        if self._cleanup:
            shutil.rmtree(self._cleanup, ignore_errors=True)
            self._cleanup = None

    # -- requests --

    def _bearer(self) -> str | None:
        if self._token_file:
            try:
                return Path(self._token_file).read_text().strip() or None
            except OSError as e:
                raise KubeError(
                    f"cannot read the Kubernetes API token {self._token_file}: {e.strerror}"
                ) from None
        return self._token

    def get(self, path: str, what: str, *, budget: float = REQUEST_BUDGET) -> dict[str, Any]:
        """GET ``path``; ``what`` names the object in errors (``secret shop/regcred``).

        The whole exchange ends within ``budget`` seconds. Raises KubeError with
        ``code`` (404, 403, …) when the API answers with an error, and without one when
        it cannot be reached, is too slow, or answers with something else.
        """
        headers = {}
        token = self._bearer()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        budget = max(budget, 0.001)
        deadline = Deadline(self.server, budget)
        late = KubeError(
            f"cannot read {what}: the Kubernetes API at {self.server} did not answer "
            f"within {budget:.3g} s"
        )
        try:
            with deadline.active():
                response = self._session.get(
                    self.server + path,
                    headers=headers,
                    verify=self._verify,
                    timeout=(min(CONNECT_TIMEOUT, budget), min(READ_TIMEOUT, budget)),
                    allow_redirects=False,
                    stream=True,
                )
        except requests.exceptions.SSLError:
            deadline.finish()
            if deadline.expired:
                raise late from None
            raise KubeError(
                f"cannot read {what}: no trusted TLS connection to the Kubernetes API at "
                f"{self.server} (check the CA in the kubeconfig or ca.crt)"
            ) from None
        except requests.RequestException as e:
            deadline.finish()
            if deadline.expired:
                raise late from None
            raise KubeError(
                f"cannot read {what}: the Kubernetes API at {self.server} is unreachable "
                f"({type(e).__name__})"
            ) from None
        try:
            body = response.raw.read(MAX_REPLY + 1, decode_content=True)
        except Exception:
            body = b""
        finally:
            response.close()
            deadline.finish()
        if deadline.expired:  # the body may look whole after the cut: never trust it
            raise late
        code = response.status_code
        if code == 200 and len(body) <= MAX_REPLY:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                found = json.loads(body)
                if isinstance(found, dict):
                    return found
            raise KubeError(f"cannot read {what}: the Kubernetes API sent no JSON object")
        if code == 404:
            raise KubeError(f"{what} does not exist", code=code)
        if code == 403:
            raise KubeError(
                f"the webhook may not read {what} (403 Forbidden): grant its service "
                "account 'get' on secrets (`admission manifests --pull-secrets`)",
                code=code,
            )
        if code == 401:
            raise KubeError(
                f"cannot read {what}: the Kubernetes API did not accept the webhook's "
                "credentials (401 Unauthorized)",
                code=code,
            )
        raise KubeError(
            f"cannot read {what}: the Kubernetes API answered {code} {response.reason}", code=code
        )

    def secret(
        self, namespace: str, name: str, *, budget: float = REQUEST_BUDGET
    ) -> dict[str, Any]:
        return self.get(
            f"/api/v1/namespaces/{quote(namespace, safe='')}/secrets/{quote(name, safe='')}",
            f"secret {namespace}/{name}",
            budget=budget,
        )

    def service_account(
        self, namespace: str, name: str, *, budget: float = REQUEST_BUDGET
    ) -> dict[str, Any]:
        return self.get(
            f"/api/v1/namespaces/{quote(namespace, safe='')}/serviceaccounts/"
            f"{quote(name, safe='')}",
            f"service account {namespace}/{name}",
            budget=budget,
        )


def _named(
    data: Mapping[str, Any], section: str, field: str, name: Any, source: Path
) -> dict[str, Any]:
    """``data[section]``'s entry called ``name``: its ``field`` mapping."""
    for entry in data.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(field)
            return value if isinstance(value, dict) else {}
    raise UsageError(f"the kubeconfig {source} has no {field} named '{name}' in {section}")
