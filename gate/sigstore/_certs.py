"""Certificate checks: the leaf chains to a trusted CA, and a CT log saw it (SCT).

The expensive half (signature checks along the chain and over the SCT) does
not depend on the signing time, so it is cached per (leaf, CA); the cheap
half (is every certificate valid at this signing time?) runs per signature.
That is what makes 200 images signed by one workflow certificate cost one
chain check.

NOTE: sigstore-go pkg/verify/certificate.go (chain at the observer time,
EKU codeSigning), pkg/verify/sct.go; RFC 6962 §3.2 (the signed SCT data).
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from datetime import datetime
from functools import lru_cache

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from gate.sigstore._errors import KeylessError
from gate.sigstore._trust import Authority, RootInstance, TrustedRoot

_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
_DER = serialization.Encoding.DER


def chain_to_root(
    leaf: x509.Certificate, roots: TrustedRoot, *, require_sct: bool | None = None
) -> tuple[RootInstance, Authority]:
    """The instance and CA that issued ``leaf``, after the time-independent checks.

    ``require_sct`` None means: required when the instance lists CT logs (the
    public-good root does; GitHub's and private PKIs do not). Cached per
    (leaf, roots); only successes are cached.
    """
    return _chain_to_root(leaf, roots, require_sct)


@lru_cache(maxsize=1024)
def _chain_to_root(
    leaf: x509.Certificate, roots: TrustedRoot, require_sct: bool | None
) -> tuple[RootInstance, Authority]:
    # NOTE: cryptography's Certificate hashes and compares by its DER encoding.
    candidates = roots.for_certificate(leaf)
    if not candidates:
        raise KeylessError(
            f"the signing certificate was issued by an unknown CA ({leaf.issuer.rfc4514_string()})"
        )
    failure: KeylessError | None = None
    for instance, ca in candidates:
        try:
            _checked(leaf, ca, instance, require_sct)
            return instance, ca
        except KeylessError as e:
            failure = failure or e
    assert failure is not None
    raise failure


def check_at(leaf: x509.Certificate, ca: Authority, when: datetime, what: str) -> None:
    """Every certificate from leaf to root, and the CA itself, is valid at ``when``."""
    if not leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc:
        raise KeylessError(
            f"the signing certificate was not valid at the {what} "
            f"({when:%Y-%m-%dT%H:%M:%SZ}; valid {leaf.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}"
            f" to {leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ})"
        )
    if not ca.validity.contains(when):
        raise KeylessError(f"the CA {ca.uri or 'of the root'} was not trusted at the {what}")
    for cert in ca.chain:
        if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
            raise KeylessError(
                f"the CA certificate {cert.subject.rfc4514_string()} was not valid at the {what}"
            )


def _checked(
    leaf: x509.Certificate, ca: Authority, instance: RootInstance, require_sct: bool | None
) -> None:
    """The checks that do not depend on the signing time: signatures, usages, SCT."""
    _chain(leaf, ca)
    _leaf_usage(leaf)
    need = bool(instance.ctlogs) if require_sct is None else require_sct
    if need:
        _sct(leaf, ca.chain[0], instance)


def _chain(leaf: x509.Certificate, ca: Authority) -> None:
    path = (leaf, *ca.chain)
    for child, parent in itertools.pairwise(path):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            raise KeylessError(
                f"the certificate {child.subject.rfc4514_string() or 'of the signer'} "
                f"is not signed by the CA {parent.subject.rfc4514_string()}"
            ) from None
        if not _is_ca(parent):
            raise KeylessError(
                f"the certificate {parent.subject.rfc4514_string()} in the chain is not a CA"
            )
    root = path[-1]
    if root.subject != root.issuer:
        return  # NOTE: a trusted root may end at an intermediate (protobuf-specs allows it)
    try:
        root.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        raise KeylessError(
            f"the root certificate {root.subject.rfc4514_string()} is not self-signed"
        ) from None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _leaf_usage(leaf: x509.Certificate) -> None:
    if _is_ca(leaf):
        raise KeylessError("the signing certificate is a CA certificate, not a leaf")
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return  # NOTE: private PKIs (cosign --certificate) need not set an EKU
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise KeylessError("the signing certificate is not for code signing (no EKU codeSigning)")


def _sct(leaf: x509.Certificate, issuer: x509.Certificate, instance: RootInstance) -> None:
    """At least one embedded SCT verifies against a CT log of the root."""
    try:
        scts = leaf.extensions.get_extension_for_class(
            x509.PrecertificateSignedCertificateTimestamps
        ).value
    except x509.ExtensionNotFound:
        raise KeylessError("the signing certificate has no embedded SCT") from None
    issuer_key_hash = hashlib.sha256(issuer.public_key().public_bytes(_DER, _SPKI)).digest()
    tbs = leaf.tbs_precertificate_bytes
    for sct in scts:
        log = next((c for c in instance.ctlogs if c.log_id == sct.log_id), None)
        if log is None:
            continue
        ms = int(sct.timestamp.timestamp() * 1000)
        ext = sct.extension_bytes
        # NOTE: RFC 6962 §3.2 digitally-signed struct for a precert_entry (entry type 1)
        signed = (
            struct.pack(">BBQH", 0, 0, ms, 1)
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + struct.pack(">H", len(ext))
            + ext
        )
        if log.key.verify(sct.signature, signed) and log.validity.contains(
            sct.timestamp.replace(tzinfo=log.validity.start.tzinfo)
        ):
            return
    raise KeylessError("no embedded SCT verifies against a CT log of the trusted root")
