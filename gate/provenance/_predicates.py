"""The statements Sealgate makes: SLSA provenance, the gate's VSA, and revocations (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from gate.errors import UsageError
from gate.provenance._ci import BuildContext
from gate.provenance._statement import (
    REVOCATION_V1,
    SLSA_PROVENANCE_V1,
    VSA_V1,
    Statement,
    StatementError,
    Subject,
)
from gate.result import Result


def slsa_provenance(
    subjects: Sequence[Subject],
    ctx: BuildContext,
    *,
    started_on: datetime | None = None,
    finished_on: datetime | None = None,
) -> Statement:
    """An in-toto v1 statement with the SLSA Provenance v1 predicate for ``subjects``.

    Times default to the context's; raises StatementError when there are no subjects.
    """
    # NOTE: slsa `spec/build-provenance.md` / FORMATS.md §7; empty fields are omitted
    # because the spec treats unset, null and empty alike.
    build_definition: dict[str, Any] = {
        "buildType": ctx.build_type,
        "externalParameters": dict(ctx.external_parameters),
    }
    if ctx.internal_parameters:
        build_definition["internalParameters"] = dict(ctx.internal_parameters)
    if ctx.repository and ctx.commit:
        uri = f"git+{ctx.repository}" + (f"@{ctx.ref}" if ctx.ref else "")
        build_definition["resolvedDependencies"] = [
            {"uri": uri, "digest": {"gitCommit": ctx.commit}}
        ]
    metadata = {
        "invocationId": ctx.invocation_id,
        "startedOn": _timestamp(started_on or ctx.started_on),
        "finishedOn": _timestamp(finished_on or ctx.finished_on),
    }
    run_details: dict[str, Any] = {"builder": {"id": ctx.builder_id}}
    if any(metadata.values()):
        run_details["metadata"] = {k: v for k, v in metadata.items() if v}
    predicate = {"buildDefinition": build_definition, "runDetails": run_details}
    return Statement(_nonempty(subjects, "provenance"), SLSA_PROVENANCE_V1, predicate)


def verification_summary(
    *,
    verifier_id: str,
    time_verified: datetime,
    policy_uri: str,
    policy_digest: Mapping[str, str],
    results: Sequence[Result],
    passed: bool,
    input_attestations: Sequence[Mapping[str, Any]] = (),
    resource_uri: str | None = None,
    verified_levels: Sequence[str] = ("SLSA_BUILD_LEVEL_0",),
) -> Statement:
    """The gate's decision as an SLSA VSA v1 statement over every result that has a digest.

    ``resource_uri`` names what was gated; when omitted it is the image's purl,
    which needs exactly one subject (UsageError otherwise). Raises StatementError
    when no result has a digest: in-toto requires at least one subject.
    """
    subjects: list[Subject] = []
    for result in results:
        if result.digest is not None:
            subject = Subject.for_image(result.image, result.digest)
            if subject not in subjects:
                subjects.append(subject)
    subjects_tuple = _nonempty(subjects, "verification summary")
    if resource_uri is None:
        if len(subjects_tuple) != 1:
            raise UsageError(
                f"a verification summary over {len(subjects_tuple)} images needs a resource URI"
            )
        resource_uri = _purl(subjects_tuple[0])
    # NOTE: slsa `spec/v1.0/verification_summary.md`: verifiedLevels is "FAILED" when policy
    # verification failed; SLSA_BUILD_LEVEL_0 claims no more than that it was checked.
    predicate: dict[str, Any] = {
        "verifier": {"id": verifier_id},
        "timeVerified": _timestamp(time_verified),
        "resourceUri": resource_uri,
        "policy": {"uri": policy_uri, "digest": dict(policy_digest)},
        "inputAttestations": [dict(a) for a in input_attestations],
        "verificationResult": "PASSED" if passed else "FAILED",
        "verifiedLevels": list(verified_levels) if passed else ["FAILED"],
        "slsaVersion": "1.0",
        # NOTE: extension fields are `<vendor>_<name>` (FORMATS.md §7); consumers ignore them.
        "sealgate_results": [
            {"image": r.image, "digest": r.digest, "status": r.status.value, "reason": r.reason}
            for r in results
        ],
    }
    if not input_attestations:
        del predicate["inputAttestations"]
    return Statement(subjects_tuple, VSA_V1, predicate)


def revocation(
    subject_name: str,
    digest: str,
    action: Literal["untrust", "unsupport"],
    reason: str,
    *,
    time: datetime,
) -> Statement:
    """Sealgate's signed ``untrust`` / ``unsupport`` of one digest (vcn's verbs)."""
    if action not in ("untrust", "unsupport"):
        raise UsageError(f"a revocation action is 'untrust' or 'unsupport', not {action!r}")
    predicate = {"action": action, "reason": reason, "time": _timestamp(time)}
    return Statement((Subject.for_image(subject_name, digest),), REVOCATION_V1, predicate)


def _nonempty(subjects: Sequence[Subject], what: str) -> tuple[Subject, ...]:
    if not subjects:
        raise StatementError(f"a {what} needs at least one image with a digest; none was given")
    return tuple(subjects)


def _purl(subject: Subject) -> str:
    """``pkg:oci/<name>@<digest>?repository_url=<registry/path>`` (purl-spec, type oci)."""
    algorithm, hex_digest = next(iter(subject.digest.items()))
    name = subject.name.rsplit("/", 1)[-1] or "image"
    version = quote(f"{algorithm}:{hex_digest}", safe="")
    return f"pkg:oci/{name}@{version}?repository_url={quote(subject.name, safe='/:')}"


def _timestamp(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC to the second, as SLSA writes it; naive times are taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
