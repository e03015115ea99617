"""A pod's ``imagePullSecrets``, read from the Kubernetes API, as that pod's registry credentials.

For a pod (or a pod template) that names ``imagePullSecrets``, each Secret
is read (``GET /api/v1/namespaces/{ns}/secrets/{name}``); types
``kubernetes.io/dockerconfigjson`` (``.dockerconfigjson``) and
``kubernetes.io/dockercfg`` (``.dockercfg``) are accepted. Their ``auths``
are used for that object's images only, and each entry only for the registry
host it is filed under (``Credentials.pulled_for``): a secret for
``ghcr.io`` is never sent to another host. A workload template without
``imagePullSecrets`` gets its service account's, as the API server's
ServiceAccount admission plugin gives its pods (a Pod already carries them
when the webhook sees it: that plugin runs before webhooks).

Who may see what. A verdict (and the digest /mutate pins) found with one
namespace's secret must not admit another namespace's pod that cannot read
the image. So every cache key carries ``scope(host)``: an HMAC (keyed per
process, so it reveals nothing) of the credentials the pod's own secrets hold
for the image's registry, or None when they hold none and the webhook's own
credentials (``--docker-config``) are used. Pods whose secrets hold the same
credentials for a registry share verdicts; a pod without them gets its own
verification, with its own credentials, and ERROR if those cannot read the
image. The kubelet still enforces pull access at pull time; the webhook's
verdict never vouches for an image to a pod that could not have read it.

Any secret that cannot be read (API unreachable, 404, 403, wrong type, bad
JSON) makes every image of the object ERROR, with one sentence naming the
secret: the webhook cannot know which registry it was for. Secret values
never reach a log, an error, a metric or ``repr()``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.admission._kube import KubeAPI, KubeError
from gate.credentials import Credentials, DockerConfig, _decode_auth
from gate.errors import UsageError
from gate.registry import RegistryClient

log = logging.getLogger(__name__)

TYPES = {
    "kubernetes.io/dockerconfigjson": ".dockerconfigjson",
    "kubernetes.io/dockercfg": ".dockercfg",
}
API_BUDGET = 3.0
"""Seconds all of one object's API reads may take before its images are ERROR."""
SECRET_TTL = 30.0
"""Seconds a read secret is reused: a rotated pull secret is seen within this."""
MAX_CLIENTS = 64
"""Registry clients kept, one per distinct set of pull-secret credentials."""
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
NAMESPACE = re.compile(_DNS_LABEL)
OBJECT_NAME = re.compile(rf"(?=.{{1,253}}$){_DNS_LABEL}(\.{_DNS_LABEL})*")
"""Secret and ServiceAccount names are DNS subdomains. The API server does not check an
imagePullSecrets name, and HTTP clients resolve ``.``/``..`` path segments, so anything
else could turn a GET of one secret into a LIST of them or a read of another object."""


class PullSecretError(Exception):
    """A secret that is not a usable pull secret; the message names it, never its content."""


@dataclass(frozen=True)
class PodAccess:
    """The registry credentials of one object's pods."""

    secrets: tuple[str, ...] = ()
    credentials: Credentials | None = field(default=None, repr=False)
    """The webhook's credentials with the pod's pull secrets first; None: no pull secrets."""
    client: RegistryClient | None = field(default=None, repr=False)
    error: str | None = None
    """Why the pull secrets could not be read: every image of the object is ERROR."""
    key: bytes = field(default=b"", repr=False)

    def scope(self, host: str) -> str | None:
        """Who can read ``host`` for this pod: an opaque id of its credentials, or None."""
        if self.credentials is None:
            return None
        found = self.credentials.pulled_for(host)
        if found is None:
            return None
        material = json.dumps([host, *found]).encode()
        return hmac.new(self.key, material, hashlib.sha256).hexdigest()[:32]


def secret_names(obj: Mapping[str, Any]) -> tuple[tuple[str, ...], str | None, bool]:
    """(``imagePullSecrets`` names, ``serviceAccountName``, whether a pod spec was found).

    The pod spec is wherever ``containers`` is (Pod ``spec``, a template's ``spec``,
    CronJob's ``jobTemplate``): the same shapes the image walker finds.
    """
    names: list[str] = []
    account: str | None = None
    found = False

    def walk(node: Any, depth: int) -> None:
        nonlocal account, found
        if depth > 12:
            return
        if isinstance(node, dict):
            if isinstance(node.get("containers"), list):
                found = True
                for ref in node.get("imagePullSecrets") or []:
                    if isinstance(ref, dict) and isinstance(ref.get("name"), str) and ref["name"]:
                        names.append(ref["name"])
                if isinstance(node.get("serviceAccountName"), str) and account is None:
                    account = node["serviceAccountName"] or None
                return
            for key, value in node.items():
                if key not in ("metadata", "status"):
                    walk(value, depth + 1)
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)

    walk(obj, 0)
    return tuple(dict.fromkeys(names)), account, found


def docker_config(secret: Mapping[str, Any], where: str) -> DockerConfig:
    """The ``auths`` of a ``v1.Secret`` of a docker type; PullSecretError naming ``where``."""
    kind = secret.get("type")
    if kind not in TYPES:
        raise PullSecretError(
            f"{where} is of type {kind or 'Opaque'}; an imagePullSecret must be "
            f"{' or '.join(TYPES)}"
        )
    data = secret.get("data") or {}
    encoded = data.get(TYPES[kind]) if isinstance(data, dict) else None
    if not isinstance(encoded, str):
        raise PullSecretError(f"{where} has no {TYPES[kind]} key")
    try:
        parsed = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise PullSecretError(f"{where}: {TYPES[kind]} is not base64 of JSON") from None
    if kind == "kubernetes.io/dockerconfigjson":
        auths = parsed.get("auths") if isinstance(parsed, dict) else None
    else:
        auths = parsed
    if not isinstance(auths, dict):
        raise PullSecretError(f"{where}: {TYPES[kind]} has no 'auths' object")
    entries = {k: v for k, v in auths.items() if isinstance(k, str) and isinstance(v, dict)}
    for key, entry in entries.items():
        try:
            _decode_auth(entry, f"{where} (auths['{key}'])")
        except UsageError as e:
            raise PullSecretError(e.message.replace("; run docker login again", "")) from None
    return DockerConfig(path=Path(where), auths=entries)


def _check_names(namespace: str, names: tuple[str, ...], account: str | None) -> None:
    """PullSecretError for a namespace or object name the API could not hold."""
    if not NAMESPACE.fullmatch(namespace):
        raise PullSecretError(f"'{namespace[:63]}' is not a namespace name")
    for name in names:
        if not OBJECT_NAME.fullmatch(name):
            raise PullSecretError(f"'{name[:253]}' is not a Secret name")
    if account is not None and not OBJECT_NAME.fullmatch(account):
        raise PullSecretError(f"'{account[:253]}' is not a ServiceAccount name")


class PullSecrets:
    """Reads pull secrets through ``api`` and hands out one registry client per credential set.

    ``base`` is the webhook's own credentials (``--docker-config``), used for
    registries no pull secret names; ``client(credentials)`` makes a registry
    client with the webhook's other registry options.
    """

    def __init__(
        self,
        api: KubeAPI,
        base: Credentials,
        client: Callable[[Credentials], RegistryClient],
        *,
        ttl: float = SECRET_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.base = base
        self._client = client
        self.ttl = ttl
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._secrets: dict[tuple[str, str], tuple[float, DockerConfig]] = {}
        self._accounts: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}
        self._clients: OrderedDict[str, RegistryClient] = OrderedDict()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), OrderedDict()
        for c in clients:
            c.close()
        self.api.close()

    def access(self, namespace: str, obj: Mapping[str, Any], kind: str) -> PodAccess:
        """The credentials for ``obj``'s images in ``namespace``; never raises."""
        names, account, is_pod_spec = secret_names(obj)
        if not is_pod_spec or not namespace:
            return PodAccess()
        deadline = self._clock() + API_BUDGET
        try:
            _check_names(namespace, names, account if not names and kind != "Pod" else None)
            if not names and kind != "Pod":
                names = self._account_secrets(namespace, account or "default", deadline)
            if not names:
                return PodAccess()
            configs = []
            for name in names:
                if self._clock() > deadline:
                    raise KubeError(f"the Kubernetes API took longer than {API_BUDGET:g} s")
                configs.append(self._secret(namespace, name, deadline))
        except (KubeError, PullSecretError) as e:
            text = e.message if isinstance(e, KubeError) else str(e)
            log.warning("pull secrets of %s in %s: %s", kind, namespace, text)
            return PodAccess(names, error=f"its imagePullSecrets cannot be used: {text}")
        credentials = dataclasses.replace(self.base, pull_secrets=tuple(configs))
        return PodAccess(names, credentials, self._client_for(credentials), key=self._key)

    def _account_secrets(self, namespace: str, name: str, deadline: float) -> tuple[str, ...]:
        now = self._clock()
        with self._lock:
            cached = self._accounts.get((namespace, name))
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            found = self.api.service_account(namespace, name, budget=deadline - now)
        except KubeError as e:
            if e.code != 404:
                raise
            return ()  # not created yet: its pods will be checked when they come
        refs = found.get("imagePullSecrets") or []
        names = tuple(
            r["name"] for r in refs if isinstance(r, dict) and isinstance(r.get("name"), str)
        )
        with self._lock:
            self._accounts[(namespace, name)] = (now + self.ttl, names)
        return names

    def _secret(self, namespace: str, name: str, deadline: float) -> DockerConfig:
        now = self._clock()
        with self._lock:
            cached = self._secrets.get((namespace, name))
        if cached is not None and cached[0] > now:
            return cached[1]
        found = self.api.secret(namespace, name, budget=deadline - now)
        config = docker_config(found, f"secret {namespace}/{name}")
        with self._lock:
            self._secrets[(namespace, name)] = (now + self.ttl, config)
        return config

    def _client_for(self, credentials: Credentials) -> RegistryClient:
        """One client (pool and token cache) per distinct pull-secret content, LRU-bounded.

        Tokens are cached per scope inside a client, so clients are never shared
        between different credentials.
        """
        material = json.dumps(
            [dict(c.auths) for c in credentials.pull_secrets], sort_keys=True
        ).encode()
        ident = hmac.new(self._key, material, hashlib.sha256).hexdigest()
        with self._lock:
            client = self._clients.get(ident)
            if client is not None:
                self._clients.move_to_end(ident)
                return client
            client = self._clients[ident] = self._client(credentials)
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)  # in-flight users keep their reference
            return client
