"""SLSA provenance signed keylessly: made (certified and logged) first, attached after.

Two steps so that ``sign --keyless --provenance`` attaches nothing when the
provenance's Rekor upload fails: the command makes the provenance after the
image signatures are logged and before any of them is pushed.

Each image gets both layouts, as for signatures: a cosign ``.att`` layer (the
envelope, with the certificate, chain and Rekor bundle annotations, as cosign
v2's keyless ``attest`` writes) and the Sigstore bundle v0.3 as an OCI 1.1
referrer (cosign v3's ``attest``). The run's directory gets
``provenance.intoto.jsonl`` (the envelope, as with a key) and
``provenance.sigstore.jsonl`` (the bundle: ``sealgate verify-blob --bundle``
and ``gh``-style tools verify it on its own).

NOTE: cosign cmd/cosign/cli/attest/attest.go (keyless .att annotations) and
pkg/oci/remote/write.go WriteReferrer; FORMATS.md §2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gate import dsse, refs, signatures
from gate.attest import (
    ATTESTATION_SUFFIX,
    PROVENANCE_FILE,
    Provenance,
    _ensure_dir,
    subjects_for,
)
from gate.provenance import (
    SLSA_PROVENANCE_V1,
    BuildContext,
    Statement,
    slsa_provenance,
    write_jsonl,
)
from gate.registry import RegistryClient
from gate.sign import _push, attach_layer
from gate.sigstore import KeylessSigner
from gate.verify._stores import PREDICATE_ANNOTATION

BUNDLE_FILE = "provenance.sigstore.jsonl"


@dataclass(frozen=True)
class Made:
    """Keyless provenance ready to attach: nothing of it is in a registry yet."""

    images: tuple[tuple[str, str], ...]
    statement: Statement
    envelope_json: bytes
    bundle: bytes
    annotations: Mapping[str, str]
    """The ``.att`` layer's keyless annotations; empty with Rekor v2 (bundle only)."""


def make(
    signer: KeylessSigner,
    images: Sequence[tuple[str, str]],
    *,
    env: Mapping[str, str],
    started: datetime | None = None,
) -> Made:
    """Build the statement (UsageError outside CI), sign it, log it in Rekor."""
    build = BuildContext.from_environment(env)
    statement = slsa_provenance(
        subjects_for(images), build, started_on=started, finished_on=datetime.now(UTC)
    )
    bundle, envelope_json, logged = signer.sign_statement(statement.to_json())
    return Made(tuple(images), statement, envelope_json, bundle, signer.annotations(logged))


def attach(client: RegistryClient | None, made: Made, directory: Path | None) -> Provenance:
    """Write the files, then attach both layouts to each image."""
    envelope = dsse.Envelope.from_json(made.envelope_json, source="the signed provenance")
    path = None
    if directory is not None:
        path = _ensure_dir(directory) / PROVENANCE_FILE
        write_jsonl(path, [envelope])
        (path.parent / BUNDLE_FILE).write_bytes(made.bundle + b"\n")
    attached: list[str] = []
    if client is not None:
        now = datetime.now(UTC)
        for image, digest in dict.fromkeys(made.images):
            ref = refs.parse(image)
            if made.annotations:  # NOTE: Rekor v2: no SET, so no cosign .att layer
                attached.append(
                    attach_layer(
                        client,
                        ref.repository,
                        digest,
                        made.envelope_json,
                        dsse.MEDIA_TYPE_ENVELOPE,
                        {PREDICATE_ANNOTATION: SLSA_PROVENANCE_V1, **made.annotations},
                        ATTESTATION_SUFFIX,
                    )
                )
            subject = client.get_manifest(ref.repository, digest).descriptor
            artifact = signatures.bundle_referrer(
                subject.to_dict(), made.bundle, SLSA_PROVENANCE_V1, now
            )
            attached.append("referrer " + _push(client, ref.repository, artifact, artifact.digest))
    return Provenance(made.statement, envelope, path, tuple(attached))
