"""Ask an RFC 3161 timestamp authority to countersign a signature.

The token is checked before it is kept: granted, for our nonce, over these
signature bytes, and signed by a timestamp authority of the trusted root
(the same check the verifier makes), so a bad TSA fails the signing, not
a later verification.

NOTE: RFC 3161 §3.4 (HTTP: ``application/timestamp-query`` →
``application/timestamp-reply``); the message is the raw signature bytes, as
sigstore-go and cosign (``--timestamp-server-url``) timestamp it.
"""

from __future__ import annotations

import requests
from rfc3161_client import TimestampRequestBuilder, decode_timestamp_response

from gate.errors import UnavailableError
from gate.sigstore._errors import KeylessError
from gate.sigstore._timestamp import verify_timestamp
from gate.sigstore._trust import TrustedRoot

_TIMEOUT = 30.0


def timestamp(url: str, signature: bytes, roots: TrustedRoot) -> bytes:
    """The DER ``TimeStampResp`` for ``signature``, checked."""
    request = (
        TimestampRequestBuilder()
        .data(signature)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    try:
        response = requests.post(
            url,
            data=request.as_bytes(),
            headers={"Content-Type": "application/timestamp-query"},
            timeout=_TIMEOUT,
        )
    except requests.RequestException as e:
        raise UnavailableError(
            f"the timestamp authority at {url} is unreachable ({type(e).__name__})"
        ) from None
    if response.status_code not in (200, 201):
        raise UnavailableError(
            f"the timestamp authority at {url} refused the request (HTTP {response.status_code})"
        )
    try:
        answer = decode_timestamp_response(response.content)
        granted, nonce = answer.status in (0, 1), answer.tst_info.nonce
    except (ValueError, TypeError):
        raise UnavailableError(f"the timestamp authority at {url} answered no timestamp") from None
    if not granted:
        raise UnavailableError(f"the timestamp authority at {url} did not grant a timestamp")
    if nonce != request.nonce:
        raise UnavailableError(
            f"the timestamp authority at {url} answered for another request (nonce mismatch)"
        )
    try:
        verify_timestamp(response.content, signature, roots)
    except KeylessError as e:
        raise UnavailableError(f"the timestamp authority at {url}: {e.message}") from None
    return response.content
