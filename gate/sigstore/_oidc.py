"""Identity tokens for keyless signing: where a CI job gets one, and the checks before use.

Order (issue 12): ``--identity-token`` / ``SIGSTORE_ID_TOKEN`` (GitLab's
``id_tokens:`` sets it), then GitHub Actions' token endpoint, else one
sentence naming what is missing. A token is a bearer secret: it is never
logged, and GitHub runs get an ``::add-mask::`` line so the runner hides it.

NOTE: GitHub's OIDC request protocol (``ACTIONS_ID_TOKEN_REQUEST_URL`` +
``&audience=``, ``Authorization: bearer ACTIONS_ID_TOKEN_REQUEST_TOKEN``,
answer ``{"value": JWT}``), as actions/toolkit packages/core/src/oidc-utils.ts
does it; the claims checked are sigstore-python's ``IdentityToken`` ones.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from gate.errors import UnavailableError, UsageError

AUDIENCE = "sigstore"
_TIMEOUT = 15.0


@dataclass(frozen=True)
class IdentityToken:
    """A raw OIDC JWT and the claims Fulcio will read from it (not signature-checked here:
    Fulcio checks the signature; we check what would only waste a certificate)."""

    raw: str = field(repr=False)
    issuer: str
    subject: str
    """What the proof of possession signs: the ``email`` claim if present, else ``sub``."""
    expires: int

    def __repr__(self) -> str:
        return f"IdentityToken(issuer={self.issuer!r}, subject={self.subject!r})"


def parse_token(raw: str, *, now: float | None = None) -> IdentityToken:
    """Decode and check audience, expiry and the claims Fulcio needs."""
    raw = raw.strip()
    parts = raw.split(".")
    if len(parts) != 3:
        raise UsageError("the identity token is not a JWT (three dot-separated parts)")
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise UsageError("the identity token's claims are not base64url JSON") from None
    if not isinstance(claims, dict):
        raise UsageError("the identity token's claims are not a JSON object")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if AUDIENCE not in audiences:
        raise UsageError(
            f"the identity token is for audience {aud!r}, not 'sigstore'; "
            "request it with audience sigstore"
        )
    moment = time.time() if now is None else now
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise UsageError("the identity token has no expiry ('exp') claim")
    if exp <= moment:
        raise UsageError("the identity token has expired; request a fresh one")
    nbf = claims.get("nbf", claims.get("iat"))
    if isinstance(nbf, int | float) and not isinstance(nbf, bool) and nbf > moment + 60:
        raise UsageError("the identity token is not valid yet (its 'nbf' is in the future)")
    issuer, subject = claims.get("iss"), claims.get("email") or claims.get("sub")
    if not isinstance(issuer, str) or not issuer or not isinstance(subject, str) or not subject:
        raise UsageError("the identity token lacks an 'iss' or 'sub' claim")
    return IdentityToken(raw, issuer, subject, int(exp))


def obtain(explicit: str | None, env: Mapping[str, str]) -> IdentityToken:
    """The token to sign with, from the first source that has one."""
    raw = explicit or env.get("SIGSTORE_ID_TOKEN")
    if not raw:
        url, bearer = (
            env.get("ACTIONS_ID_TOKEN_REQUEST_URL"),
            env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
        )
        if url and bearer:
            raw = _github_token(url, bearer)
        else:
            raise UsageError(
                "keyless signing needs an identity token: pass --identity-token, set "
                "SIGSTORE_ID_TOKEN (GitLab: id_tokens with aud sigstore), or on GitHub "
                "Actions grant 'permissions: id-token: write'"
            )
    if env.get("GITHUB_ACTIONS") == "true":
        # NOTE: workflow command ::add-mask:: (docs.github.com, workflow-commands).
        sys.stdout.write(f"::add-mask::{raw.strip()}\n")
        sys.stdout.flush()
    return parse_token(raw)


def _github_token(url: str, bearer: str) -> str:
    sep = "&" if "?" in url else "?"
    try:
        response = requests.get(
            f"{url}{sep}audience={AUDIENCE}",
            headers={"Authorization": f"bearer {bearer}", "Accept": "application/json"},
            timeout=_TIMEOUT,
        )
    except requests.RequestException as e:
        raise UnavailableError(
            f"GitHub's identity-token endpoint is unreachable ({type(e).__name__})"
        ) from None
    if response.status_code != 200:
        raise UnavailableError(
            f"GitHub's identity-token endpoint answered HTTP {response.status_code}; "
            "does the job have 'permissions: id-token: write'?"
        )
    try:
        doc: Any = response.json()
        value = doc["value"]
    except (ValueError, KeyError, TypeError):
        raise UnavailableError("GitHub's identity-token endpoint did not answer {value}") from None
    if not isinstance(value, str) or not value:
        raise UnavailableError("GitHub's identity-token endpoint answered an empty token")
    return value
