"""What a Fulcio certificate says about its signer: SAN and the 57264 extensions.

NOTE: sigstore/fulcio docs/oid-info.md. Extensions .1.1-.1.6 are deprecated and
hold the raw string bytes; .1.8 onwards hold a DER UTF8String. The SAN is a
URI (CI workflows), an email (people) or an otherName .1.7 (usernames).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from cryptography import x509

from gate.sigstore._errors import KeylessError

_ARC = "1.3.6.1.4.1.57264.1."
OTHERNAME_OID = x509.ObjectIdentifier(_ARC + "7")

CLAIMS: dict[int, str] = {
    1: "issuer_v1",
    2: "github_workflow_trigger",
    3: "github_workflow_sha",
    4: "github_workflow_name",
    5: "github_workflow_repository",
    6: "github_workflow_ref",
    8: "issuer",
    9: "build_signer_uri",
    10: "build_signer_digest",
    11: "runner_environment",
    12: "source_repository_uri",
    13: "source_repository_digest",
    14: "source_repository_ref",
    15: "source_repository_identifier",
    16: "source_repository_owner_uri",
    17: "source_repository_owner_identifier",
    18: "build_config_uri",
    19: "build_config_digest",
    20: "build_trigger",
    21: "run_invocation_uri",
    22: "source_repository_visibility_at_signing",
    23: "deployment_environment",
    24: "token_subject",
}
"""Friendly claim names by the last arc of their OID (policy ``claims:`` keys)."""
CLAIM_NAMES = frozenset(CLAIMS.values()) | {f"{_ARC}{n}" for n in CLAIMS}
_RAW = frozenset(range(1, 7))


@dataclass(frozen=True)
class CertificateIdentity:
    """The signer a certificate names."""

    subject: str
    """The SAN: URI, email or otherName username."""
    subject_kind: str
    """``uri``, ``email`` or ``othername``."""
    issuer: str | None
    """The OIDC issuer (.1.8, else the deprecated .1.1)."""
    claims: dict[str, str] = field(default_factory=dict)
    """Every 57264 extension present, by friendly name."""

    def claim(self, name: str) -> str | None:
        """A claim by friendly name or by dotted OID."""
        if name.startswith(_ARC):
            tail = name[len(_ARC) :]
            name = CLAIMS.get(int(tail), name) if tail.isdigit() else name
        if name == "issuer":
            return self.issuer
        return self.claims.get(name)


@lru_cache(maxsize=1024)
def identity_of(cert: x509.Certificate) -> CertificateIdentity:
    """Decode the SAN and the Fulcio extensions; raises KeylessError without a SAN.

    Cached per certificate: one workflow certificate signs many images.
    """
    claims: dict[str, str] = {}
    for ext in cert.extensions:
        dotted = ext.oid.dotted_string
        if not dotted.startswith(_ARC) or not dotted[len(_ARC) :].isdigit():
            continue
        arc = int(dotted[len(_ARC) :])
        if arc not in CLAIMS or not isinstance(ext.value, x509.UnrecognizedExtension):
            continue
        raw = ext.value.value
        text = raw.decode("utf-8", "replace") if arc in _RAW else _utf8string(raw)
        if text is not None:
            claims[CLAIMS[arc]] = text
    subject, kind = _san(cert)
    issuer = claims.get("issuer") or claims.get("issuer_v1")
    claims.pop("issuer", None)
    return CertificateIdentity(subject, kind, issuer, claims)


def _san(cert: x509.Certificate) -> tuple[str, str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise KeylessError("the signing certificate has no subject alternative name") from None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        return uri, "uri"
    for email in san.get_values_for_type(x509.RFC822Name):
        return email, "email"
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == OTHERNAME_OID and (text := _utf8string(other.value)) is not None:
            return text, "othername"
    raise KeylessError("the signing certificate's SAN is not a URI, email or Fulcio username")


def _utf8string(der: bytes) -> str | None:
    """The text of a DER UTF8String (tag 12), unwrapping one explicit tag; None if not one."""
    if der[:1] == b"\xa0":  # [0] EXPLICIT around the value (otherName)
        inner = _tlv(der)
        if inner is None:
            return None
        der = inner
    if der[:1] != b"\x0c":
        return None
    body = _tlv(der)
    return None if body is None else body.decode("utf-8", "replace")


def _tlv(der: bytes) -> bytes | None:
    """The contents of one DER TLV that spans all of ``der``."""
    if len(der) < 2:
        return None
    first = der[1]
    if first < 0x80:
        length, start = first, 2
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or len(der) < 2 + n:
            return None
        length, start = int.from_bytes(der[2 : 2 + n], "big"), 2 + n
    return der[start:] if len(der) - start == length else None
