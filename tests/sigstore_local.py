"""A Fulcio-style CA and a Rekor-style log in memory: real keyless cosign signatures, offline.

Issues short-lived certificates carrying Fulcio's identity extensions, signs
cosign payloads with them, and logs each signature as a hashedrekord entry
with a signed entry timestamp (SET), exactly the shapes cosign v2 writes into
``.sig`` layers; ``trusted_root()`` is the matching ``trusted_root.json``.
Nothing here trusts anything: the verifier under test does the checking.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

GITHUB = "https://token.actions.githubusercontent.com"
_FULCIO = "1.3.6.1.4.1.57264.1."
_DER = serialization.Encoding.DER
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def _utf8(text: str) -> bytes:
    """DER UTF8String, as Fulcio encodes its newer extensions."""
    data = text.encode()
    assert len(data) < 128
    return bytes([0x0C, len(data)]) + data


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Signing:
    """One keyless signature: the cosign annotations of its ``.sig`` layer."""

    signature: bytes
    certificate_pem: bytes
    chain_pem: bytes
    rekor_bundle: bytes

    def annotations(self) -> dict[str, str]:
        return {
            "dev.cosignproject.cosign/signature": base64.b64encode(self.signature).decode(),
            "dev.sigstore.cosign/certificate": self.certificate_pem.decode(),
            "dev.sigstore.cosign/chain": self.chain_pem.decode(),
            "dev.sigstore.cosign/bundle": self.rekor_bundle.decode(),
        }


@dataclass
class LocalSigstore:
    """The CA and the log; one instance is one trust root."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    log_index: int = 0

    def __post_init__(self) -> None:
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealgate-test-fulcio")])
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - timedelta(days=1))
            .not_valid_after(self.now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        self.log_key = ec.generate_private_key(ec.SECP256R1())
        self.log_der = self.log_key.public_key().public_bytes(_DER, _SPKI)
        self.log_id = hashlib.sha256(self.log_der).digest()

    def trusted_root(self) -> dict[str, Any]:
        """The ``trusted_root.json`` (protobuf-specs TrustedRoot) for this CA and log."""
        since = {"start": _time(self.now - timedelta(days=1))}
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [
                {
                    "baseUrl": "http://127.0.0.1:1/rekor",
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {
                        "rawBytes": base64.b64encode(self.log_der).decode(),
                        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                        "validFor": since,
                    },
                    "logId": {"keyId": base64.b64encode(self.log_id).decode()},
                }
            ],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "sealgate-test", "commonName": "fulcio"},
                    "uri": "http://127.0.0.1:1/fulcio",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": base64.b64encode(self.ca.public_bytes(_DER)).decode()}
                        ]
                    },
                    "validFor": since,
                }
            ],
            "ctlogs": [],
            "timestampAuthorities": [],
        }

    def certificate(
        self, subject: str, issuer: str = GITHUB, claims: Mapping[int, str] | None = None
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A ten-minute certificate for ``subject`` (a URI or an email), as Fulcio issues."""
        key = ec.generate_private_key(ec.SECP256R1())
        san: x509.GeneralName = (
            x509.RFC822Name(subject) if "@" in subject and "://" not in subject
            else x509.UniformResourceIdentifier(subject)
        )  # fmt: skip
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - timedelta(minutes=1))
            .not_valid_after(self.now + timedelta(minutes=10))
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(_FULCIO + "1"), issuer.encode()),
                False,
            )
            .add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(_FULCIO + "8"), _utf8(issuer)),
                False,
            )
        )
        for number, value in (claims or {}).items():
            oid = x509.ObjectIdentifier(_FULCIO + str(number))
            builder = builder.add_extension(x509.UnrecognizedExtension(oid, _utf8(value)), False)
        return key, builder.sign(self.ca_key, hashes.SHA256())

    def sign(
        self, payload: bytes, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate
    ) -> Signing:
        """Sign ``payload`` and log it: what ``cosign sign`` (keyless) attaches."""
        signature = key.sign(payload, ec.ECDSA(hashes.SHA256()))
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        body = json.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {
                        "hash": {
                            "algorithm": "sha256",
                            "value": hashlib.sha256(payload).hexdigest(),
                        }
                    },
                    "signature": {
                        "content": base64.b64encode(signature).decode(),
                        "publicKey": {"content": base64.b64encode(pem).decode()},
                    },
                },
            },
            separators=(",", ":"),
        ).encode()
        self.log_index += 1
        entry = {
            "body": base64.b64encode(body).decode(),
            "integratedTime": int(self.now.timestamp()),
            "logID": self.log_id.hex(),
            "logIndex": self.log_index,
        }
        canonical = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        entry_set = self.log_key.sign(canonical, ec.ECDSA(hashes.SHA256()))
        bundle = {"SignedEntryTimestamp": base64.b64encode(entry_set).decode(), "Payload": entry}
        return Signing(
            signature,
            pem,
            self.ca.public_bytes(serialization.Encoding.PEM),
            json.dumps(bundle).encode(),
        )


def attach_keyless(client: Any, ref: Any, signing_for: Any) -> str:
    """Sign ``ref`` (with its digest) keylessly as cosign v2 does: one ``.sig`` layer.

    ``signing_for(payload) -> Signing`` makes the signature; returns the tag written.
    """
    from gate import signatures
    from gate.sign import _push

    payload = signatures.make_payload(ref.digest, signatures.docker_reference(ref), None)
    signing = signing_for(payload)
    layer = signatures.SignatureLayer(
        signatures.digest_of(payload),
        len(payload),
        signatures.SIMPLE_SIGNING_MEDIA_TYPE,
        signing.annotations(),
    )
    artifact = signatures.signature_manifest([layer], {layer.digest: payload})
    tag = signatures.attachment_tag(ref.digest, "sig")
    _push(client, ref.repository, artifact, tag)
    return tag
