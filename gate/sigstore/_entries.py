"""Does a log entry's body name *this* signature, artifact and signer?

A valid SET or inclusion proof only proves some body was logged; an attacker
can pair a real entry with another signature. So each kind's body is compared
field by field with what we verified.

NOTE: rekor pkg/types/{hashedrekord/v0.0.1,dsse/v0.0.1,intoto/v0.0.2} schemas;
rekor-tiles (Rekor v2) hashedrekord/dsse v0.0.2; sigstore-go pkg/tlog/entry.go
(the same comparisons).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from gate.dsse import Envelope
from gate.sigstore._errors import KeylessError
from gate.sigstore._rekor import LogEntry

_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
_DER = serialization.Encoding.DER


@dataclass(frozen=True)
class Signed:
    """What the verifier established, to be found in the log entry."""

    signature: bytes
    verifier_der: bytes
    """DER of the leaf certificate, or DER SPKI of the key."""
    digest: bytes | None = None
    """SHA-256 of the artifact (message signatures)."""
    envelope: Envelope | None = None
    """The DSSE envelope (DSSE content)."""


def match_entry(entry: LogEntry, signed: Signed) -> None:
    """Raise KeylessError unless the entry body records exactly this signature."""
    body = entry.body_json()
    try:
        kind, version = body["kind"], body["apiVersion"]
        spec = body["spec"]
        if entry.kind and (entry.kind, entry.version) != (kind, version):
            raise KeylessError("the log entry's kind does not match its body")
        check = _CHECKS.get((kind, version))
        if check is None:
            raise KeylessError(f"log entries of kind {kind} {version} are not supported")
        check(spec, signed)
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise KeylessError(f"the log entry body is malformed ({type(e).__name__}: {e})") from e


def _mismatch(what: str) -> KeylessError:
    return KeylessError(f"the log entry body names {what}")


def _hashedrekord_1(spec: Any, signed: Signed) -> None:
    if signed.digest is None:
        raise _mismatch("a message signature, but this is a DSSE envelope")
    data = spec["data"]["hash"]
    if data["algorithm"] != "sha256" or bytes.fromhex(data["value"]) != signed.digest:
        raise _mismatch("another artifact")
    if base64.b64decode(spec["signature"]["content"], validate=True) != signed.signature:
        raise _mismatch("another signature")
    pem = base64.b64decode(spec["signature"]["publicKey"]["content"], validate=True)
    if _pem_der(pem) != signed.verifier_der:
        raise _mismatch("another certificate or key")


def _hashedrekord_2(spec: Any, signed: Signed) -> None:
    inner = spec["hashedRekordV002"]
    digest = base64.b64decode(inner["data"]["digest"], validate=True)
    expected = signed.digest
    if signed.envelope is not None:  # NOTE: rekor-v2-spec §6.1.4: hashedrekord over DSSE
        expected = hashlib.sha256(signed.envelope.pae).digest()
        if len(signed.envelope.signatures) != 1:
            raise _mismatch("one signature, but the envelope has several")
    if inner["data"]["algorithm"] != "SHA2_256" or digest != expected:
        raise _mismatch("another artifact" if signed.envelope is None else "another DSSE envelope")
    _v2_signature(inner["signature"], signed)


def _v2_signature(sig: Any, signed: Signed) -> None:
    if base64.b64decode(sig["content"], validate=True) != signed.signature:
        raise _mismatch("another signature")
    verifier = sig["verifier"]
    raw = verifier.get("x509Certificate") or verifier.get("publicKey")
    if base64.b64decode(raw["rawBytes"], validate=True) != signed.verifier_der:
        raise _mismatch("another certificate or key")


def _dsse_1(spec: Any, signed: Signed) -> None:
    env = _envelope(signed)
    _payload_hash(spec["payloadHash"]["algorithm"], spec["payloadHash"]["value"], env)
    logged = {
        (base64.b64decode(s["signature"], validate=True), _pem_der(base64.b64decode(s["verifier"])))
        for s in spec["signatures"]
    }
    _same_signatures(logged, env, signed)


def _dsse_2(spec: Any, signed: Signed) -> None:
    inner = spec["dsseV002"]
    env = _envelope(signed)
    ph = inner["payloadHash"]
    if (
        ph["algorithm"] != "SHA2_256"
        or base64.b64decode(ph["digest"]) != hashlib.sha256(env.payload).digest()
    ):
        raise _mismatch("another DSSE payload")
    if len(inner["signatures"]) != len(env.signatures):
        raise _mismatch("other DSSE signatures")
    for s in inner["signatures"]:
        _v2_signature(s, signed)


def _intoto_2(spec: Any, signed: Signed) -> None:
    env = _envelope(signed)
    content = spec["content"]
    _payload_hash(content["payloadHash"]["algorithm"], content["payloadHash"]["value"], env)
    logged_env = content["envelope"]
    if logged_env.get("payloadType") != env.payload_type:
        raise _mismatch("another DSSE payload type")
    # NOTE: intoto v0.0.2 stores publicKey as base64(PEM) and sig base64-encoded once
    # or, as Rekor wrote it for years, twice; accept either spelling of our signature.
    logged = {
        (_once_or_twice(s["sig"], signed.signature), _pem_der(base64.b64decode(s["publicKey"])))
        for s in logged_env["signatures"]
    }
    _same_signatures(logged, env, signed)


def _once_or_twice(text: str, ours: bytes) -> bytes:
    once = base64.b64decode(text, validate=True)
    if once == ours:
        return once
    try:
        return base64.b64decode(once, validate=True)
    except (binascii.Error, ValueError):
        return once


def _envelope(signed: Signed) -> Envelope:
    if signed.envelope is None:
        raise _mismatch("a DSSE envelope, but this is a message signature")
    return signed.envelope


def _payload_hash(algorithm: str, value: str, env: Envelope) -> None:
    if algorithm != "sha256" or bytes.fromhex(value) != hashlib.sha256(env.payload).digest():
        raise _mismatch("another DSSE payload")


def _same_signatures(logged: set[tuple[bytes, bytes]], env: Envelope, signed: Signed) -> None:
    ours = {(s.sig, signed.verifier_der) for s in env.signatures}
    if logged != ours:
        raise _mismatch("other DSSE signatures or another signer")


def _pem_der(pem: bytes) -> bytes:
    """DER of a PEM certificate or public key (or DER given as is)."""
    try:
        if b"CERTIFICATE" in pem:
            return x509.load_pem_x509_certificate(pem).public_bytes(_DER)
        if b"PUBLIC KEY" in pem:
            return load_pem_public_key(pem).public_bytes(_DER, _SPKI)
        return load_der_public_key(pem).public_bytes(_DER, _SPKI)
    except ValueError:
        raise KeylessError("the log entry names a certificate or key that does not parse") from None


_CHECKS = {
    ("hashedrekord", "0.0.1"): _hashedrekord_1,
    ("hashedrekord", "0.0.2"): _hashedrekord_2,
    ("dsse", "0.0.1"): _dsse_1,
    ("dsse", "0.0.2"): _dsse_2,
    ("intoto", "0.0.2"): _intoto_2,
}
