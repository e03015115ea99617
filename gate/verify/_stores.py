"""Signature stores: every place that can hold a signature, revocation or attestation.

A store offers, for one place (repository and digest), a list of independent
reads; the gatherer runs them all, concurrently, and none of them waits on
another. Malformed data becomes a claim with a ``problem``, never an
exception; only "could not read" raises (and makes the image ERROR).

Stores: the registry (cosign ``.sig`` and ``.att`` tags, OCI 1.1 referrers
by API or tag schema) and the embedded ledger.
"""

from __future__ import annotations

import dataclasses
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gate import signatures
from gate.errors import (
    DigestMismatchError,
    NotFoundError,
    OversizedError,
    RegistryError,
    SealgateError,
)
from gate.keys import PublicKey
from gate.ledger import Entry, Ledger, RollbackError
from gate.refs import Repository
from gate.registry import RegistryClient, referrers_tag
from gate.signatures import SignatureLayer
from gate.verify._evidence import Claim, ClaimKind, Evidence, Place, dsse_claim

REVOCATION_MEDIA_TYPE = signatures.DSSE_MEDIA_TYPE
PREDICATE_ANNOTATION = "predicateType"
BUNDLE_PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
TIMESTAMP_ANNOTATION = "dev.sigstore.cosign/rfc3161timestamp"
MAX_TAG_PAGES = 4
MAX_REFERRERS = 128
"""A repository whose tags take more pages is asked per digest instead."""
MAX_SIGNATURE_BLOB = 1 << 20
"""No signature, bundle or statement a real signer writes is larger."""

Read = Callable[[], Evidence]


class SignatureStore(ABC):
    """A place that may hold signatures, attestations and revocations for a digest."""

    name: str = "store"

    @abstractmethod
    def reads(self, place: Place, *, attestations: bool) -> list[Read]:
        """Independent reads that together cover everything this store holds for ``place``."""


@dataclass
class RegistryStore(SignatureStore):
    """cosign's layouts and OCI referrers in the image's own repository.

    On a registry without the referrers API, the tag-schema index of each
    digest is a tag (``sha256-<hex>``). Rather than one request per digest to
    learn that most have none, the repository's tag list is read once per store
    (one store serves one verification run) and only existing tags are fetched.
    """

    client: RegistryClient
    name: str = "registry"
    _tags: dict[Repository, frozenset[str] | None] = field(default_factory=dict)
    _tag_locks: dict[Repository, threading.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reads(self, place: Place, *, attestations: bool) -> list[Read]:
        repo, digest = place
        if repo is None:
            return []
        found: list[Read] = [
            lambda: self.signature_tag(repo, digest),
            lambda: self.referrers(repo, digest, attestations=attestations),
        ]
        if attestations:
            found.append(lambda: self.attestation_tag(repo, digest))
        return found

    def signature_tag(self, repo: Repository, digest: str) -> Evidence:
        """cosign's ``sha256-<hex>.sig``: signature layers, and revocations as DSSE layers."""
        tag = signatures.attachment_tag(digest, "sig")
        origin = _tag_origin(tag)
        claims: list[Claim] = []
        revocations: list[Claim] = []
        for layer, blob in self._fetch_layers(repo, tag):
            if layer is not None and layer.media_type == REVOCATION_MEDIA_TYPE:
                revocations.append(dsse_claim(origin, _readable(blob)))
            elif isinstance(blob, Claim) or layer is None:
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
                            certificate=_annotation_bytes(layer, signatures.CERTIFICATE_ANNOTATION),
                            chain=_annotation_bytes(layer, signatures.CHAIN_ANNOTATION),
                            rekor_bundle=_annotation_bytes(layer, signatures.BUNDLE_ANNOTATION),
                            timestamp=_annotation_bytes(layer, TIMESTAMP_ANNOTATION),
                        )
                    )
                except SealgateError as e:
                    claims.append(Claim(origin, ClaimKind.SIMPLE_SIGNING, problem=e.message))
        return Evidence(
            signatures=tuple(claims), revocations=tuple(revocations), looked_in=(f"{repo}:{tag}",)
        )

    def referrers(self, repo: Repository, digest: str, *, attestations: bool = False) -> Evidence:
        """cosign v3 bundles (signatures, and attestations if asked) and revocations as referrers.

        A bundle goes by the predicate type its manifest announces: cosign's
        signature predicate is a signature, any other an attestation (cosign
        v3's default ``attest``), none both; the decision checks the signed
        statement either way.
        """
        claims: list[Claim] = []
        attested: list[Claim] = []
        revocations: list[Claim] = []
        looked_in = (f"{repo} referrers of {digest[:19]}",)
        if not self.client.has_referrers_api(repo, digest):
            tags = self._tag_list(repo)
            if tags is not None and referrers_tag(digest) not in tags:
                return Evidence(looked_in=looked_in)
        descriptors = self.client.referrers(repo, digest)
        if len(descriptors) > MAX_REFERRERS:
            # Each may need a manifest fetch; a registry listing thousands is stalling us.
            raise RegistryError(
                f"{repo} lists {len(descriptors)} referrers of {digest[:19]}…, "
                f"more than the {MAX_REFERRERS} any image has; refusing to read them"
            )
        for descriptor in descriptors:
            origin = f"referrer {descriptor.digest[:19]}"
            kind, manifest = descriptor.artifact_type, None
            if kind in (None, "", signatures.OCI_EMPTY):
                # NOTE: cosign v2.6 (go-containerregistry's tag-schema fallback) lists its
                # bundles with the config's media type, the empty one, as artifactType; only
                # the manifest itself says what it holds.
                manifest = self._referrer_manifest(repo, descriptor.digest)
                kind = _manifest_artifact_type(manifest)
            if kind in signatures.BUNDLE_MEDIA_TYPES:
                manifest = manifest or self._referrer_manifest(repo, descriptor.digest)
                predicate = _annotation(manifest, BUNDLE_PREDICATE_ANNOTATION)
                is_signature = predicate in (None, signatures.COSIGN_SIGN_PREDICATE)
                is_attestation = attestations and predicate != signatures.COSIGN_SIGN_PREDICATE
                if not (is_signature or is_attestation):
                    continue
                for blob in self._referrer_blobs(repo, manifest, origin):
                    claim = blob if isinstance(blob, Claim) else _bundle_claim(origin, blob)
                    if is_signature:
                        claims.append(claim)
                    if is_attestation:
                        attested.append(claim)
            elif kind == REVOCATION_MEDIA_TYPE:
                origin = f"revocation {origin}"
                manifest = manifest or self._referrer_manifest(repo, descriptor.digest)
                for blob in self._referrer_blobs(repo, manifest, origin):
                    revocations.append(dsse_claim(origin, _readable(blob)))
        return Evidence(
            signatures=tuple(claims),
            attestations=tuple(attested),
            revocations=tuple(revocations),
            looked_in=looked_in,
        )

    def _tag_list(self, repo: Repository) -> frozenset[str] | None:
        """The repository's tags, read once per store; None when they cannot be listed."""
        with self._lock:
            lock = self._tag_locks.setdefault(repo, threading.Lock())
        with lock:
            if repo not in self._tags:
                try:
                    self._tags[repo] = frozenset(
                        self.client.list_tags(repo, max_pages=MAX_TAG_PAGES)
                    )
                except SealgateError:
                    self._tags[repo] = None  # ask per digest instead
            return self._tags[repo]

    def attestation_tag(self, repo: Repository, digest: str) -> Evidence:
        """cosign attestations at ``sha256-<hex>.att``: each layer blob is a DSSE envelope."""
        tag = signatures.attachment_tag(digest, "att")
        found = []
        for layer, blob in self._fetch_layers(repo, tag):
            if isinstance(blob, Claim):
                found.append(blob)
            elif layer is not None and layer.media_type == signatures.DSSE_MEDIA_TYPE:
                found.append(dsse_claim(_tag_origin(tag), blob))
        return Evidence(attestations=tuple(found), looked_in=(f"{repo}:{tag}",))

    # --- helpers ----------------------------------------------------------------------------

    def _fetch_layers(
        self, repo: Repository, tag: str
    ) -> Iterable[tuple[SignatureLayer | None, bytes | Claim]]:
        """Yield each layer with its verified blob, or a problem claim when the data is bad."""
        origin = _tag_origin(tag)
        manifest = self.client.find_manifest(repo, tag)
        if manifest is None:
            return
        try:
            layers = signatures.parse_signature_manifest(manifest.json())
        except SealgateError as e:
            problem = Claim(origin, ClaimKind.SIMPLE_SIGNING, problem=f"{origin}: {e.message}")
            yield None, problem
            return
        for layer in layers:
            if not layer.is_signature and layer.media_type != signatures.DSSE_MEDIA_TYPE:
                continue  # other attachments never count (vector dir-img-cosign-other-attachment)
            yield (
                layer,
                self._blob(repo, layer.digest, layer.size, origin, ClaimKind.SIMPLE_SIGNING),
            )

    def _referrer_manifest(self, repo: Repository, digest: str) -> dict[str, object] | None:
        """A referrer's manifest as JSON; None when it is not a JSON object (tampered).

        Not being able to fetch it raises, as every "could not read" does.
        """
        manifest = self.client.get_manifest(repo, digest)
        try:
            return manifest.json()
        except RegistryError:
            return None

    def _referrer_blobs(
        self, repo: Repository, manifest: dict[str, object] | None, origin: str
    ) -> list[bytes | Claim]:
        try:
            if manifest is None:
                raise signatures.SignatureFormatError("referrer manifest is not a JSON object")
            layers = [signatures.parse_layer(layer) for layer in _layer_list(manifest)]
        except SealgateError as e:
            return [Claim(origin, ClaimKind.DSSE, problem=f"{origin}: {e.message}")]
        return [
            self._blob(repo, layer.digest, layer.size, origin, ClaimKind.DSSE) for layer in layers
        ]

    def _blob(
        self, repo: Repository, digest: str, size: int, origin: str, kind: ClaimKind
    ) -> bytes | Claim:
        try:
            return self.client.get_blob(repo, digest, max_bytes=min(size, MAX_SIGNATURE_BLOB))
        except (DigestMismatchError, OversizedError) as e:
            return Claim(origin, kind, problem=f"{origin}: {e.message}")
        except NotFoundError:
            return Claim(origin, kind, problem=f"{origin}: layer blob {digest[:19]} is missing")


def _readable(blob: bytes | Claim) -> bytes:
    """A revocation's bytes; one that cannot be read makes the image ERROR, never ignored.

    Skipping it would fail open: whoever can break a blob could lift a revocation.
    """
    if isinstance(blob, Claim):
        raise RegistryError(f"cannot read a revocation: {blob.problem}")
    return blob


def _layer_list(document: dict[str, object]) -> list[object]:
    layers = document.get("layers")
    if layers is None:
        return []
    if not isinstance(layers, list):
        raise signatures.SignatureFormatError("referrer manifest has a 'layers' that is not a list")
    return layers


def _manifest_artifact_type(manifest: Mapping[str, object] | None) -> str | None:
    """What an OCI 1.1 artifact manifest holds: its ``artifactType``, else its config's type."""
    if not isinstance(manifest, Mapping):
        return None
    kind = manifest.get("artifactType")
    if not kind:
        config = manifest.get("config")
        kind = config.get("mediaType") if isinstance(config, Mapping) else None
    return kind if isinstance(kind, str) else None


def _annotation(manifest: Mapping[str, object] | None, name: str) -> str | None:
    annotations = manifest.get("annotations") if isinstance(manifest, Mapping) else None
    value = annotations.get(name) if isinstance(annotations, Mapping) else None
    return value if isinstance(value, str) else None


def _annotation_bytes(layer: SignatureLayer, name: str) -> bytes | None:
    """One of cosign's keyless or transparency-log annotations of a ``.sig`` layer."""
    value = layer.annotations.get(name)
    return value.encode() if value else None


def _tag_origin(tag: str) -> str:
    """Where a claim came from, as its result row puts it: the row names the image (whose
    repository and digest the tag repeats), so "the .sig tag" says which of its places."""
    return f"the .{tag.rpartition('.')[2]} tag"


def _bundle_claim(origin: str, blob: bytes) -> Claim:
    try:
        bundle = signatures.parse_bundle(blob)
    except SealgateError as e:
        return Claim(origin, ClaimKind.DSSE, problem=f"{origin}: {e.message}")
    if bundle.envelope is None:
        return Claim(
            origin,
            ClaimKind.DSSE,
            problem=f"{origin}: bundle signs a message, not an image statement",
        )
    return dataclasses.replace(dsse_claim(origin, bundle.envelope), bundle=blob)


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

    def reads(self, place: Place, *, attestations: bool) -> list[Read]:
        repo, digest = place
        if repo is not None:
            return []  # keyed by digest alone: subjects list (None, digest) for the ledger
        return [lambda: self.lookup(digest, attestations=attestations)]

    def _check(self) -> None:
        with self._lock:
            if not self._checked:
                self.ledger.verify_head(self.trusted_writers)
                self._checked = True

    def lookup(self, digest: str, *, attestations: bool) -> Evidence:
        """Every entry for ``digest``: signatures, revocations and (if asked) attestations."""
        self._check()
        sigs, revocations, atts = [], [], []
        for entry in self.ledger.entries_for(digest):
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
                revocations.append(_statement(origin, entry))
            elif entry.kind == "attest" and attestations:
                atts.append(_statement(origin, entry))
        return Evidence(
            signatures=tuple(sigs),
            revocations=tuple(revocations),
            attestations=tuple(atts),
            looked_in=(str(self.ledger.path),),
        )


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

    def reads(self, place: Place, *, attestations: bool) -> list[Read]:
        if place[0] is not None:
            return []
        return [self._fail]

    def _fail(self) -> Evidence:
        raise RollbackError(self.gone.message, hint=self.gone.hint)
