"""Who may have signed: issuer, subject (exact or anchored regexp) and claims.

cosign's ``--certificate-identity-regexp`` is unanchored (``acme/app`` also
matches ``evil/acme/app-fork``); ours must match the whole SAN.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gate.errors import UsageError
from gate.sigstore._errors import KeylessError
from gate.sigstore._fulcio import CLAIM_NAMES, CertificateIdentity


@dataclass(frozen=True)
class Identity:
    """A keyless signer policy; construct it once, check many certificates."""

    issuer: str | None = None
    """The OIDC issuer, exactly (e.g. ``https://token.actions.githubusercontent.com``)."""
    subject: str | None = None
    """The SAN, exactly."""
    subject_regex: str | None = None
    """A regexp the whole SAN must match (anchored at both ends)."""
    claims: Mapping[str, str] = field(default_factory=dict)
    """Fulcio extensions by friendly name or dotted OID, each matched exactly."""
    issuer_regex: str | None = None
    """A regexp the whole issuer must match (GitHub Enterprise issuers end in a slug)."""

    def __post_init__(self) -> None:
        if (self.issuer is None) == (self.issuer_regex is None) or self.issuer == "":
            raise UsageError("a keyless identity needs exactly one of issuer and issuer_regex")
        if (self.subject is None) == (self.subject_regex is None):
            raise UsageError("a keyless identity needs exactly one of subject and subject_regex")
        for what, pattern in (("subject", self.subject_regex), ("issuer", self.issuer_regex)):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise UsageError(f"the {what} regexp {pattern!r} does not compile: {e}") from e
        unknown = sorted(set(self.claims) - CLAIM_NAMES)
        if unknown:
            raise UsageError(
                f"unknown certificate claim {unknown[0]!r}; use a Fulcio extension name "
                "such as source_repository_uri or its OID 1.3.6.1.4.1.57264.1.N"
            )

    def describe(self) -> str:
        who = self.subject if self.subject is not None else f"/{self.subject_regex}/"
        issuer = self.issuer if self.issuer is not None else f"/{self.issuer_regex}/"
        return f"{who} from {issuer}"

    def check(self, signer: CertificateIdentity) -> None:
        """Raise KeylessError naming the first field that does not match."""
        if self.issuer is not None and signer.issuer != self.issuer:
            raise KeylessError(
                f"the certificate's OIDC issuer {signer.issuer!r} is not {self.issuer!r}"
            )
        if self.issuer_regex is not None and not re.fullmatch(
            self.issuer_regex, signer.issuer or ""
        ):
            raise KeylessError(
                f"the certificate's OIDC issuer {signer.issuer!r} does not match "
                f"/{self.issuer_regex}/ (anchored)"
            )
        if self.subject is not None and signer.subject != self.subject:
            raise KeylessError(
                f"the certificate's identity {signer.subject!r} is not {self.subject!r}"
            )
        if self.subject_regex is not None and not re.fullmatch(self.subject_regex, signer.subject):
            raise KeylessError(
                f"the certificate's identity {signer.subject!r} does not match "
                f"/{self.subject_regex}/ (anchored)"
            )
        for name, wanted in self.claims.items():
            got = signer.claim(name)
            if got != wanted:
                raise KeylessError(
                    f"the certificate's claim {name} is {got!r}, not {wanted!r}"
                    if got is not None
                    else f"the certificate has no {name} claim (wanted {wanted!r})"
                )
