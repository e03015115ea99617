"""Sigstore bundles v0.1-v0.3, parsed into a checked view beside the raw JSON.

NOTE: protobuf-specs protos/sigstore_bundle.proto (media types, per-version
rules: v0.1 entries need an inclusion promise, v0.2+ an inclusion proof,
v0.3 carries a single certificate rather than a chain); FORMATS.md §3.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from gate import strict_json
from gate.dsse import DSSEError, Envelope
from gate.sigstore._errors import KeylessError
from gate.sigstore._rekor import LogEntry, entry_from_bundle
from gate.sigstore._timestamp import decode_tokens

MEDIA_TYPES = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": 1,
    "application/vnd.dev.sigstore.bundle+json;version=0.2": 2,
    "application/vnd.dev.sigstore.bundle+json;version=0.3": 3,
    "application/vnd.dev.sigstore.bundle.v0.3+json": 3,
}


@dataclass(frozen=True)
class Bundle:
    """The parts of a bundle that verification needs."""

    minor: int
    """0.<minor> of the bundle format."""
    certificate: x509.Certificate | None
    """The signing certificate (keyless), or None for key-signed bundles."""
    key_hint: str | None
    entries: tuple[LogEntry, ...]
    timestamps: tuple[bytes, ...]
    signature: bytes
    """The message signature, or the DSSE envelope's one signature."""
    message_digest: tuple[str, bytes] | None
    envelope: Envelope | None


def split_bundles(data: bytes) -> list[bytes]:
    """One bundle, or several as JSON Lines (``gh attestation download``)."""
    text = data.strip()
    try:
        json.loads(text)
        return [text]
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        lines = [line for line in text.splitlines() if line.strip()]
        return lines if len(lines) > 1 else [text]


def parse_bundle(data: bytes) -> Bundle:
    """Parse one bundle; raises KeylessError for anything malformed or unsupported."""
    doc = strict_json.loads_object(data, "the bundle", KeylessError)
    minor = MEDIA_TYPES.get(str(doc.get("mediaType")))
    if minor is None:
        raise KeylessError(f"the bundle's media type {doc.get('mediaType')!r} is not supported")
    try:
        return _parse(doc, minor)
    except (KeyError, TypeError, AttributeError, ValueError, binascii.Error) as e:
        raise KeylessError(f"the bundle is malformed ({type(e).__name__}: {e})") from e


def _parse(doc: dict[str, Any], minor: int) -> Bundle:
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise KeylessError("the bundle has no verification material")
    certificate, key_hint = _material(material, minor)
    entries = tuple(entry_from_bundle(e) for e in material.get("tlogEntries") or [])
    for entry in entries:
        if minor == 1 and entry.set is None:
            raise KeylessError("a v0.1 bundle's log entry has no inclusion promise (SET)")
        if minor >= 2 and entry.proof is None:
            raise KeylessError("the bundle's log entry has no inclusion proof")
    timestamps = tuple(decode_tokens(material.get("timestampVerificationData")))
    envelope = None
    digest = None
    if "messageSignature" in doc:
        ms = doc["messageSignature"]
        signature = base64.b64decode(ms["signature"], validate=True)
        if "messageDigest" in ms:
            md = ms["messageDigest"]
            digest = (str(md["algorithm"]), base64.b64decode(md["digest"], validate=True))
    elif "dsseEnvelope" in doc:
        try:
            envelope = Envelope.from_dict(doc["dsseEnvelope"], source="the bundle's envelope")
        except DSSEError as e:
            raise KeylessError(e.message) from e
        if len(envelope.signatures) != 1:
            raise KeylessError("the bundle's DSSE envelope must carry exactly one signature")
        signature = envelope.signatures[0].sig
    else:
        raise KeylessError("the bundle has neither a message signature nor a DSSE envelope")
    if not signature:
        raise KeylessError("the bundle's signature is empty")
    return Bundle(minor, certificate, key_hint, entries, timestamps, signature, digest, envelope)


def _material(material: dict[str, Any], minor: int) -> tuple[x509.Certificate | None, str | None]:
    if "publicKey" in material:
        return None, str((material["publicKey"] or {}).get("hint", ""))
    if "certificate" in material:
        return _cert(material["certificate"]["rawBytes"]), None
    if "x509CertificateChain" in material:
        certs = [_cert(c["rawBytes"]) for c in material["x509CertificateChain"]["certificates"]]
        if not certs:
            raise KeylessError("the bundle's certificate chain is empty")
        if any(c.subject == c.issuer for c in certs):
            # NOTE: protobuf-specs: the chain SHOULD NOT hold the root; clients reject it
            # so that trust always comes from the trusted root, never from the bundle.
            raise KeylessError("the bundle's certificate chain contains a root certificate")
        return certs[0], None
    raise KeylessError("the bundle has no certificate or public key")


def _cert(text: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(base64.b64decode(text, validate=True))
    except ValueError as e:
        raise KeylessError(f"the bundle's certificate does not parse ({e})") from e
