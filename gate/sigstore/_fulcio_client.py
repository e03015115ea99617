"""Ask Fulcio for a short-lived certificate for an ephemeral key.

NOTE: Fulcio API v2, ``POST /api/v2/signingCert`` (fulcio.proto
CreateSigningCertificateRequest): ``credentials.oidcIdentityToken`` plus
``publicKeyRequest {publicKey {algorithm, content: PEM}, proofOfPossession}``,
where the proof is the key's signature over the token's subject (``email``
or ``sub``) — fulcio docs/how-certificate-issuing-works.md. The answer is
``signedCertificateEmbeddedSct.chain.certificates`` (leaf first, PEM).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gate.errors import UnavailableError
from gate.sigstore._oidc import IdentityToken

_TIMEOUT = 30.0


@dataclass(frozen=True)
class Certificate:
    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]

    def leaf_pem(self) -> bytes:
        return self.leaf.public_bytes(Encoding.PEM)

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(Encoding.PEM) for c in self.chain)


def request_certificate(
    base_url: str, token: IdentityToken, key: ec.EllipticCurvePrivateKey
) -> Certificate:
    """A certificate for ``key``; refuses one whose key is not ``key``."""
    public_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    proof = key.sign(token.subject.encode(), ec.ECDSA(hashes.SHA256()))
    body: dict[str, Any] = {
        "credentials": {"oidcIdentityToken": token.raw},
        "publicKeyRequest": {
            "publicKey": {"algorithm": "ECDSA", "content": public_pem.decode()},
            "proofOfPossession": base64.b64encode(proof).decode(),
        },
    }
    url = base_url.rstrip("/") + "/api/v2/signingCert"
    try:
        response = requests.post(url, json=body, timeout=_TIMEOUT)
    except requests.RequestException as e:
        raise UnavailableError(
            f"Fulcio at {base_url} is unreachable ({type(e).__name__})"
        ) from None
    if response.status_code not in (200, 201):
        raise UnavailableError(
            f"Fulcio at {base_url} refused the certificate request (HTTP {response.status_code})"
        )
    cert = _parse(response, base_url)
    if cert.leaf.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo):
        raise UnavailableError(
            f"Fulcio at {base_url} issued a certificate for another key than the one sent"
        )
    return cert


def _parse(response: requests.Response, base_url: str) -> Certificate:
    try:
        doc: Any = response.json()
        chain = (doc.get("signedCertificateEmbeddedSct") or doc["signedCertificateDetachedSct"])[
            "chain"
        ]["certificates"]
        certs = [x509.load_pem_x509_certificate(p.encode()) for p in chain]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UnavailableError(f"Fulcio at {base_url} answered no certificate chain") from None
    if not certs:
        raise UnavailableError(f"Fulcio at {base_url} answered an empty certificate chain")
    return Certificate(certs[0], tuple(certs[1:]))
