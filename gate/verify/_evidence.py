"""What stores find about a digest, before anything is trusted (pure values).

A store turns what it holds into ``Claim`` values: the exact signed bytes,
the signatures over them, and where they came from. Malformed data becomes a
claim with a ``problem`` (evidence of tampering), never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gate import dsse
from gate.errors import SealgateError
from gate.refs import Repository

Place = tuple[Repository | None, str]
"""Where evidence about a digest may live: its repository (None: ledger only) and the digest."""


class ClaimKind(StrEnum):
    SIMPLE_SIGNING = "simple-signing"
    """``signed`` is the payload itself (cosign .sig layers, ledger entries)."""
    DSSE = "dsse"
    """``signed`` is the DSSE PAE of ``payload`` (bundles, attestations, revocations)."""
    STATEMENT = "statement"
    """``signed`` is an in-toto Statement itself (ledger revocations and attestations)."""


@dataclass(frozen=True)
class Claim:
    """One signed statement found in a store; nothing about it is trusted yet."""

    origin: str
    kind: ClaimKind
    payload: bytes = b""
    """The statement: a simple-signing payload or an in-toto Statement."""
    signed: bytes = b""
    """The exact bytes the signatures cover."""
    signatures: tuple[bytes, ...] = ()
    problem: str | None = None
    """Why this claim is malformed (tampered data); such a claim never verifies."""
    public_key: bytes | None = None
    """The signer key the store recorded (ledger); a claim, still checked against the policy."""
    payload_type: str | None = None
    """For DSSE claims: the envelope's payloadType (only in-toto statements count)."""
    certificate: bytes | None = None
    """cosign keyless ``.sig`` layers: the Fulcio leaf certificate (PEM)."""
    chain: bytes | None = None
    """... and its chain (PEM); trust still comes only from the policy's roots."""
    rekor_bundle: bytes | None = None
    """cosign's ``dev.sigstore.cosign/bundle``: the Rekor entry and its SET."""
    timestamp: bytes | None = None
    """cosign's ``dev.sigstore.cosign/rfc3161timestamp``."""
    bundle: bytes | None = None
    """The whole Sigstore bundle a DSSE claim came from (keyless and tlog checks need it)."""


@dataclass(frozen=True)
class Evidence:
    """Every claim found about one image, by purpose, and every place that was read."""

    signatures: tuple[Claim, ...] = ()
    attestations: tuple[Claim, ...] = ()
    revocations: tuple[Claim, ...] = ()
    looked_in: tuple[str, ...] = ()

    def __add__(self, other: Evidence) -> Evidence:
        return Evidence(
            self.signatures + other.signatures,
            self.attestations + other.attestations,
            self.revocations + other.revocations,
            self.looked_in + other.looked_in,
        )


def dsse_claim(origin: str, envelope_json: bytes | Mapping[str, Any]) -> Claim:
    """A claim from a DSSE envelope (JSON bytes or an already-parsed object)."""
    try:
        if isinstance(envelope_json, bytes):
            envelope = dsse.Envelope.from_json(envelope_json, source=origin)
        else:
            envelope = dsse.Envelope.from_dict(envelope_json, source=origin)
    except SealgateError as e:
        return Claim(origin, ClaimKind.DSSE, problem=f"{origin}: {e.message}")
    return Claim(
        origin,
        ClaimKind.DSSE,
        payload=envelope.payload,
        signed=dsse.pae(envelope.payload_type, envelope.payload),
        signatures=tuple(s.sig for s in envelope.signatures),
        payload_type=envelope.payload_type,
    )
