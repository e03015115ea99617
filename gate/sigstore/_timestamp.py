"""RFC 3161 signed timestamps from the trusted root's timestamp authorities.

A timestamp over the signature bytes proves the signature existed at its
``genTime``: the signing time for bundles without a log (GitHub's private
attestations) and for Rekor v2 entries, which have no integrated time.

NOTE: sigstore-go pkg/verify/tsa.go (message = the signature bytes; the TSA
must be valid in the root at genTime, closed interval); rfc3161-client does
the CMS and chain checks at genTime.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

from gate.sigstore._errors import KeylessError
from gate.sigstore._trust import Authority, TrustedRoot


def verify_timestamp(token: bytes, signature: bytes, roots: TrustedRoot) -> datetime:
    """The genTime of ``token`` once a trusted TSA's signature over ``signature`` checks."""
    try:
        response = decode_timestamp_response(token)
        when = response.tst_info.gen_time
    except (ValueError, TypeError) as e:
        raise KeylessError(f"a signed timestamp in the bundle does not parse ({e})") from e
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    authorities = [tsa for inst in roots.instances for tsa in inst.tsas]
    if not authorities:
        raise KeylessError(
            "the bundle has a signed timestamp but the root has no timestamp authority"
        )
    signed_by: Authority | None = None
    for tsa in authorities:
        if _verifies(response, signature, tsa):
            signed_by = tsa
            if tsa.validity.contains(when):
                return when
    if signed_by is not None:
        raise KeylessError(
            f"the signed timestamp ({when:%Y-%m-%dT%H:%M:%SZ}) is outside the validity "
            f"of its timestamp authority {signed_by.uri}"
        )
    raise KeylessError(
        "the signed timestamp does not verify against any timestamp authority of the root "
        "(untrusted authority, expired certificate, or a timestamp over another signature)"
    )


def _verifies(response: object, signature: bytes, tsa: Authority) -> bool:
    builder = VerifierBuilder().tsa_certificate(tsa.chain[0])
    for cert in tsa.chain[1:-1]:
        builder = builder.add_intermediate_certificate(cert)
    builder = builder.add_root_certificate(tsa.chain[-1])
    try:
        return bool(builder.build().verify_message(response, signature))  # type: ignore[arg-type]
    except (VerificationError, ValueError):
        return False


def decode_tokens(doc: object) -> list[bytes]:
    """``timestampVerificationData.rfc3161Timestamps[].signedTimestamp`` as DER."""
    if not isinstance(doc, dict):
        return []
    items = doc.get("rfc3161Timestamps") or []
    try:
        # NOTE: Go's and protojson's base64 decoders skip line breaks; some producers wrap.
        return [
            base64.b64decode(re.sub(r"[\r\n]", "", i["signedTimestamp"]), validate=True)
            for i in items
        ]
    except (KeyError, TypeError, ValueError) as e:  # ValueError covers binascii.Error
        raise KeylessError(f"a signed timestamp in the bundle is malformed ({e})") from e
