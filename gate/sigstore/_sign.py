"""Keyless signing: an ephemeral key, a Fulcio certificate, a Rekor entry per signature.

The private key lives only in this object's memory for one command; what is
attached carries the certificate and the log's receipt instead of a key
anyone could steal. Both of Sealgate's layouts are produced: the cosign v2
``.sig`` layer annotations and the Sigstore bundle v0.3 cosign v3 writes.

NOTE: cosign pkg/cosign/bundle (RekorBundle), pkg/oci/static (certificate and
chain annotations); protobuf-specs sigstore_bundle.proto (Bundle v0.3:
``verificationMaterial.certificate.rawBytes`` is the leaf only).

With Rekor v2 the log gives an inclusion proof but no SET and no time: only
the bundle form can carry it, and the RFC 3161 timestamp (mandatory then)
supplies the signing time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from gate import dsse
from gate.errors import UnavailableError, UsageError
from gate.keys import PrivateKey
from gate.sigstore._certs import chain_to_root
from gate.sigstore._errors import KeylessError
from gate.sigstore._fulcio import identity_of
from gate.sigstore._fulcio_client import Certificate, request_certificate
from gate.sigstore._oidc import IdentityToken
from gate.sigstore._rekor_client import (
    Logged,
    bundle_tlog_entry,
    cosign_bundle_annotation,
    dsse_proposal,
    hashedrekord,
    upload,
    upload_v2,
)
from gate.sigstore._trust import TrustedRoot
from gate.sigstore._tsa_client import timestamp

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
TIMESTAMP_ANNOTATION = "dev.sigstore.cosign/rfc3161timestamp"


@dataclass(frozen=True)
class Endpoints:
    fulcio: str
    rekor: str
    tsa: str | None = None
    """An RFC 3161 timestamp authority's full URL, or None for the log's time alone."""
    rekor_version: int = 1
    """The Rekor API's major version: 2 (rekor-tiles) needs ``tsa``."""


LEGACY_NEEDS_V1 = (
    "the legacy .sig form needs a Rekor v1 signed entry timestamp, which Rekor v2 does not "
    "give; sign with --format bundle (or both, which then writes the bundle only)"
)
PUBLIC_GOOD = Endpoints("https://fulcio.sigstore.dev", "https://rekor.sigstore.dev")


@dataclass
class KeylessSigner:
    """Signs with a Fulcio certificate for ``token``; every signature goes to Rekor."""

    token: IdentityToken
    endpoints: Endpoints
    roots: TrustedRoot
    """Checks each Rekor answer's SET: the log must be one the verifier will trust."""
    logged: list[Logged] = field(default_factory=list)
    _key: PrivateKey | None = field(default=None, repr=False)
    _cert: Certificate | None = field(default=None, repr=False)

    def certificate(self) -> Certificate:
        """The certificate, requested once per command (it lives ten minutes).

        It must chain (with its SCT) to a CA of the trusted root: a signature
        no verifier with that root would accept is not worth attaching.
        """
        if self._cert is None:
            if self.token.expires <= time.time():
                raise UnavailableError(
                    "the identity token expired before Fulcio was asked for a certificate; "
                    "request a fresh token closer to signing"
                )
            private = ec.generate_private_key(ec.SECP256R1())
            cert = request_certificate(self.endpoints.fulcio, self.token, private)
            try:
                chain_to_root(cert.leaf, self.roots)
            except KeylessError as e:
                raise UnavailableError(
                    f"Fulcio at {self.endpoints.fulcio} issued a certificate the trusted root "
                    f"does not accept ({e.message})"
                ) from None
            self._cert, self._key = cert, PrivateKey(private)
        return self._cert

    @property
    def identity(self) -> str:
        who = identity_of(self.certificate().leaf)
        return f"{who.subject} (issuer {who.issuer})"

    @property
    def bundle_only(self) -> bool:
        """Rekor v2 gives no SET, which the cosign ``.sig`` and ``.att`` layers need."""
        return self.endpoints.rekor_version == 2

    def _signing_key(self) -> PrivateKey:
        self.certificate()
        assert self._key is not None
        return self._key

    def legacy(self, payload: bytes) -> tuple[bytes, dict[str, str]]:
        """A ``.sig`` signature over ``payload`` and its keyless annotations."""
        if self.bundle_only:
            raise UsageError(LEGACY_NEEDS_V1)
        cert = self.certificate()
        signature = self._signing_key().sign(payload)
        stamp = self._timestamp(signature)
        entry = hashedrekord(hashlib.sha256(payload).digest(), signature, cert.leaf_pem())
        logged = upload(self.endpoints.rekor, entry, entry["spec"], self.roots)
        self.logged.append(logged)
        notes = self.annotations(logged)
        if stamp is not None:
            # NOTE: cosign pkg/cosign/bundle/tsa.go RFC3161Timestamp JSON.
            notes[TIMESTAMP_ANNOTATION] = json.dumps(
                {"SignedRFC3161Timestamp": base64.b64encode(stamp).decode()},
                separators=(",", ":"),
            )
        return signature, notes

    def _timestamp(self, signature: bytes) -> bytes | None:
        if self.endpoints.tsa is None:
            return None
        return timestamp(self.endpoints.tsa, signature, self.roots)

    def bundle(self, statement: bytes) -> bytes:
        """A bundle v0.3: DSSE over ``statement``, the leaf certificate, the Rekor entry."""
        return self.sign_statement(statement)[0]

    def sign_statement(self, statement: bytes) -> tuple[bytes, bytes, Logged]:
        """(bundle v0.3, the envelope JSON exactly as logged, the Rekor entry) for an in-toto
        statement; the envelope is what a cosign ``.att`` layer carries."""
        cert = self.certificate()
        envelope = dsse.sign(statement, dsse.PAYLOAD_TYPE_INTOTO, self._signing_key())
        env_doc = envelope.to_dict()
        env_doc["signatures"] = [
            {k: v for k, v in s.items() if not (k == "keyid" and v == "")}
            for s in env_doc["signatures"]
        ]
        env_json = json.dumps(env_doc, separators=(",", ":")).encode()
        stamp = self._timestamp(envelope.signatures[0].sig)
        if self.bundle_only:
            # NOTE: rekor-v2-spec §6.1.4: DSSE is logged as a hashedrekord over its PAE.
            logged = upload_v2(
                self.endpoints.rekor,
                hashlib.sha256(envelope.pae).digest(),
                envelope.signatures[0].sig,
                cert.leaf.public_bytes(Encoding.DER),
                self.roots,
            )
        else:
            logged = self._upload_dsse(env_doc, env_json, statement, cert)
        self.logged.append(logged)
        return self._bundle_doc(cert, logged, stamp, env_doc), env_json, logged

    def _upload_dsse(
        self, env_doc: dict[str, Any], env_json: bytes, statement: bytes, cert: Certificate
    ) -> Logged:
        """Rekor v1: a dsse v0.0.1 entry whose spec must come back exactly as expected."""
        verifier = base64.b64encode(cert.leaf_pem()).decode()
        expected: dict[str, Any] = {
            "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(env_json).hexdigest()},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(statement).hexdigest()},
            "signatures": [
                {"signature": s["sig"], "verifier": verifier} for s in env_doc["signatures"]
            ],
        }
        return upload(
            self.endpoints.rekor, dsse_proposal(env_json, cert.leaf_pem()), expected, self.roots
        )

    def _bundle_doc(
        self, cert: Certificate, logged: Logged, stamp: bytes | None, env_doc: dict[str, Any]
    ) -> bytes:
        material: dict[str, Any] = {
            "certificate": {
                "rawBytes": base64.b64encode(cert.leaf.public_bytes(Encoding.DER)).decode()
            },
            "tlogEntries": [bundle_tlog_entry(logged.entry)],
        }
        if stamp is not None:
            material["timestampVerificationData"] = {
                "rfc3161Timestamps": [{"signedTimestamp": base64.b64encode(stamp).decode()}]
            }
        doc = {"mediaType": BUNDLE_V03, "verificationMaterial": material, "dsseEnvelope": env_doc}
        return json.dumps(doc, separators=(",", ":")).encode()

    def annotations(self, logged: Logged) -> dict[str, str]:
        """cosign's keyless layer annotations for one logged signature (none for Rekor v2,
        whose entries have no SET for ``dev.sigstore.cosign/bundle``)."""
        if logged.entry.set is None:
            return {}
        cert = self.certificate()
        return {
            CERTIFICATE_ANNOTATION: cert.leaf_pem().decode(),
            CHAIN_ANNOTATION: cert.chain_pem().decode(),
            BUNDLE_ANNOTATION: cosign_bundle_annotation(logged.entry),
        }
