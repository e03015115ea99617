"""Registry auth: ``WWW-Authenticate`` challenges, Bearer tokens, Basic, and auth errors.

NOTE: distribution ``docs/spec/auth/token.md`` and RFC 6750 §3 (FORMATS.md §5.6).
A registry answers 401 with a Bearer challenge (realm, service, scope) or a
Basic one; for Bearer we ask the realm for a token, with Basic credentials if
we have them and the realm may have them (``realm_may_have_credentials``).
Nothing here logs a secret or puts one in an error message.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from gate import strict_json
from gate.credentials import IDENTITY_TOKEN_USERNAME, PASSWORD_ENV, USERNAME_ENV
from gate.errors import RegistryAuthError, RegistryError
from gate.registry_deadline import finish

DEFAULT_TOKEN_LIFETIME = 60.0
"""Seconds a token lives when the reply has no ``expires_in`` (token.md)."""
MAX_TOKEN_REPLY = 1024 * 1024


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header."""

    scheme: str
    """Lowercased auth scheme: ``bearer`` or ``basic`` (others are ignored by the client)."""
    params: Mapping[str, str] = field(default_factory=dict)
    """Parameters with lowercased names and unquoted values."""

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> tuple[str, ...]:
        """``scope`` may hold several space-separated entries."""
        return tuple(self.params.get("scope", "").split())


def _quoted(header: str, pos: int) -> tuple[str, int]:
    """The quoted-string starting after the opening quote at ``pos``; backslash escapes."""
    chars: list[str] = []
    while pos < len(header) and header[pos] != '"':
        if header[pos] == "\\" and pos + 1 < len(header):
            pos += 1
        chars.append(header[pos])
        pos += 1
    return "".join(chars), pos + 1


def _skip(header: str, pos: int, chars: str) -> int:
    while pos < len(header) and header[pos] in chars:
        pos += 1
    return pos


def _until(header: str, pos: int, stops: str) -> int:
    while pos < len(header) and header[pos] not in stops:
        pos += 1
    return pos


def parse_www_authenticate(header: str) -> list[Challenge]:
    """Every challenge in a ``WWW-Authenticate`` value (RFC 7235 §4.1); garbage yields what it can.

    A token followed by ``=`` is a parameter of the current challenge; any
    other token starts a new challenge, so ``Bearer a="1", Basic realm="x"`` is two.
    """
    found: list[tuple[str, dict[str, str]]] = []
    pos, n = 0, len(header)
    while pos < n:
        start = _skip(header, pos, " \t,")
        pos = _until(header, start, " \t,=")
        token = header[start:pos]
        pos = _skip(header, pos, " \t")
        if pos < n and header[pos] == "=" and token:
            pos = _skip(header, pos + 1, " \t")
            if pos < n and header[pos] == '"':
                value, pos = _quoted(header, pos + 1)
            else:
                start, pos = pos, _until(header, pos, " \t,")
                value = header[start:pos]
            if found:
                found[-1][1][token.lower()] = value
        elif token:
            found.append((token.lower(), {}))
        elif pos < n:
            pos += 1  # a stray '='
    return [Challenge(scheme, params) for scheme, params in found]


def basic_authorization(username: str, password: str) -> dict[str, str]:
    """The ``Authorization`` header for HTTP Basic."""
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def auth_error(registry: str, repo: str | None, *, refused: bool) -> RegistryAuthError:
    """The one sentence for 401/403: which registry, and how to give credentials."""
    what = f"{registry}/{repo}" if repo else f"registry {registry}"
    how = f"run 'docker login {registry}', or set {USERNAME_ENV} and {PASSWORD_ENV}"
    if refused:
        return RegistryAuthError(
            f"registry {registry} refused our credentials for {what}; check them: {how}",
            brief=f"registry {registry} refused our credentials; check them: {how}",
        )
    return RegistryAuthError(
        f"registry {registry} needs credentials for {what}: {how}",
        brief=f"registry {registry} needs credentials: {how}",
    )


def _hostname(netloc: str) -> str:
    """``host:port`` or ``[v6]:port`` -> the lowercased host name."""
    return (urlsplit(f"//{netloc}").hostname or "").lower()


def realm_may_have_credentials(registry_scheme: str, registry_netloc: str, realm: str) -> bool:
    """May the credentials of a registry reached at ``registry_scheme://registry_netloc`` go to
    the token ``realm`` its challenge names?

    The challenge is the registry's to write, and a token request carries the
    password in the clear unless it goes over TLS. So: any HTTPS realm (Docker
    Hub's is ``auth.docker.io``, GHCR's its own host); a plain-HTTP realm only
    when the registry itself is spoken to over plain HTTP and the realm is on
    the same host name (a local registry and its token service on another
    port), where the password already travels that way. Never HTTP after HTTPS,
    never plain HTTP to another host.
    """
    parts = urlsplit(realm)
    if parts.scheme == "https":
        return True
    return (
        parts.scheme == "http"
        and registry_scheme == "http"
        and _hostname(parts.netloc) == _hostname(registry_netloc)
        and bool(_hostname(parts.netloc))
    )


def withheld_error(registry: str, realm: str) -> RegistryAuthError:
    """The 401 after we kept the credentials from a realm they must not go to."""
    shown = realm if len(realm) <= 100 else realm[:97] + "..."
    return RegistryAuthError(
        f"registry {registry} asks for tokens from {shown}, which is neither HTTPS nor its own "
        "plain-HTTP host, so Sealgate did not send it the credentials; fix the registry's "
        "token realm"
    )


class Sender(Protocol):
    """``Transport.send``: one request with retries, no auth."""

    def __call__(
        self, registry: str, method: str, url: str, *, verify: bool | str = ..., **kwargs: Any
    ) -> requests.Response: ...


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    lifetime: float
    """Seconds from issue until it should no longer be used."""


def fetch_token(
    send: Sender,
    registry: str,
    challenge: Challenge,
    scopes: Sequence[str],
    credentials: tuple[str, str] | None,
    *,
    repo: str | None,
    verify: bool | str,
) -> Token:
    """Ask the challenge's realm for a token covering ``scopes``.

    Raises RegistryAuthError when the token service refuses, RegistryError
    when it is misconfigured or sends no token.
    """
    realm = challenge.realm or ""
    if urlsplit(realm).scheme not in ("http", "https"):
        raise RegistryError(
            f"registry {registry} names an unusable token realm; it is misconfigured"
        )
    params: list[tuple[str, str]] = []
    if challenge.service:
        params.append(("service", challenge.service))
    params += [("scope", s) for s in scopes]
    if credentials is not None and credentials[0] == IDENTITY_TOKEN_USERNAME:
        # NOTE: docker's OAuth2 flow: an identity token is a refresh token, POSTed as a form;
        # services without it take the token as a Basic password.
        form = {
            **dict(params),
            "scope": " ".join(scopes),
            "grant_type": "refresh_token",
            "refresh_token": credentials[1],
            "client_id": "sealgate",
        }
        response = send(registry, "POST", realm, data=form, verify=verify)
        if response.status_code in (404, 405):
            finish(response)
            response = send(registry, "GET", realm, params=params, auth=credentials, verify=verify)
    else:
        response = send(registry, "GET", realm, params=params, auth=credentials, verify=verify)
    if response.status_code in (401, 403):
        finish(response)
        raise auth_error(registry, repo, refused=credentials is not None)
    if response.status_code != 200:
        finish(response)
        raise RegistryError(
            f"the token service of registry {registry} answered "
            f"{response.status_code} {response.reason}; try again later"
        )
    body = _read_json(response)
    value = body.get("token") or body.get("access_token")
    try:
        lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
    except (TypeError, ValueError):
        lifetime = DEFAULT_TOKEN_LIFETIME
    if not isinstance(value, str) or not value:
        raise RegistryError(f"the token service of registry {registry} sent no usable token")
    return Token(value, lifetime)


def _read_json(response: requests.Response) -> dict[str, Any]:
    """The token reply as a JSON object ({} when it is not one); raises on the deadline."""
    data = bytearray()
    try:
        for chunk in response.iter_content(chunk_size=65536):
            data += chunk
            if len(data) > MAX_TOKEN_REPLY:
                break
    except requests.RequestException:
        data = bytearray()
    finally:
        finish(response)
    try:
        return strict_json.loads_object(bytes(data), "a token reply", RegistryError)
    except RegistryError:
        return {}
