"""Where keyless signing goes: flags, a Sigstore signing-config file, or the public good.

NOTE: protobuf-specs sigstore_trustroot.proto SigningConfig v0.2
(``application/vnd.dev.sigstore.signingconfig.v0.2+json``: ``caUrls``,
``rekorTlogUrls``, ``tsaUrls``, each ``[{url, majorApiVersion, validFor,
operator}]``); v0.1 had ``caUrl`` and ``tlogUrls``. Like sigstore-python
(models.py SigningConfig._get_valid_services), the highest Rekor API version
we speak wins: a config that lists a v2 log signs against it. Rekor v2 gives
no signing time, so it needs a timestamp authority.
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
    """Flags win over the file; the file wins over the public-good defaults (no TSA).

    ``--rekor-url`` replaces the log's URL but not its API version: Rekor v1
    unless the signing config chose a v2 log.
    """
    fulcio, rekor, tsa, version = PUBLIC_GOOD.fulcio, PUBLIC_GOOD.rekor, None, 1
    if signing_config:
        fulcio, rekor, tsa, version = _from_file(signing_config)
    fulcio, rekor, tsa = fulcio_url or fulcio, rekor_url or rekor, tsa_url or tsa
    for name, url in (("Fulcio", fulcio), ("Rekor", rekor), ("timestamp authority", tsa)):
        if url is not None and not url.startswith(("https://", "http://")):
            raise UsageError(f"the {name} URL '{url}' is not an http(s) URL")
    if version == 2 and tsa is None:
        raise UsageError(
            "Rekor v2 records no signing time, so signing against it needs a timestamp "
            "authority: give --tsa-url or list one in the signing config's tsaUrls"
        )
    return Endpoints(fulcio.rstrip("/"), rekor.rstrip("/"), tsa, version)


def _from_file(path: str) -> tuple[str, str, str | None, int]:
    try:
        doc: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"cannot read the signing config {path}: {e}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"the signing config {path} is not a JSON object")
    fulcio = _first(doc.get("caUrls"), 1) or doc.get("caUrl")
    version, rekor = 2, _first(doc.get("rekorTlogUrls"), 2, strict=True)
    if rekor is None:
        version, rekor = 1, _first(doc.get("rekorTlogUrls"), 1) or _first(doc.get("tlogUrls"), 1)
    if not isinstance(fulcio, str) or not isinstance(rekor, str):
        raise UsageError(
            f"the signing config {path} names no Fulcio (caUrls) "
            "or no Rekor v1 or v2 (rekorTlogUrls)"
        )
    # NOTE: a TSA entry's url is the full timestamp endpoint (…/api/v1/timestamp).
    tsa = _first(doc.get("tsaUrls"), 1)
    return fulcio, rekor, tsa, version


def _first(services: Any, major: int, *, strict: bool = False) -> str | None:
    """The first service of that API version (v0.1 entries are bare URLs or have no version;
    ``strict`` counts only entries that name this version)."""
    if not isinstance(services, list):
        return None
    for service in services:
        if isinstance(service, str):
            if strict:
                continue
            return service
        if not isinstance(service, dict):
            continue
        named = service.get("majorApiVersion")
        if named == major or (named is None and not strict):
            url = service.get("url")
            if isinstance(url, str):
                return url
    return None
