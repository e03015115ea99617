"""Verify a Sigstore bundle: signature, signer, log entries, timestamps, identity.

The order follows sigstore-go's ``Verifier.Verify``: establish trusted times
(log entries and signed timestamps), check the certificate at each of them,
check the signature over the artifact or envelope, then the policy.

NOTE: sigstore-go pkg/verify/signed_entity.go; cosign pkg/cosign/verify.go.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from gate import strict_json
from gate.errors import KeyLoadError
from gate.keys import PublicKey
from gate.sigstore._bundle import Bundle, parse_bundle
from gate.sigstore._certs import chain_to_root, check_at
from gate.sigstore._entries import Signed, match_entry
from gate.sigstore._errors import KeylessError
from gate.sigstore._fulcio import identity_of
from gate.sigstore._identity import Identity
from gate.sigstore._rekor import LogEntry, verify_inclusion, verify_set
from gate.sigstore._timestamp import verify_timestamp
from gate.sigstore._trust import TrustedRoot
from gate.sigstore._verified import Verified

_DIGEST = re.compile(r"(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})")
INTOTO = "application/vnd.in-toto+json"
Times = list[tuple[datetime, str]]


def verify_bundle(
    bundle: bytes,
    artifact: bytes | str,
    *,
    identity: Identity | None,
    key: PublicKey | None,
    roots: TrustedRoot,
    require_tlog: bool = False,
    predicate_type: str | None = None,
) -> Verified:
    """Verify one bundle for ``artifact``: its bytes, or ``sha256:<hex>`` (``sha512:<hex>``
    is accepted for in-toto subjects, as npm provenance uses).

    Exactly one of ``identity`` (keyless) and ``key`` is given. Raises
    KeylessError (exit 1) naming the failed check.
    """
    data, digests = _artifact(artifact)
    digest = digests.get("sha256")
    b = parse_bundle(bundle)
    checks: list[str] = []
    if b.certificate is not None:
        if identity is None:
            raise KeylessError("the bundle is signed keylessly but no identity policy was given")
        instance, ca = chain_to_root(b.certificate, roots)
        checks.append("certificate chain" + (" and SCT" if instance.ctlogs else ""))
        scoped = TrustedRoot((instance,))
        verifier = b.certificate.public_key()
        verifier_der = _der(b.certificate)
    else:
        if key is None:
            raise KeylessError("the bundle is signed with a key but no public key was given")
        if b.key_hint and b.key_hint != key.hint:
            raise KeylessError("the bundle was signed by another key (its key hint differs)")
        scoped, verifier, verifier_der = roots, key.key, key.der

    statement = _check_content(b, data, digests, verifier, checks)
    signed = Signed(b.signature, verifier_der, digest if b.envelope is None else None, b.envelope)
    times = log_times(b.entries, signed, scoped, checks)
    if require_tlog and not b.entries:
        raise KeylessError("the bundle has no transparency-log entry and the policy requires one")
    for token in b.timestamps:
        times.append((verify_timestamp(token, b.signature, scoped), "signed timestamp"))
    if b.timestamps:
        checks.append("signed timestamp")
    if not times:
        raise KeylessError(
            "the bundle has no trusted signing time (no log entry with an integrated time "
            "and no signed timestamp)"
        )
    for entry in b.entries:  # Rekor v2 has no integrated time: its key must cover the TSA's
        inst = scoped.for_log(entry.log_id)
        tlog = inst.tlog(entry.log_id) if inst else None
        if entry.time is None and tlog and not all(tlog.validity.contains(t) for t, _ in times):
            raise KeylessError(f"the log key of {tlog.host} was not trusted at the signing time")

    who = None
    if b.certificate is not None:
        for when, what in times:
            check_at(b.certificate, ca, when, what)
        who = identity_of(b.certificate)
        assert identity is not None
        identity.check(who)
        checks.append("identity")
    if predicate_type is not None and (statement or {}).get("predicateType") != predicate_type:
        raise KeylessError(f"the attestation's predicate type is not {predicate_type}")
    signed_time, source = times[0]
    return Verified(
        identity=who.subject if who else None,
        issuer=who.issuer if who else None,
        extensions=dict(who.claims) if who else {},
        signed_time=signed_time,
        time_source=source,
        log_index=b.entries[0].log_index if b.entries else None,
        checks=tuple(checks),
        predicate_type=str(statement["predicateType"]) if statement else None,
        key_id=key.key_id if key is not None and b.certificate is None else None,
        payload=b.envelope.payload if b.envelope else None,
    )


def log_times(
    entries: tuple[LogEntry, ...], signed: Signed, roots: TrustedRoot, checks: list[str]
) -> Times:
    """Verify each entry (promise and/or proof, body); the integrated times they vouch for."""
    times: Times = []
    for entry in entries:
        instance = roots.for_log(entry.log_id)
        log = instance.tlog(entry.log_id) if instance else None
        if log is None:
            raise KeylessError("the log entry is from a transparency log the root does not trust")
        if entry.set is not None:
            verify_set(entry, log)
            checks.append("tlog SET")
        if entry.proof is not None:
            verify_inclusion(entry, log)
            checks.append("tlog inclusion proof and checkpoint")
        if entry.set is None and entry.proof is None:
            raise KeylessError("the log entry has neither a SET nor an inclusion proof")
        match_entry(entry, signed)
        checks.append("tlog entry body")
        when = entry.time
        if when is not None:
            if not log.validity.contains(when):
                raise KeylessError(f"the log key of {log.host} was not trusted at the entry's time")
            times.append((when, "log integrated time"))
    return times


def _artifact(artifact: bytes | str) -> tuple[bytes | None, dict[str, bytes]]:
    """The artifact's bytes (when given) and its digests by in-toto algorithm name."""
    if isinstance(artifact, str):
        if _DIGEST.fullmatch(artifact) is None:
            raise KeylessError(f"{artifact[:80]!r} is not a sha256:<64 hex> digest")
        algorithm, _, hexd = artifact.partition(":")
        return None, {algorithm: bytes.fromhex(hexd)}
    return artifact, {
        "sha256": hashlib.sha256(artifact).digest(),
        "sha512": hashlib.sha512(artifact).digest(),
    }


def _check_content(
    b: Bundle, data: bytes | None, digests: dict[str, bytes], verifier: Any, checks: list[str]
) -> dict[str, Any] | None:
    if b.envelope is None:
        digest = digests.get("sha256")
        if digest is None:
            raise KeylessError("a message signature needs the artifact or its sha256 digest")
        if b.message_digest is not None:
            algorithm, value = b.message_digest
            if algorithm == "SHA2_256" and value != digest:
                raise KeylessError("the bundle's message digest is not the artifact's digest")
        if not _verify_message(verifier, b.signature, data, digest):
            raise KeylessError("the signature does not verify over the artifact")
        checks.append("signature over the artifact")
        return None
    env = b.envelope
    if not signer_key(verifier).verify(b.signature, env.pae):
        raise KeylessError("the DSSE signature does not verify over the envelope")
    checks.append("DSSE signature")
    if env.payload_type != INTOTO:
        raise KeylessError(f"the DSSE payload type {env.payload_type!r} is not in-toto")
    statement = _statement(env.payload)
    wanted = {alg: d.hex() for alg, d in digests.items()}
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not any(
        isinstance(s, dict)
        and isinstance(s.get("digest"), dict)
        and any(s["digest"].get(alg) == hexd for alg, hexd in wanted.items())
        for s in subjects
    ):
        alg, hexd = next(iter(wanted.items()))
        raise KeylessError(f"the in-toto statement's subjects do not name {alg}:{hexd}")
    checks.append("in-toto subject")
    return statement


def _statement(payload: bytes) -> dict[str, Any]:
    try:
        doc = strict_json.loads(payload, "the DSSE payload", KeylessError)
    except KeylessError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("predicateType"), str):
        raise KeylessError("the DSSE payload is not an in-toto statement")
    return doc


def _verify_message(key: Any, signature: bytes, data: bytes | None, digest: bytes) -> bool:
    """Verify over the bytes when we have them, else over the SHA-256 digest (prehashed)."""
    try:
        if data is not None and signer_key(key).verify(signature, data):
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
            return True
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def signer_key(key: Any) -> PublicKey:
    """The certificate's key as a PublicKey; an unusable one is a failed check, not bad usage."""
    try:
        return PublicKey(key)
    except KeyLoadError as e:
        raise KeylessError(f"the signing certificate's key cannot verify: {e}") from e


def _der(cert: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return bytes(cert.public_bytes(Encoding.DER))
