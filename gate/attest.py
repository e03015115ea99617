"""Signed statements leaving the process: provenance on images and files, the gate's VSA.

``provenance`` and ``dsse`` build and sign the statements (pure); this module
decides what they cover, writes them where CI keeps artifacts, and attaches
provenance to each image as a cosign attestation: a layer of media type
``application/vnd.dsse.envelope.v1+json`` whose blob is the whole envelope, with
a ``predicateType`` annotation, under the tag ``sha256-<hex>.att`` (FORMATS.md §2).
That is exactly what ``stores.RegistryStore.attestations`` reads back, so
``sealgate verify --attestation slsaprovenance`` finds it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gate import dsse, refs
from gate.errors import UsageError
from gate.keys import PrivateKey
from gate.policy import Policy
from gate.provenance import (
    SLSA_PROVENANCE_V1,
    BuildContext,
    Statement,
    Subject,
    sign_statement,
    slsa_provenance,
    verification_summary,
    write_jsonl,
)
from gate.registry import RegistryClient
from gate.result import FailOn, Result, exit_code
from gate.sign import attach_layer
from gate.verify._stores import PREDICATE_ANNOTATION

if TYPE_CHECKING:
    from gate.sigstore import KeylessSigner

PROVENANCE_FILE = "provenance.intoto.jsonl"
VSA_FILE = "vsa.intoto.jsonl"
VSA_UNSIGNED_FILE = "vsa.json"
"""The bare statement, when no key was given: a record, but not proof."""
VSA_BUNDLE_FILE = "vsa.sigstore.jsonl"
"""Signed keylessly: the Sigstore bundle (certificate, Rekor entry) that makes the envelope
in ``vsa.intoto.jsonl`` verifiable without a key (``sealgate verify-blob --bundle``)."""
VERIFIER_ID = "https://sealgate.dev/verifier"
ATTESTATION_SUFFIX = "att"


@dataclass(frozen=True)
class Provenance:
    """What one provenance run produced."""

    statement: Statement
    envelope: dsse.Envelope
    path: Path | None
    """The ``provenance.intoto.jsonl`` written, or None when no directory was given."""
    attached: tuple[str, ...]
    """``repo:sha256-….att`` for each image it was attached to."""


@dataclass(frozen=True)
class Summary:
    """What one gate run's verification summary produced."""

    statement: Statement
    path: Path
    signed: bool
    passed: bool
    bundle_path: Path | None = None
    """Keyless: the Sigstore bundle beside the envelope."""
    signer: str | None = None
    """Who signed: the key's short ID, or the certificate's identity (keyless)."""
    rekor_url: str | None = None
    """Keyless: the Rekor entry of the signature."""


def subjects_for(images: Sequence[tuple[str, str]]) -> list[Subject]:
    """One subject per distinct (name, digest), in order; tags never reach a subject."""
    out: list[Subject] = []
    for image, digest in images:
        subject = Subject.for_image(image, digest)
        if subject not in out:
            out.append(subject)
    return out


def resolve_digests(client: RegistryClient, images: Sequence[str]) -> list[tuple[str, str]]:
    """``(name@digest, digest)`` for each registry image, asking the registry for tags.

    For ``attest`` on images signed earlier: provenance is about digests, never tags.
    Raises InvalidReferenceError, UsageError (non-registry source) or RegistryError.
    """
    out = []
    for text in images:
        source = refs.parse_source(text)
        if source.reference is None:
            raise UsageError(f"{text}: provenance can only be attached to registry images")
        ref = source.reference
        digest = client.get_manifest(ref.repository, ref.identifier).digest
        out.append((f"{ref.name}@{digest}", digest))
    return out


def attach(
    client: RegistryClient,
    image: str,
    digest: str,
    envelope: dsse.Envelope,
    predicate_type: str = SLSA_PROVENANCE_V1,
) -> str:
    """Append ``envelope`` to ``image``'s ``sha256-<hex>.att``; return ``repo:tag``."""
    ref = refs.parse(image)
    # NOTE: cosign cmd/cosign/cli/attest/attest.go: the layer blob is the envelope JSON and
    # the predicate type is a layer annotation (FORMATS.md §2).
    return attach_layer(
        client,
        ref.repository,
        digest,
        envelope.to_json(),
        dsse.MEDIA_TYPE_ENVELOPE,
        {PREDICATE_ANNOTATION: predicate_type},
        ATTESTATION_SUFFIX,
    )


def provenance(
    client: RegistryClient | None,
    images: Sequence[tuple[str, str]],
    key: PrivateKey,
    *,
    env: Mapping[str, str],
    directory: Path | None,
    started: datetime | None = None,
    finished: datetime | None = None,
) -> Provenance:
    """Sign SLSA v1 provenance for ``images`` (``(name, digest)`` pairs) built in this CI run.

    One statement names every image, so one signature covers the whole build;
    it is written to ``directory/provenance.intoto.jsonl`` and, with a
    ``client``, attached to each image. Raises UsageError (CI variables
    missing, file not writable) or RegistryError.
    """
    build = BuildContext.from_environment(env)
    statement = slsa_provenance(
        subjects_for(images),
        build,
        started_on=started,
        finished_on=finished or datetime.now(UTC),
    )
    envelope = sign_statement(statement, key)
    path = None
    if directory is not None:
        path = _ensure_dir(directory) / PROVENANCE_FILE
        write_jsonl(path, [envelope])
    attached: list[str] = []
    if client is not None:
        for image, digest in dict.fromkeys(images):  # each distinct pair once, in order
            attached.append(attach(client, image, digest, envelope))
    return Provenance(statement, envelope, path, tuple(attached))


def verification_report(
    results: Sequence[Result],
    policy: Policy,
    directory: Path,
    *,
    key: PrivateKey | KeylessSigner | None = None,
    fail_on: FailOn = FailOn.UNKNOWN,
    env: Mapping[str, str] | None = None,
    paths: Sequence[str] = (),
    now: datetime | None = None,
) -> Summary | None:
    """Write the gate's decision as an SLSA VSA: ``vsa.intoto.jsonl`` signed by ``key``
    (keylessly: with ``vsa.sigstore.jsonl`` beside it), else the bare statement as ``vsa.json``.

    Returns None when no result has a digest (nothing a statement could name).
    Raises UsageError when the directory cannot be written; a keyless signer's
    errors (Fulcio, Rekor, an expired token) propagate before anything is written.
    """
    _forget_summaries(directory)
    if not any(r.digest for r in results):
        return None
    build = BuildContext.from_environment(env if env is not None else os.environ)
    passed = exit_code(results, fail_on) == 0
    statement = verification_summary(
        verifier_id=VERIFIER_ID,
        time_verified=now or datetime.now(UTC),
        policy_uri=_policy_uri(policy, build),
        policy_digest=_digest_set(policy.digest),
        results=results,
        passed=passed,
        resource_uri=_resource_uri(results, build, paths),
    )
    target = _ensure_dir(directory)
    if key is None:
        path = target / VSA_UNSIGNED_FILE
        text = json.dumps(json.loads(statement.to_json()), indent=2) + "\n"
        _write_text(path, text)
        return Summary(statement, path, False, passed)
    path = target / VSA_FILE
    if isinstance(key, PrivateKey):
        write_jsonl(path, [sign_statement(statement, key)])
        return Summary(statement, path, True, passed, signer=key.public_key.short_id)
    from gate.sigstore import identity_of

    bundle, envelope_json, logged = key.sign_statement(statement.to_json())
    bundle_path = target / VSA_BUNDLE_FILE
    try:
        _write_text(bundle_path, bundle.decode() + "\n")
        _write_text(path, envelope_json.decode() + "\n")  # the bytes Rekor logged
    except UsageError:
        _forget_summaries(target)  # both files or neither
        raise
    return Summary(
        statement,
        path,
        True,
        passed,
        bundle_path=bundle_path,
        signer=identity_of(key.certificate().leaf).subject,
        rekor_url=logged.url,
    )


def _policy_uri(policy: Policy, build: BuildContext) -> str:
    """A link to the policy file at the commit that was checked, when CI tells us one."""
    source = policy.source
    if build.repository and build.commit and not os.path.isabs(source) and policy.explicit:
        if build.platform == "github":
            return f"{build.repository}/blob/{build.commit}/{source.removeprefix('./')}"
        if build.platform == "gitlab":
            return f"{build.repository}/-/blob/{build.commit}/{source.removeprefix('./')}"
    return source


def _digest_set(digest: str | None) -> dict[str, str]:
    if not digest:
        return {}
    algorithm, _, hex_digest = digest.partition(":")
    return {algorithm: hex_digest}


def _resource_uri(
    results: Sequence[Result], build: BuildContext, paths: Sequence[str]
) -> str | None:
    """What was gated: the repository at its commit in CI, else the manifest paths.

    None (the image's purl) when exactly one image was checked.
    """
    if len({(r.image, r.digest) for r in results if r.digest}) == 1:
        return None
    if build.repository and build.commit:
        return f"git+{build.repository}@{build.commit}"
    return "file:" + ",".join(paths) if paths else "sealgate:gate"


def _ensure_dir(directory: Path) -> Path:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {directory}: {e.strerror or e}") from e
    return directory


def _forget_summaries(directory: Path) -> None:
    """Remove an earlier run's summary files: a report directory reused between runs must
    not show yesterday's signed PASSED beside today's FAILED, or beside nothing when
    today's signing failed."""
    for name in (VSA_FILE, VSA_UNSIGNED_FILE, VSA_BUNDLE_FILE):
        try:
            (directory / name).unlink(missing_ok=True)
        except IsADirectoryError:
            continue
        except OSError as e:
            raise UsageError(
                f"cannot remove the earlier summary {directory / name}: {e.strerror or e}"
            ) from e


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {path}: {e.strerror or e}") from e
