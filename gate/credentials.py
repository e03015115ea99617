"""Registry credentials: flags, SEALGATE_* environment, docker ``config.json`` and helpers.

The lookup follows docker-py's ``resolve_authconfig`` (FORMATS.md §5.7) so a
``docker login`` done on the machine works unchanged:

1. explicit username/password (command-line flags), then
   ``SEALGATE_REGISTRY_USERNAME`` / ``SEALGATE_REGISTRY_PASSWORD`` — for ONE registry
   only, the one named by ``--registry`` / ``SEALGATE_REGISTRY``;
2. for every registry (that one included when nothing explicit was given):
   ``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``: ``credHelpers[host]``,
   then ``credsStore``, then the ``auths`` map, each scoped to its host by docker.

The binding lives in ``Credentials`` itself, so no caller can send a CI's
password to a registry that a pull request's manifest happens to name.
Secrets never appear in ``repr()``, logs or error messages.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gate.errors import UsageError

log = logging.getLogger(__name__)

USERNAME_ENV = "SEALGATE_REGISTRY_USERNAME"
PASSWORD_ENV = "SEALGATE_REGISTRY_PASSWORD"
REGISTRY_ENV = "SEALGATE_REGISTRY"
UNBOUND = (
    "explicit registry credentials are sent to one registry only: name it with "
    f"--registry HOST (or {REGISTRY_ENV})"
)
IDENTITY_TOKEN_USERNAME = "<token>"
"""A username meaning "the secret is an identity (OAuth2 refresh) token" (docker/cli login.md)."""
DOCKER_HUB_INDEX = "https://index.docker.io/v1/"
"""The key under which Docker Hub credentials are stored and asked of helpers."""
_DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
HELPER_TIMEOUT = 30.0

HelperRunner = Callable[[str, str], "tuple[str, str] | None"]
"""``(helper suffix, server URL) -> (username, secret) | None``; swappable for tests."""


def _hostname(key: str) -> str:
    """``https://host:port/v1/`` -> ``host:port``, as docker-py's ``convert_to_hostname``."""
    if "://" in key:
        return urlsplit(key).netloc
    return key.split("/", 1)[0]


def registry_host(text: str) -> str:
    """``ghcr.io``, ``https://ghcr.io/``, ``https://index.docker.io/v1/`` -> a registry name.

    Names compare as references do: lowercase, Docker Hub's aliases are ``docker.io``.
    """
    host = text.strip()
    for prefix in ("https://", "http://"):
        if host.lower().startswith(prefix):
            host = host[len(prefix) :]
    host = host.rstrip("/")
    for suffix in ("/v1", "/v2"):
        if host.endswith(suffix):
            host = host[: -len(suffix)]
    host = host.lower()
    if not host or "/" in host or any(c.isspace() or c in "@?#" for c in host):
        shown = text.strip()[:60]
        raise UsageError(
            f"--registry takes a registry host such as ghcr.io or 127.0.0.1:5000, not '{shown}'"
        )
    return "docker.io" if host in _DOCKER_HUB_NAMES else host


def server_address(host: str) -> str:
    """The name a registry's credentials are filed under (Docker Hub uses its index URL)."""
    return DOCKER_HUB_INDEX if host in _DOCKER_HUB_NAMES else host


def run_helper(name: str, server_url: str) -> tuple[str, str] | None:
    """Ask ``docker-credential-<name> get`` for the credentials of ``server_url``.

    A missing helper or a non-zero exit ("credentials not found") means no
    credentials, as in docker; the helper's output is never logged since it holds secrets.
    """
    program = f"docker-credential-{name}"
    try:
        done = subprocess.run(
            [program, "get"],
            input=server_url.encode(),
            capture_output=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        log.warning("credential helper %s is not on PATH; continuing without it", program)
        return None
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning(
            "credential helper %s failed (%s); continuing without it", program, type(e).__name__
        )
        return None
    if done.returncode != 0:
        return None
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        log.warning("credential helper %s printed something that is not JSON; ignoring it", program)
        return None
    if not isinstance(answer, dict):
        return None
    username, secret = answer.get("Username"), answer.get("Secret")
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        return None
    return username, secret


def _decode_auth(entry: Mapping[str, Any], where: str) -> tuple[str, str] | None:
    """One ``auths`` entry -> (username, password); identity tokens win (docker-py)."""
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return IDENTITY_TOKEN_USERNAME, token
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            decoded = base64.b64decode(encoded, validate=False).decode()
        except (binascii.Error, UnicodeDecodeError) as e:
            raise UsageError(
                f"{where}: 'auth' is not base64 of 'user:password'; run docker login again"
            ) from e
        username, sep, password = decoded.partition(":")
        if not sep:
            raise UsageError(f"{where}: the 'auth' value has no ':'; run docker login again")
        return username, password
    user, secret = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(secret, str) and user:
        return user, secret
    return None


@dataclass(frozen=True)
class DockerConfig:
    """The credential parts of a docker ``config.json``."""

    path: Path
    auths: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    """``auths`` as written: keys are hosts or URLs; values hold secrets, so no repr."""
    cred_helpers: Mapping[str, str] = field(default_factory=dict)
    creds_store: str | None = None

    @classmethod
    def load(cls, path: Path) -> DockerConfig | None:
        """Read ``path``; None when it does not exist; UsageError when it is unreadable."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as e:
            raise UsageError(f"cannot read docker config {path}: {e.strerror}") from e
        try:
            data = json.loads(text)
        except ValueError as e:
            raise UsageError(f"docker config {path} is not valid JSON; fix or remove it") from e
        if not isinstance(data, dict):
            raise UsageError(f"docker config {path} is not a JSON object; fix or remove it")
        auths = data.get("auths") or {}
        helpers = data.get("credHelpers") or {}
        store = data.get("credsStore") or None
        if not isinstance(auths, dict) or not isinstance(helpers, dict):
            raise UsageError(f"docker config {path}: 'auths' and 'credHelpers' must be objects")
        if store is not None and not isinstance(store, str):
            raise UsageError(f"docker config {path}: 'credsStore' must be a string")
        return cls(
            path=path,
            auths={k: v for k, v in auths.items() if isinstance(v, dict)},
            cred_helpers={k: v for k, v in helpers.items() if isinstance(v, str) and v},
            creds_store=store,
        )

    def _helper_for(self, host: str) -> str | None:
        for key in (host, server_address(host)):
            if key in self.cred_helpers:
                return self.cred_helpers[key]
        if host in _DOCKER_HUB_NAMES:
            for name in _DOCKER_HUB_NAMES:
                if name in self.cred_helpers:
                    return self.cred_helpers[name]
        return self.creds_store

    def auths_for(self, host: str) -> tuple[str, str] | None:
        """The ``auths`` entry filed under ``host`` (or a URL naming it); no helpers asked."""
        return self._from_auths(host)

    def _from_auths(self, host: str) -> tuple[str, str] | None:
        wanted = {host, server_address(host)}
        if host in _DOCKER_HUB_NAMES:
            wanted |= _DOCKER_HUB_NAMES
        # Exact keys first, then keys that are URLs naming the same host.
        for key in [k for k in self.auths if k in wanted] + [
            k for k in self.auths if k not in wanted and _hostname(k) in wanted
        ]:
            found = _decode_auth(self.auths[key], f"{self.path} (auths['{key}'])")
            if found is not None:
                return found
        return None

    def lookup(self, host: str, run: HelperRunner = run_helper) -> tuple[str, str] | None:
        """credHelpers[host] -> credsStore -> auths.

        Unlike docker, a helper that has nothing falls through to ``auths``:
        CI scripts often write ``auths`` into a config that also names a store.
        """
        helper = self._helper_for(host)
        if helper is not None:
            found = run(helper, server_address(host))
            if found is not None:
                return found
        return self._from_auths(host)


def default_config_path(env: Mapping[str, str]) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    directory = env.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path.home() / ".docker" / "config.json"


@dataclass(frozen=True)
class Credentials:
    """Where registry credentials come from; ``Credentials()`` is anonymous everywhere.

    Explicit credentials (``username``/``password``) belong to ``registry`` and
    to no other host: a manifest may name any registry, and a CI's password
    must not follow it there. Other hosts get only what the docker config
    files under their own name.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    registry: str | None = None
    """The one registry host (``ghcr.io``, ``127.0.0.1:5000``) the explicit credentials are for."""
    config: DockerConfig | None = None
    helper: HelperRunner = field(default=run_helper, repr=False, compare=False)
    pull_secrets: tuple[DockerConfig, ...] = field(default=(), repr=False)
    """Admission: one pod's ``imagePullSecrets``, asked first, in order. Only their ``auths``
    count, each entry bound to the host it is filed under (``pulled_for``)."""

    def __post_init__(self) -> None:
        if (self.username is None) != (self.password is None):
            raise UsageError("give both a registry username and a password, or neither")
        if self.username is not None and self.registry is None:
            raise UsageError(UNBOUND)
        if self.registry is not None:
            object.__setattr__(self, "registry", registry_host(self.registry))

    def holds(self, host: str) -> bool:
        """True when ``host`` is the registry the explicit credentials are bound to."""
        if self.username is None or self.registry is None:
            return False
        try:
            return registry_host(host) == self.registry
        except UsageError:
            return False

    @classmethod
    def from_environment(
        cls,
        username: str | None = None,
        password: str | None = None,
        config_path: str | os.PathLike[str] | None = None,
        *,
        registry: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Credentials:
        """Flags, then SEALGATE_REGISTRY_USERNAME/PASSWORD (for SEALGATE_REGISTRY), then docker's.

        A flag and the environment may be mixed (user on the command line,
        password in the environment); giving only one half, or explicit
        credentials without the registry they are for, is a UsageError.
        ``config_path`` is a ``config.json`` file or the directory holding it.
        """
        env = os.environ if env is None else env
        username = username or env.get(USERNAME_ENV) or None
        password = password or env.get(PASSWORD_ENV) or None
        registry = registry or env.get(REGISTRY_ENV, "").strip() or None
        if (username is None) != (password is None):
            missing = "password" if password is None else "username"
            raise UsageError(
                f"registry {missing} is missing: give both a username and a password "
                f"(flags, or {USERNAME_ENV} and {PASSWORD_ENV})"
            )
        path = Path(config_path) if config_path is not None else default_config_path(env)
        if path.is_dir():
            path = path / "config.json"
        if username is not None and registry is None:
            raise UsageError(UNBOUND)
        return cls(
            username=username,
            password=password,
            registry=registry,
            config=DockerConfig.load(path),
        )

    def pulled_for(self, host: str) -> tuple[str, str] | None:
        """What the pull secrets hold for ``host`` (the first that has it), else None."""
        for config in self.pull_secrets:
            found = config.auths_for(host)
            if found is not None:
                return found
        return None

    def for_registry(self, host: str) -> tuple[str, str] | None:
        """(username, password) for ``host`` (``127.0.0.1:5000``, ``docker.io``), or None.

        Explicit credentials only for the bound registry; the docker config for the rest.
        A username of ``IDENTITY_TOKEN_USERNAME`` means the password is an identity token.
        """
        pulled = self.pulled_for(host)
        if pulled is not None:
            return pulled
        if self.holds(host) and self.username is not None and self.password is not None:
            return self.username, self.password
        if self.config is not None:
            return self.config.lookup(host, self.helper)
        return None
