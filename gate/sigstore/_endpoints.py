"""Where keyless signing goes: flags, a Sigstore signing-config file, or the public good.

NOTE: protobuf-specs sigstore_trustroot.proto SigningConfig v0.2
(``application/vnd.dev.sigstore.signingconfig.v0.2+json``: ``caUrls``,
``rekorTlogUrls``, ``tsaUrls``, each ``[{url, majorApiVersion, validFor,
operator}]``); v0.1 had ``caUrl`` and ``tlogUrls``. Rekor v1 API only here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gate.errors import UsageError
from gate.sigstore._sign import PUBLIC_GOOD, Endpoints


def endpoints(
    fulcio_url: str | None,
    rekor_url: str | None,
    signing_config: str | None,
    tsa_url: str | None = None,
) -> Endpoints:
    """Flags win over the file; the file wins over the public-good defaults (no TSA)."""
    fulcio, rekor, tsa = PUBLIC_GOOD.fulcio, PUBLIC_GOOD.rekor, None
    if signing_config:
        fulcio, rekor, tsa = _from_file(signing_config)
    fulcio, rekor, tsa = fulcio_url or fulcio, rekor_url or rekor, tsa_url or tsa
    for name, url in (("Fulcio", fulcio), ("Rekor", rekor), ("timestamp authority", tsa)):
        if url is not None and not url.startswith(("https://", "http://")):
            raise UsageError(f"the {name} URL '{url}' is not an http(s) URL")
    return Endpoints(fulcio.rstrip("/"), rekor.rstrip("/"), tsa)


def _from_file(path: str) -> tuple[str, str, str | None]:
    try:
        doc: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"cannot read the signing config {path}: {e}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"the signing config {path} is not a JSON object")
    fulcio = _first(doc.get("caUrls"), 1) or doc.get("caUrl")
    rekor = _first(doc.get("rekorTlogUrls"), 1) or _first(doc.get("tlogUrls"), 1)
    if not isinstance(fulcio, str) or not isinstance(rekor, str):
        raise UsageError(
            f"the signing config {path} names no Fulcio (caUrls) or no Rekor v1 (rekorTlogUrls)"
        )
    # NOTE: a TSA entry's url is the full timestamp endpoint (…/api/v1/timestamp).
    tsa = _first(doc.get("tsaUrls"), 1)
    return fulcio, rekor, tsa


def _first(services: Any, major: int) -> str | None:
    """The first service of that API version (v0.1 entries are bare URLs or have no version)."""
    if not isinstance(services, list):
        return None
    for service in services:
        if isinstance(service, str):
            return service
        if isinstance(service, dict) and service.get("majorApiVersion", major) == major:
            url = service.get("url")
            if isinstance(url, str):
                return url
    return None
