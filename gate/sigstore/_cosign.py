"""cosign's legacy ``.sig`` layers: keyless (certificate + SET) and key + SET.

A legacy signature carries the certificate, maybe its chain, and a Rekor
bundle (SET + entry) as layer annotations; the SET is the only proof of the
signing time, and it is what cosign checks offline.

NOTE: FORMATS.md §1.2 and §1.6; cosign pkg/cosign/verify.go
(VerifyImageSignature: VerifyBundle, then the certificate at integratedTime).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gate import strict_json
from gate.keys import PublicKey
from gate.sigstore._certs import chain_to_root, check_at
from gate.sigstore._entries import Signed
from gate.sigstore._errors import KeylessError
from gate.sigstore._fulcio import identity_of
from gate.sigstore._identity import Identity
from gate.sigstore._rekor import entry_from_cosign
from gate.sigstore._timestamp import verify_timestamp
from gate.sigstore._trust import TrustedRoot
from gate.sigstore._verified import Verified
from gate.sigstore._verify import log_times, signer_key


def verify_cosign_keyless(
    payload: bytes,
    signature: bytes,
    certificate_pem: bytes,
    chain_pem: bytes | None,
    rekor_bundle_json: bytes | None,
    *,
    identity: Identity,
    roots: TrustedRoot,
    rfc3161_timestamp_json: bytes | None = None,
    require_tlog: bool = False,
) -> Verified:
    """Verify one keyless ``.sig`` layer: payload bytes, raw signature, annotations.

    ``chain_pem`` is read only to be well-formed: trust comes from ``roots``.
    The signing time comes from the Rekor bundle (``dev.sigstore.cosign/bundle``)
    and/or the ``dev.sigstore.cosign/rfc3161timestamp`` annotation; one is needed.
    The simple-signing payload's digest binding is the caller's check.
    """
    leaf, key, leaf_der = _leaf(certificate_pem, chain_pem)
    if rekor_bundle_json is None and (require_tlog or rfc3161_timestamp_json is None):
        raise KeylessError(
            "the keyless signature has no Rekor bundle, so nothing proves when it was signed"
            if not require_tlog
            else "the keyless signature has no Rekor bundle and the policy requires one"
        )
    instance, ca = chain_to_root(leaf, roots)
    checks = ["certificate chain" + (" and SCT" if instance.ctlogs else "")]
    if not key.verify(signature, payload):
        raise KeylessError("the signature does not verify over the payload with the certificate")
    checks.append("signature over the payload")
    scoped = TrustedRoot((instance,))
    entry = entry_from_cosign(rekor_bundle_json) if rekor_bundle_json is not None else None
    signed = Signed(signature, leaf_der, hashlib.sha256(payload).digest())
    times = log_times((entry,) if entry else (), signed, scoped, checks)
    if rfc3161_timestamp_json is not None:
        # NOTE: cosign pkg/cosign/verify.go VerifyRFC3161Timestamp: over the raw signature.
        token = _cosign_timestamp(rfc3161_timestamp_json)
        times.append((verify_timestamp(token, signature, scoped), "signed timestamp"))
        checks.append("signed timestamp")
    for when, what in times:
        check_at(leaf, ca, when, what)
    who = identity_of(leaf)
    identity.check(who)
    checks.append("identity")
    return Verified(
        identity=who.subject,
        issuer=who.issuer,
        extensions=dict(who.claims),
        signed_time=times[0][0],
        time_source=times[0][1],
        log_index=entry.log_index if entry else None,
        checks=tuple(checks),
    )


def _cosign_timestamp(annotation: bytes) -> bytes:
    """The DER token of ``{"SignedRFC3161Timestamp": "<base64>"}``."""
    try:
        doc = strict_json.loads(annotation, "the RFC 3161 timestamp annotation", KeylessError)
        return base64.b64decode(doc["SignedRFC3161Timestamp"], validate=True)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, binascii.Error) as e:
        raise KeylessError(f"the RFC 3161 timestamp annotation is malformed ({e})") from e


@lru_cache(maxsize=256)
def _leaf(
    certificate_pem: bytes, chain_pem: bytes | None
) -> tuple[x509.Certificate, PublicKey, bytes]:
    """The leaf, its key and DER, parsed once per annotation text (one cert, many images)."""
    try:
        leaf = x509.load_pem_x509_certificate(certificate_pem)
        if chain_pem:
            x509.load_pem_x509_certificates(chain_pem)
    except ValueError as e:
        raise KeylessError(f"the signature's certificate or chain does not parse ({e})") from e
    return leaf, signer_key(leaf.public_key()), leaf.public_bytes(Encoding.DER)


def verify_rekor_set(
    payload: bytes,
    signature: bytes,
    key: PublicKey,
    rekor_bundle_json: bytes,
    *,
    roots: TrustedRoot,
) -> Verified:
    """Verify a key-signed ``.sig`` layer's Rekor bundle: SET, and a body naming this signature.

    The signature itself is checked too, so a pass means key + log both agree.
    """
    if not key.verify(signature, payload):
        raise KeylessError("the signature does not verify over the payload with the key")
    checks = ["signature over the payload"]
    entry = entry_from_cosign(rekor_bundle_json)
    signed = Signed(signature, key.der, hashlib.sha256(payload).digest())
    times = log_times((entry,), signed, roots, checks)
    return Verified(
        identity=None,
        issuer=None,
        extensions={},
        signed_time=times[0][0],
        time_source=times[0][1],
        log_index=entry.log_index,
        checks=tuple(checks),
        key_id=key.key_id,
    )
