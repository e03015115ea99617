"""Every applicable case of vectors/cosign-containers-image gives the answer INDEX.md says.

containers/image stores each cosign layer as ``\\x00sigstore-json\\n`` + JSON
``{mimeType, payload, annotations}``; we turn it into the same claim the
registry store makes from a ``.sig`` layer, and decide with the real key.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gate import keys, policy, signatures
from gate.refs import parse
from gate.result import Status
from gate.verify import Claim, ClaimKind, Evidence, Facts, decide

KEY_CASES = [
    # directory, key, expected status (INDEX.md §A)
    ("dir-img-cosign-valid", "cosign.pub", Status.TRUSTED),
    ("dir-img-cosign-valid-2", "cosign.pub", Status.TRUSTED),
    ("dir-img-cosign-valid-with-tag", "cosign.pub", Status.TRUSTED),
    ("dir-img-cosign-valid", "cosign2.pub", Status.UNTRUSTED),
    ("dir-img-cosign-modified-manifest", "cosign.pub", Status.UNTRUSTED),
    ("dir-img-cosign-other-attachment", "cosign.pub", Status.UNKNOWN),
    ("dir-img-cosign-key-rekor-valid", "cosign2.pub", Status.TRUSTED),
    ("dir-img-cosign-key-rekor-valid", "cosign.pub", Status.UNTRUSTED),
]


def claims_from(directory: Path) -> list[Claim]:
    claims = []
    for path in sorted(directory.glob("signature-*")):
        magic, _, body = path.read_bytes().partition(b"\n")
        assert magic == b"\x00sigstore-json"
        doc = json.loads(body)
        payload = base64.b64decode(doc["payload"])
        layer = signatures.SignatureLayer(
            signatures.digest_of(payload),
            len(payload),
            doc["mimeType"],
            doc.get("annotations") or {},
        )
        if not layer.is_signature:
            continue  # the store skips non-signature layers the same way
        claims.append(
            Claim(path.name, ClaimKind.SIMPLE_SIGNING, payload, payload, (layer.signature(),))
        )
    return claims


@pytest.mark.parametrize(("directory", "key", "expected"), KEY_CASES)
def test_vector(vectors: Path, directory: str, key: str, expected: Status) -> None:
    base = vectors / "cosign-containers-image"
    digest = signatures.digest_of((base / directory / "manifest.json").read_bytes())
    pol = policy.from_keys([keys.load_public_key(str(base / key))])
    ref = parse(f"127.0.0.1:5000/vector@{digest}")
    rule = pol.rule_for(ref)
    assert rule is not None
    result = decide(
        Facts(ref, digest, Evidence(signatures=tuple(claims_from(base / directory)))),
        pol,
        rule,
        datetime.now(UTC),
    )
    assert result.status is expected, result.reason


def test_unknown_key_signature_is_untrusted(vectors: Path) -> None:
    base = vectors / "cosign-containers-image"
    payload = (base / "extracted/unknown-key.payload").read_bytes()
    sig = base64.b64decode((base / "extracted/unknown-key.sig.b64").read_text())
    digest = signatures.parse_payload(payload).digest
    pol = policy.from_keys([keys.load_public_key(str(base / "cosign.pub"))])
    ref = parse(f"127.0.0.1:5000/vector@{digest}")
    claim = Claim("unknown-key", ClaimKind.SIMPLE_SIGNING, payload, payload, (sig,))
    rule = pol.rule_for(ref)
    assert rule is not None
    result = decide(Facts(ref, digest, Evidence(signatures=(claim,))), pol, rule, datetime.now(UTC))
    assert result.status is Status.UNTRUSTED


def test_rsa_pki_signature_verifies_with_the_certificate_key(vectors: Path) -> None:
    """The RSA-4096 PKI case: the scheme comes from the key type (PKCS#1 v1.5, SHA-256)."""
    from cryptography import x509

    base = vectors / "cosign-containers-image/extracted"
    cert = x509.load_pem_x509_certificate((base / "pki.cert.pem").read_bytes())
    public = keys.PublicKey(cert.public_key())
    payload = (base / "pki.payload").read_bytes()
    assert public.verify(base64.b64decode((base / "pki.sig.b64").read_text()), payload)
