"""The keyless signer a command line asks for, and the sentence that names who signed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gate.sigstore._endpoints import endpoints
from gate.sigstore._oidc import obtain
from gate.sigstore._sign import KeylessSigner
from gate.sigstore._store import resolve


def keyless_signer(
    *,
    token: str | None,
    fulcio_url: str | None,
    rekor_url: str | None,
    signing_config: str | None,
    trusted_roots: Sequence[str],
    env: Mapping[str, str],
    tsa_url: str | None = None,
    certify_now: bool = True,
) -> KeylessSigner:
    """Configuration first (exit 2), then the token, then the certificate (exit 3).

    The certificate is requested here, before any image is read, so that a
    missing permission or an unreachable Fulcio costs nothing and attaches nothing.
    ``certify_now=False`` (the gate's VSA, signed after a run of any length)
    checks the configuration and the token now and asks Fulcio when signing,
    so a ten-minute certificate is not spent while images are verified.
    """
    where = endpoints(fulcio_url, rekor_url, signing_config, tsa_url)
    roots = resolve(trusted_roots)
    signer = KeylessSigner(obtain(token, env), where, roots)
    if certify_now:
        signer.certificate()
    return signer


def describe_keyless(signer: KeylessSigner) -> str:
    """``Signed as SUBJECT (issuer ISSUER); Rekor: URL …`` for logs, summaries and statuses."""
    entries = ", ".join(logged.url for logged in signer.logged)
    return f"Keyless: signed as {signer.identity}; Rekor entries: {entries or 'none'}"
