"""The HTTP half of the registry client: scheme, sessions, retries, and when to authenticate.

``registry.py`` says *what* to fetch; this module gets it there and back:
one pooled ``requests.Session`` per host (safe to share across the threads
that verify images concurrently, at most ``concurrency`` connections each),
anonymous first, then whatever the registry's ``WWW-Authenticate`` asks for
(``registry_auth``), retries with backoff on 429/5xx and dropped connections,
an overall deadline per request (``registry_deadline``), and every
``requests`` error translated into ``RegistryError`` here. Bodies are always
streamed so callers can read them under a size cap.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import re
import threading
import time
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from gate.credentials import IDENTITY_TOKEN_USERNAME, Credentials
from gate.errors import RegistryAuthError, RegistryError
from gate.registry_auth import (
    Challenge,
    Token,
    auth_error,
    basic_authorization,
    fetch_token,
    parse_www_authenticate,
    realm_may_have_credentials,
    withheld_error,
)
from gate.registry_deadline import BoundedAdapter, Deadline, finish, track
from gate.registry_tokens import Failure, TokenCache

log = logging.getLogger(__name__)
USER_AGENT = "sealgate/0.1"
MAX_RETRY_AFTER = 10.0
"""Longest wait we honour from a Retry-After header; past it we retry anyway."""
DEFAULT_TIMEOUT = 60.0
"""Seconds one request may take overall: connecting, retries, headers and the whole body."""
DEFAULT_CONCURRENCY = 32
"""Requests in flight to one registry (keep-alive connections in its pool)."""
CONNECT_TIMEOUT = 10.0
"""A connection attempt that takes longer is retried, while the deadline allows."""
_TLS_SERVER_HINT = re.compile(rb"https", re.IGNORECASE)


# --- scheme selection ------------------------------------------------------------------


def split_host(host: str) -> str:
    """``127.0.0.1:5000`` -> ``127.0.0.1``; ``[::1]:5000`` -> ``::1``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def is_local(host: str) -> bool:
    """True for 127.0.0.0/8, ::1, localhost and *.localhost, which Docker treats as insecure."""
    name = split_host(host).lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_insecure(host: str, insecure: Collection[str]) -> bool:
    """Listed by ``--insecure-registry`` (with or without its port)."""
    return host in insecure or split_host(host) in insecure


def default_scheme(host: str, insecure: Collection[str] = ()) -> str:
    """Plain HTTP for local and insecure registries, as Docker does; HTTPS for the rest."""
    return "http" if is_local(host) or is_insecure(host, insecure) else "https"


def api_host(host: str) -> str:
    """The network host behind a registry name: ``docker.io`` is ``registry-1.docker.io``."""
    return "registry-1.docker.io" if host in ("docker.io", "index.docker.io") else host


# --- the transport ---------------------------------------------------------------------


@dataclass
class _Host:
    """Mutable per-registry state, guarded by ``lock``."""

    name: str
    scheme: str
    verify: bool | str
    lock: threading.Lock = field(default_factory=threading.Lock)
    pinged: bool = False
    bearer: Challenge | None = None
    basic: bool = False
    withheld: str | None = None
    """The token realm our credentials were kept from (see ``realm_may_have_credentials``)."""
    failure: Failure | None = None
    """A failed ping, answered again for a while to the threads queued behind it."""

    @property
    def base(self) -> str:
        return f"{self.scheme}://{api_host(self.name)}"


def read_prefix(response: requests.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of a streamed body, then close it (error bodies, token replies)."""
    out = bytearray()
    try:
        for chunk in response.iter_content(chunk_size=min(limit, 65536)):
            out += chunk
            if len(out) >= limit:
                break
    except requests.RequestException:
        pass
    finally:
        finish(response)
    return bytes(out[:limit])


def drain(response: requests.Response) -> None:
    """Read a small leftover body so the connection goes back to the pool, then close."""
    read_prefix(response, 65536)


def _drain_quietly(response: requests.Response) -> None:
    """``drain`` a reply we are about to retry; the retry answers for the deadline."""
    out = 0
    try:
        for chunk in response.iter_content(chunk_size=65536):
            out += len(chunk)
            if out >= 65536:
                break
    except requests.RequestException:
        pass
    finally:
        response.close()


def _unreachable_reason(e: Exception) -> str:
    text = str(e)
    if isinstance(e, requests.Timeout):
        return f"no connection within {CONNECT_TIMEOUT:g} s"
    if "refused" in text:
        return "connection refused"
    if "resolve" in text or "not known" in text or "nodename" in text:
        return "the host name does not resolve"
    if "reset" in text or "aborted" in text:
        return "the connection was dropped"
    return type(e).__name__


def _tls_reason(e: Exception) -> str:
    found = re.search(r"certificate verify failed: ([^(\]'\"]+)", str(e))
    return found.group(1).strip() if found else "the TLS handshake failed"


class Transport:
    """Sends requests to registries with auth, retries and error translation.

    ``repo`` (a repository path) gives the token scope and the name in auth
    errors; ``push`` asks for ``pull,push``.
    """

    def __init__(
        self,
        *,
        credentials: Credentials | None,
        insecure: Collection[str],
        ca_bundle: str | None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = 3,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.credentials = credentials or Credentials()
        self.insecure = frozenset(insecure)
        self.ca_bundle = ca_bundle
        self.timeout = timeout
        """Overall seconds per request (``registry_deadline``), not a per-read timeout."""
        self.retries = max(0, retries)
        self.concurrency = max(1, concurrency)
        self.sleep: Callable[[float], None] = time.sleep
        self._lock = threading.Lock()
        self._count = 0
        self._hosts: dict[str, _Host] = {}
        self._sessions: dict[str, requests.Session] = {}
        self._creds: dict[str, tuple[str, str] | None] = {}
        self._tokens = TokenCache()

    @property
    def requests_made(self) -> int:
        with self._lock:
            return self._count

    def _add(self, n: int) -> None:
        with self._lock:
            self._count += n

    def close(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()

    # -- plumbing --

    def _session(self, netloc: str) -> requests.Session:
        with self._lock:
            session = self._sessions.get(netloc)
            if session is None:
                session = requests.Session()
                adapter = BoundedAdapter(self.concurrency)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.headers["User-Agent"] = USER_AGENT
                self._sessions[netloc] = session
            return session

    def _host(self, name: str) -> _Host:
        with self._lock:
            host = self._hosts.get(name)
            if host is None:
                host = _Host(name, default_scheme(name, self.insecure), self.ca_bundle or True)
                self._hosts[name] = host
            return host

    def _credentials(self, name: str) -> tuple[str, str] | None:
        with self._lock:
            if name in self._creds:
                return self._creds[name]
        found = self.credentials.for_registry(name)
        with self._lock:
            self._creds[name] = found
        return found

    def _retry_delay(self, attempt: int, response: requests.Response | None) -> float:
        if response is not None and (value := response.headers.get("Retry-After")):
            try:
                seconds = float(value)
            except ValueError:
                try:
                    seconds = parsedate_to_datetime(value).timestamp() - time.time()
                except (TypeError, ValueError):
                    seconds = 0.0
            return min(max(seconds, 0.0), MAX_RETRY_AFTER)
        return float(min(0.25 * 2**attempt, 4.0) * (0.75 + random.random() / 2))

    def send(
        self,
        registry: str,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        verify: bool | str = True,
        **kwargs: Any,
    ) -> requests.Response:
        """One logical request with retries on 429/5xx and dropped connections; no auth.

        The body is streamed: read it with a cap (``read_prefix``) and end with
        ``finish``. Everything, body included, must be done within ``self.timeout``.
        """
        session = self._session(urlsplit(url).netloc)
        kwargs.setdefault("allow_redirects", method in ("GET", "HEAD"))
        kwargs["stream"] = True  # bodies are read by callers, always under a cap
        deadline = Deadline(registry, self.timeout)
        try:
            with deadline.active():
                response = self._attempts(session, deadline, method, url, headers, verify, kwargs)
        except BaseException:
            deadline.finish()
            raise
        track(response, deadline)
        return response

    def _attempts(
        self,
        session: requests.Session,
        deadline: Deadline,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        verify: bool | str,
        kwargs: dict[str, Any],
    ) -> requests.Response:
        registry = deadline.registry
        response: requests.Response | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self._retry_delay(attempt - 1, response)
                if delay >= deadline.remaining():
                    raise deadline.error()
                self.sleep(delay)
            remaining = deadline.remaining()
            if remaining <= 0:
                raise deadline.error()
            self._add(1)
            try:
                response = session.request(
                    method,
                    url,
                    headers=dict(headers or {}),
                    timeout=(min(CONNECT_TIMEOUT, remaining), remaining),
                    verify=verify,
                    **kwargs,
                )
            except (requests.RequestException, urllib3.exceptions.HTTPError) as e:
                timed_out = isinstance(e, (requests.ReadTimeout, urllib3.exceptions.EmptyPoolError))
                if deadline.expired or timed_out or deadline.remaining() <= 0:
                    raise deadline.error() from e
                if isinstance(e, requests.exceptions.SSLError):
                    raise RegistryError(
                        f"cannot make a trusted TLS connection to registry {registry} "
                        f"({_tls_reason(e)}); give its CA certificate with --ca-bundle, "
                        "or list it with --insecure-registry"
                    ) from e
                if isinstance(e, (requests.ConnectionError, requests.Timeout)):
                    response = None
                    if attempt < self.retries:
                        continue
                    raise RegistryError(
                        f"cannot reach registry {registry}: {_unreachable_reason(e)}"
                    ) from e
                raise RegistryError(
                    f"request to registry {registry} failed: {type(e).__name__}"
                ) from e
            self._add(len(response.history))
            if (
                response.status_code == 429 or response.status_code >= 500
            ) and attempt < self.retries:
                _drain_quietly(response)
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    # -- when to authenticate --

    def _ping(self, host: _Host) -> None:
        """GET /v2/ once per host: learn the challenge, and whether a local host speaks TLS."""
        with host.lock:
            if host.pinged:
                return
            if host.failure is not None and host.failure.fresh():
                host.failure.again()
            try:
                self._ping_once(host)
            except RegistryError as e:
                host.failure = Failure.of(e)
                raise
            host.pinged = True

    def _ping_once(self, host: _Host) -> None:
        response = self.send(host.name, "GET", f"{host.base}/v2/", verify=host.verify)
        if (
            response.status_code == 400
            and host.scheme == "http"
            and _TLS_SERVER_HINT.search(read_prefix(response, 200))
        ):
            # A local or insecure registry serving TLS: switch up, never down. Only an
            # --insecure-registry skips verification (as Docker does).
            host.scheme = "https"
            if is_insecure(host.name, self.insecure):
                host.verify = False
                log.warning("registry %s: not verifying its TLS certificate", host.name)
                # Asked for with --insecure-registry: one log line, not a warning per request.
                warnings.filterwarnings(
                    "ignore",
                    message=f".*host '{re.escape(split_host(host.name))}'",
                    category=urllib3.exceptions.InsecureRequestWarning,
                )
            response = self.send(host.name, "GET", f"{host.base}/v2/", verify=host.verify)
        if response.status_code == 401:
            self._learn(host, response)
        drain(response)

    def _learn(self, host: _Host, response: requests.Response) -> Challenge | None:
        """Remember what a 401 asks for; returns the Bearer challenge if there is one."""
        challenges = parse_www_authenticate(response.headers.get("WWW-Authenticate", ""))
        for challenge in challenges:
            if challenge.scheme == "bearer" and challenge.realm:
                # Keep realm and service for later scopes; this request's scope is used once.
                host.bearer = Challenge(
                    "bearer", {k: v for k, v in challenge.params.items() if k != "scope"}
                )
                return challenge
        if any(c.scheme == "basic" for c in challenges):
            host.basic = True
        return None

    def _basic(self, host: _Host) -> tuple[str, str] | None:
        creds = self._credentials(host.name)
        if creds is None or creds[0] == IDENTITY_TOKEN_USERNAME:
            return None
        return creds

    def _token(
        self,
        host: _Host,
        scope: str,
        repo: str | None,
        extra: tuple[str, ...],
        *,
        rejected: str | None,
    ) -> str:
        """A Bearer token for ``scope`` (may be ""), from the shared ``TokenCache``.

        ``rejected`` is a token the registry just refused: fetch a new one
        unless another thread already has.
        """
        return self._tokens.get(
            (host.name, scope),
            lambda: self._fetch_token(host, scope, repo, extra),
            rejected=rejected,
        )

    def _fetch_token(
        self, host: _Host, scope: str, repo: str | None, extra: tuple[str, ...]
    ) -> Token:
        """Ask the realm; called by one thread at a time per (registry, scope)."""
        challenge = host.bearer
        assert challenge is not None
        realm = challenge.realm or ""
        same_host = urlsplit(realm).netloc == api_host(host.name)
        credentials = self._credentials(host.name)
        if credentials is not None and not realm_may_have_credentials(
            host.scheme, api_host(host.name), realm
        ):
            # Ask anonymously: a public image still verifies, and nothing secret leaves.
            if host.withheld is None:
                log.warning(
                    "registry %s sends us to %s for tokens: not sending credentials there",
                    host.name,
                    realm[:200],
                )
            host.withheld = realm
            credentials = None
        try:
            token = fetch_token(
                self.send,
                host.name,
                challenge,
                list(dict.fromkeys([*scope.split(), *extra])),
                credentials,
                repo=repo,
                verify=host.verify if same_host else (self.ca_bundle or True),
            )
        except RegistryAuthError as e:
            if host.withheld is not None:
                raise withheld_error(host.name, host.withheld) from e
            raise
        return token

    def _authorization(
        self,
        host: _Host,
        scope: str,
        repo: str | None,
        *,
        extra: tuple[str, ...] = (),
        rejected: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        if host.bearer is not None:
            sent = (rejected or {}).get("Authorization", "")
            token = self._token(
                host, scope, repo, extra, rejected=sent.removeprefix("Bearer ") or None
            )
            return {"Authorization": f"Bearer {token}"}
        if host.basic and (creds := self._basic(host)) is not None:
            return basic_authorization(*creds)
        return {}

    def request(
        self,
        registry: str,
        method: str,
        path_or_url: str,
        *,
        repo: str | None = None,
        push: bool = False,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send to ``registry`` with auth; 401/403 become RegistryAuthError, other statuses return.

        ``path_or_url`` is a ``/v2/...`` path or an absolute URL (an upload
        ``Location`` or a ``Link``); credentials go only to the registry's own
        scheme and host, never to a storage redirect or a plain-HTTP downgrade.
        """
        host = self._host(registry)
        self._ping(host)
        url = path_or_url if "://" in path_or_url else host.base + path_or_url
        parts = urlsplit(url)
        ours = (parts.scheme, parts.netloc) == (host.scheme, api_host(registry))
        scope = f"repository:{repo}:{'pull,push' if push else 'pull'}" if repo else ""
        verify = host.verify if ours else (self.ca_bundle or True)
        sent = self._authorization(host, scope, repo) if ours else {}
        response = self.send(
            registry, method, url, headers={**(headers or {}), **sent}, verify=verify, **kwargs
        )
        if response.status_code == 401 and ours:
            drain(response)
            challenge = self._learn(host, response)
            extra = challenge.scopes if challenge is not None else ()
            retry = self._authorization(host, scope, repo, extra=extra, rejected=sent)
            if retry and (retry != sent or challenge is not None):
                response = self.send(
                    registry,
                    method,
                    url,
                    headers={**(headers or {}), **retry},
                    verify=verify,
                    **kwargs,
                )
        if response.status_code in (401, 403):
            drain(response)
            if host.withheld is not None:
                raise withheld_error(registry, host.withheld)
            refused = self._credentials(registry) is not None
            raise auth_error(registry, repo, refused=refused)
        return response
