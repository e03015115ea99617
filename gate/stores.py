"""Signature stores: where claims about a digest are found, before any trust is decided.

A store turns what it holds for one digest into ``Claim`` values: the exact
signed bytes, the signatures over them, and where they came from. Malformed
data becomes a claim with a ``problem`` (evidence of tampering), never an
exception; only "could not read" raises (and makes the image ERROR).

Stores: the registry (cosign ``.sig`` and ``.att`` tags, OCI 1.1 referrers)
and the embedded ledger.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gate import dsse, signatures
from gate.errors import DigestMismatchError, NotFoundError, OversizedError, SealgateError
from gate.keys import PublicKey
from gate.ledger import Entry, Ledger, RollbackError
from gate.refs import Repository
from gate.registry import RegistryClient
from gate.signatures import SignatureLayer

REVOCATION_MEDIA_TYPE = signatures.DSSE_MEDIA_TYPE
PREDICATE_ANNOTATION = "predicateType"


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


@dataclass(frozen=True)
class Evidence:
    """Every claim found about one digest, by purpose."""

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


class SignatureStore(ABC):
    """A place that may hold signatures, attestations and revocations for a digest."""

    name: str = "store"

    @abstractmethod
    def signatures(self, repo: Repository | None, digest: str) -> Evidence:
        """Signatures and revocations: the cheap, always-needed lookup."""

    def more(self, repo: Repository | None, digest: str) -> Evidence:
        """Further places to look when the first lookup did not settle it (e.g. referrers)."""
        return Evidence()

    def attestations(self, repo: Repository | None, digest: str) -> Evidence:
        return Evidence()


@dataclass
class RegistryStore(SignatureStore):
    """cosign's layouts in the image's own repository."""

    client: RegistryClient
    name: str = "registry"
    _seen_referrers: dict[tuple[Repository, str], list[Any]] = field(default_factory=dict)

    def signatures(self, repo: Repository | None, digest: str) -> Evidence:
        if repo is None:
            return Evidence()
        tag = signatures.attachment_tag(digest, "sig")
        claims, revocations = self._layers(repo, tag)
        return Evidence(
            signatures=tuple(claims), revocations=tuple(revocations), looked_in=(f"{repo}:{tag}",)
        )

    def more(self, repo: Repository | None, digest: str) -> Evidence:
        """cosign v3 bundles attached as OCI 1.1 referrers (API, or the tag-schema index)."""
        if repo is None:
            return Evidence()
        claims, revocations = [], []
        for descriptor in self.client.referrers(repo, digest):
            if descriptor.artifact_type in signatures.BUNDLE_MEDIA_TYPES:
                origin = f"referrer {descriptor.digest[:19]}"
                for blob in self._referrer_blobs(repo, descriptor.digest, origin):
                    if isinstance(blob, Claim):
                        claims.append(blob)
                        continue
                    try:
                        bundle = signatures.parse_bundle(blob)
                    except SealgateError as e:
                        claims.append(
                            Claim(origin, ClaimKind.DSSE, problem=f"{origin}: {e.message}")
                        )
                        continue
                    if bundle.envelope is None:
                        claims.append(
                            Claim(
                                origin,
                                ClaimKind.DSSE,
                                problem=f"{origin}: bundle signs a message, not an image statement",
                            )
                        )
                        continue
                    claims.append(dsse_claim(origin, bundle.envelope))
            elif descriptor.artifact_type == REVOCATION_MEDIA_TYPE:
                for blob in self._referrer_blobs(repo, descriptor.digest, "revocation referrer"):
                    revocations.append(
                        blob if isinstance(blob, Claim) else dsse_claim("revocation referrer", blob)
                    )
        return Evidence(
            signatures=tuple(claims),
            revocations=tuple(revocations),
            looked_in=(f"{repo} referrers",),
        )

    def attestations(self, repo: Repository | None, digest: str) -> Evidence:
        """cosign attestations at ``sha256-<hex>.att``: each layer blob is a DSSE envelope."""
        if repo is None:
            return Evidence()
        tag = signatures.attachment_tag(digest, "att")
        found = []
        for layer, blob in self._fetch_layers(repo, tag):
            if isinstance(blob, Claim):
                found.append(blob)
            elif layer is not None and layer.media_type == signatures.DSSE_MEDIA_TYPE:
                found.append(dsse_claim(f"{repo}:{tag}", blob))
        return Evidence(attestations=tuple(found), looked_in=(f"{repo}:{tag}",))

    # --- helpers ----------------------------------------------------------------------------

    def _layers(self, repo: Repository, tag: str) -> tuple[list[Claim], list[Claim]]:
        claims: list[Claim] = []
        revocations: list[Claim] = []
        origin = f"{repo}:{tag}"
        for layer, blob in self._fetch_layers(repo, tag):
            if isinstance(blob, Claim) or layer is None:
                claims.append(
                    blob if isinstance(blob, Claim) else Claim(origin, ClaimKind.SIMPLE_SIGNING)
                )
            elif layer.is_signature:
                try:
                    claims.append(
                        Claim(
                            origin,
                            ClaimKind.SIMPLE_SIGNING,
                            payload=blob,
                            signed=blob,
                            signatures=(layer.signature(),),
                        )
                    )
                except SealgateError as e:
                    claims.append(Claim(origin, ClaimKind.SIMPLE_SIGNING, problem=e.message))
            elif layer.media_type == REVOCATION_MEDIA_TYPE:
                revocations.append(dsse_claim(origin, blob))
        return claims, revocations

    def _fetch_layers(
        self, repo: Repository, tag: str
    ) -> Iterable[tuple[SignatureLayer | None, bytes | Claim]]:
        """Yield each layer with its verified blob, or a problem claim when the data is bad."""
        origin = f"{repo}:{tag}"
        manifest = self.client.find_manifest(repo, tag)
        if manifest is None:
            return
        try:
            layers = signatures.parse_signature_manifest(manifest.json())
        except SealgateError as e:
            yield (
                None,
                Claim(origin, ClaimKind.SIMPLE_SIGNING, problem=f"{origin}: {e.message}"),
            )
            return
        for layer in layers:
            if not layer.is_signature and layer.media_type != signatures.DSSE_MEDIA_TYPE:
                continue  # other attachments never count (vector dir-img-cosign-other-attachment)
            try:
                yield (
                    layer,
                    self.client.get_blob(
                        repo,
                        layer.digest,
                        max_bytes=layer.size if layer.size < 1 << 20 else 1 << 20,
                    ),
                )
            except (DigestMismatchError, OversizedError) as e:
                yield (
                    layer,
                    Claim(origin, ClaimKind.SIMPLE_SIGNING, problem=f"{origin}: {e.message}"),
                )
            except NotFoundError:
                yield (
                    layer,
                    Claim(
                        origin,
                        ClaimKind.SIMPLE_SIGNING,
                        problem=f"{origin}: layer blob {layer.digest[:19]} is missing",
                    ),
                )

    def _referrer_blobs(
        self, repo: Repository, digest: str, origin: str
    ) -> Iterable[bytes | Claim]:
        manifest = self.client.get_manifest(repo, digest)
        try:
            layers = manifest.json().get("layers") or []
            for layer in layers:
                yield self.client.get_blob(
                    repo, layer["digest"], max_bytes=min(int(layer["size"]), 1 << 20)
                )
        except (DigestMismatchError, OversizedError) as e:
            yield Claim(origin, ClaimKind.DSSE, problem=f"{origin}: {e.message}")
        except (KeyError, TypeError, ValueError, AttributeError):
            yield Claim(origin, ClaimKind.DSSE, problem=f"{origin}: referrer manifest is malformed")


@dataclass
class LedgerStore(SignatureStore):
    """The embedded ledger: statements keyed by digest, behind a signed checkpoint.

    The head of the log is checked once per run (``Ledger.verify_head``) before
    any entry is believed; a tampered ledger makes every lookup an ERROR.
    """

    ledger: Ledger
    trusted_writers: Sequence[PublicKey] | None = None
    name: str = "ledger"
    _checked: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _check(self) -> None:
        with self._lock:
            if not self._checked:
                self.ledger.verify_head(self.trusted_writers)
                self._checked = True

    def _entries(self, digest: str) -> list[Entry]:
        self._check()
        return self.ledger.entries_for(digest)

    def signatures(self, repo: Repository | None, digest: str) -> Evidence:
        sigs, revocations = [], []
        for entry in self._entries(digest):
            origin = f"ledger entry {entry.index}"
            if entry.kind == "sign":
                sigs.append(
                    Claim(
                        origin,
                        ClaimKind.SIMPLE_SIGNING,
                        entry.payload,
                        entry.payload,
                        (entry.signature,),
                        public_key=entry.public_key,
                    )
                )
            elif entry.kind in ("untrust", "unsupport"):
                revocations.append(self._statement(origin, entry))
        return Evidence(
            signatures=tuple(sigs),
            revocations=tuple(revocations),
            looked_in=(str(self.ledger.path),),
        )

    def attestations(self, repo: Repository | None, digest: str) -> Evidence:
        found = [
            self._statement(f"ledger entry {e.index}", e)
            for e in self._entries(digest)
            if e.kind == "attest"
        ]
        return Evidence(attestations=tuple(found), looked_in=(str(self.ledger.path),))

    @staticmethod
    def _statement(origin: str, entry: Entry) -> Claim:
        return Claim(
            origin,
            ClaimKind.STATEMENT,
            entry.payload,
            entry.payload,
            (entry.signature,),
            public_key=entry.public_key,
            payload_type=entry.payload_type,
        )


@dataclass
class MissingLedgerStore(SignatureStore):
    """A ledger file that is gone although its witness saw entries in it.

    Its revocations may be what kept an image out, so every lookup is an
    ERROR (``gone`` says what happened), never a quiet "no ledger here".
    """

    gone: RollbackError
    name: str = "ledger"

    def signatures(self, repo: Repository | None, digest: str) -> Evidence:
        raise RollbackError(self.gone.message, hint=self.gone.hint)

    def attestations(self, repo: Repository | None, digest: str) -> Evidence:
        raise RollbackError(self.gone.message, hint=self.gone.hint)
