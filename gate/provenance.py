"""in-toto statements: SLSA provenance, the gate's VSA, revocations, and checking them (pure).

Statements follow in-toto/attestation ``spec/v1`` (FORMATS.md §6); provenance
follows SLSA Provenance v1 (§7) and the gate's report the SLSA Verification
Summary v1. All of them are signed as DSSE envelopes (``gate.dsse``).

Build types: on GitHub Actions we emit exactly what ``actions/attest-build-provenance``
emits (``https://actions.github.io/buildtypes/workflow/v1``), so tools that
read GitHub's provenance read ours. Sealgate defines two more:

- ``https://sealgate.dev/buildtypes/gitlab-ci/v1``: externalParameters
  ``{"pipeline": {"repository": CI_PROJECT_URL, "ref": "refs/heads/…|refs/tags/…",
  "path": CI_CONFIG_PATH}}``; internalParameters ``{"gitlab": {pipeline_id, job_id,
  project_id, runner_id, pipeline_source}}``; one resolved dependency
  ``git+<project URL>@<ref>`` with its ``gitCommit``; builder ID
  ``<server>/<project path>/-/runners/<runner id>`` (as GitLab Runner's own
  provenance names it); invocationId the job URL.
- ``https://sealgate.dev/buildtypes/local/v1``: signed outside CI; empty
  externalParameters, builder ID ``https://sealgate.dev/local`` (no host name:
  provenance should not leak where a laptop lives).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from gate import dsse
from gate.dsse import Envelope, reject_duplicate_keys
from gate.errors import InvalidReferenceError, PolicyFailureError, UsageError
from gate.refs import SourceKind, parse_digest, parse_source
from gate.result import Result

if TYPE_CHECKING:
    from gate.keys import PrivateKey, PublicKey

STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
VSA_V1 = "https://slsa.dev/verification_summary/v1"
COSIGN_SIGN_V1 = "https://sigstore.dev/cosign/sign/v1"
COSIGN_CUSTOM_V1 = "https://cosign.sigstore.dev/attestation/v1"
REVOCATION_V1 = "https://sealgate.dev/revocation/v1"

GITHUB_BUILD_TYPE = "https://actions.github.io/buildtypes/workflow/v1"
GITLAB_BUILD_TYPE = "https://sealgate.dev/buildtypes/gitlab-ci/v1"
LOCAL_BUILD_TYPE = "https://sealgate.dev/buildtypes/local/v1"
LOCAL_BUILDER_ID = "https://sealgate.dev/local"

# NOTE: cosign `cmd/cosign/cli/options/predicate.go` names these; its `slsaprovenance` means
# SLSA v0.2 (FORMATS.md §2). Sealgate writes v1 for `slsaprovenance` and accepts both when
# verifying (see accepted_predicate_types).
PREDICATE_ALIASES: Mapping[str, str] = {
    "slsaprovenance": SLSA_PROVENANCE_V1,
    "slsaprovenance1": SLSA_PROVENANCE_V1,
    "slsaprovenance02": SLSA_PROVENANCE_V02,
    "vsa": VSA_V1,
    "custom": COSIGN_CUSTOM_V1,
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "link": "https://in-toto.io/Link/v1",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "revocation": REVOCATION_V1,
}

# NOTE: in-toto `spec/v1/envelope.md`: the DSSE payloadType of a statement.
_INTOTO_PAYLOAD_TYPE = re.compile(r"application/vnd\.in-toto(?:\.[^+/\s]+)?\+json")
# NOTE: in-toto `spec/v1/digest_set.md`: hex lengths of the common algorithms.
_HEX_LENGTHS = {
    "sha224": (56,), "sha256": (64,), "sha384": (96,), "sha512": (128,), "sha1": (40,),
    "md5": (32,), "gitCommit": (40, 64), "gitTree": (40, 64), "gitBlob": (40, 64),
    "gitTag": (40, 64),
}  # fmt: skip
_HEX = re.compile(r"[0-9a-fA-F]+")


class StatementError(PolicyFailureError):
    """Bytes that should be an in-toto statement are not one (exit 1: untrusted input)."""


@dataclass(frozen=True)
class Subject:
    """What a statement is about; matched purely by digest."""

    name: str
    """Image name without tag, file name, or ``""`` when meaningless."""
    digest: dict[str, str]
    """Algorithm to hex, e.g. ``{"sha256": "…"}``."""

    @classmethod
    def for_image(cls, image: str, digest: str) -> Subject:
        """The subject for an image: its name without tag or digest, and the manifest digest."""
        # NOTE: FORMATS.md §6: name = image reference without tag (GitHub/cosign practice).
        algorithm, _, hex_digest = parse_digest(digest).partition(":")
        return cls(_image_name(image), {algorithm: hex_digest})


@dataclass(frozen=True)
class Statement:
    """An in-toto statement and, when parsed, the exact bytes it came from."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Mapping[str, Any]
    raw: bytes | None = field(default=None, compare=False, repr=False)
    """The bytes this was parsed from (the signed payload); None when built here."""
    statement_type: str = STATEMENT_V1

    def to_json(self) -> bytes:
        """Compact JSON in spec field order; sign these exact bytes."""
        document = {
            "_type": self.statement_type,
            "subject": [
                {"name": s.name, "digest": dict(s.digest)} if s.name else {"digest": dict(s.digest)}
                for s in self.subjects
            ],
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        }
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, data: bytes, *, source: str = "the payload") -> Statement:
        """Parse a v1 or v0.1 statement, ignoring unknown fields; raises StatementError."""

        def fail(why: str) -> StatementError:
            return StatementError(f"{source} is not an in-toto statement: {why}")

        try:
            document = json.loads(data, object_pairs_hook=reject_duplicate_keys)
        except (ValueError, RecursionError) as e:
            raise fail(f"it is not JSON ({e})") from e
        if not isinstance(document, dict):
            raise fail("it is not a JSON object")
        kind = document.get("_type")
        # NOTE: FORMATS.md §2/§6: cosign still writes v0.1 statements; the shape is the same.
        if kind not in (STATEMENT_V1, STATEMENT_V01):
            raise fail(f"'_type' is {kind!r}, not {STATEMENT_V1}")
        predicate_type = document.get("predicateType")
        if not isinstance(predicate_type, str) or not predicate_type:
            raise fail("'predicateType' is missing or not a string")
        predicate = document.get("predicate")
        if predicate is None:
            predicate = {}  # NOTE: statement.md: unset predicate is equivalent to empty.
        if not isinstance(predicate, dict):
            raise fail("'predicate' is not a JSON object")
        entries = document.get("subject")
        if not isinstance(entries, list) or not entries:
            raise fail("'subject' is missing or empty")
        subjects = tuple(_parse_subject(entry, index, fail) for index, entry in enumerate(entries))
        return cls(subjects, predicate_type, predicate, bytes(data), kind)

    def covers(self, digest: str) -> bool:
        """Whether any subject has ``digest`` (``sha256:<hex>``); names do not matter."""
        algorithm, _, hex_digest = digest.partition(":")
        if not hex_digest:
            return False
        return any(s.digest.get(algorithm, "").lower() == hex_digest.lower() for s in self.subjects)


def _parse_subject(entry: Any, index: int, fail: Callable[[str], StatementError]) -> Subject:
    if not isinstance(entry, dict):
        raise fail(f"subject {index} is not a JSON object")
    name = entry.get("name")
    name = "" if name is None else name  # NOTE: statement.md: name is optional.
    if not isinstance(name, str):
        raise fail(f"subject {index} has a 'name' that is not a string")
    digests = entry.get("digest")
    if not isinstance(digests, dict) or not digests:
        raise fail(f"subject {index} has no 'digest'")
    for algorithm, value in digests.items():
        if not isinstance(value, str) or not value:
            raise fail(f"subject {index} digest '{algorithm}' is not a non-empty string")
        lengths = _HEX_LENGTHS.get(algorithm)
        if lengths and (len(value) not in lengths or not _HEX.fullmatch(value)):
            raise fail(f"subject {index} digest '{algorithm}' is not {lengths[0]} hex digits")
    return Subject(name, dict(digests))


@dataclass(frozen=True)
class BuildContext:
    """What the CI system tells us about the build that is signing."""

    platform: Literal["github", "gitlab", "local"]
    builder_id: str
    build_type: str
    repository: str | None = None
    """Source repository URL, e.g. ``https://github.com/acme/app``."""
    ref: str | None = None
    """Git ref that was built, e.g. ``refs/heads/main``."""
    commit: str | None = None
    workflow_path: str | None = None
    """The workflow (GitHub) or pipeline config (GitLab) file in the repository."""
    run_url: str | None = None
    """Where a person can see the run (a commit status's target URL)."""
    invocation_id: str | None = None
    event_name: str | None = None
    started_on: datetime | None = None
    finished_on: datetime | None = None
    external_parameters: Mapping[str, Any] = field(default_factory=dict)
    internal_parameters: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> BuildContext:
        """Read GitHub Actions or GitLab CI variables; ``local`` when neither is present.

        Raises UsageError when a CI is detected but lacks the repository or commit.
        """
        if env.get("GITHUB_ACTIONS") == "true" or "GITHUB_WORKFLOW_REF" in env:
            return _github(env)
        if env.get("GITLAB_CI") == "true" or "CI_PROJECT_URL" in env:
            return _gitlab(env)
        return cls("local", LOCAL_BUILDER_ID, LOCAL_BUILD_TYPE)


def _need(env: Mapping[str, str], name: str, ci: str) -> str:
    value = env.get(name, "")
    if not value:
        raise UsageError(
            f"{ci} is detected but {name} is not set, so provenance cannot name what was built",
            hint="run inside a real CI job, or unset the CI variables to sign as a local build",
        )
    return value


def _github(env: Mapping[str, str]) -> BuildContext:
    # NOTE: actions/toolkit packages/attest/src/provenance.ts (FORMATS.md §7), from env vars
    # that carry the same values as the OIDC claims it reads.
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    repo = _need(env, "GITHUB_REPOSITORY", "GitHub Actions")
    sha = _need(env, "GITHUB_SHA", "GitHub Actions")
    ref = env.get("GITHUB_REF") or None
    repository = f"{server}/{repo}"
    workflow_ref = env.get("GITHUB_WORKFLOW_REF", "")
    path: str | None = None
    workflow_at = ref
    if workflow_ref:
        # owner/repo/.github/workflows/x.yml@refs/heads/main; a tag may itself hold '@'.
        path, _, workflow_at = workflow_ref.removeprefix(f"{repo}/").partition("@")
        builder_id = f"{server}/{workflow_ref}"
    else:
        # NOTE: GitHub's pre-2024 builder ID (FORMATS.md §7), for runners that do not say
        # which workflow ran.
        runner = env.get("RUNNER_ENVIRONMENT") or "github-hosted"
        builder_id = f"https://github.com/actions/runner/{runner}"
    run_id = env.get("GITHUB_RUN_ID")
    run_url = f"{repository}/actions/runs/{run_id}" if run_id else None
    invocation = f"{run_url}/attempts/{env.get('GITHUB_RUN_ATTEMPT') or '1'}" if run_url else None
    internal = {
        key: env[name]
        for key, name in (
            ("event_name", "GITHUB_EVENT_NAME"),
            ("repository_id", "GITHUB_REPOSITORY_ID"),
            ("repository_owner_id", "GITHUB_REPOSITORY_OWNER_ID"),
            ("runner_environment", "RUNNER_ENVIRONMENT"),
        )
        if env.get(name)
    }
    workflow = {"ref": workflow_at, "repository": repository, "path": path}
    return BuildContext(
        "github", builder_id, GITHUB_BUILD_TYPE, repository, ref, sha, path, run_url, invocation,
        env.get("GITHUB_EVENT_NAME") or None,
        external_parameters={"workflow": {k: v for k, v in workflow.items() if v}},
        internal_parameters={"github": internal},
    )  # fmt: skip


def _gitlab(env: Mapping[str, str]) -> BuildContext:
    server = (env.get("CI_SERVER_URL") or "https://gitlab.com").rstrip("/")
    sha = _need(env, "CI_COMMIT_SHA", "GitLab CI")
    project_path = env.get("CI_PROJECT_PATH") or ""
    repository = env.get("CI_PROJECT_URL") or (f"{server}/{project_path}" if project_path else "")
    if not repository:
        _need(env, "CI_PROJECT_URL", "GitLab CI")
    if env.get("CI_COMMIT_TAG"):
        ref: str | None = f"refs/tags/{env['CI_COMMIT_TAG']}"
    elif env.get("CI_COMMIT_REF_NAME"):
        ref = f"refs/heads/{env['CI_COMMIT_REF_NAME']}"
    else:
        ref = None
    project = project_path or repository.removeprefix(f"{server}/")
    runner = env.get("CI_RUNNER_ID")
    builder_id = f"{server}/{project}/-/runners" + (f"/{runner}" if runner else "")
    job_url = env.get("CI_JOB_URL") or (
        f"{repository}/-/jobs/{env['CI_JOB_ID']}" if env.get("CI_JOB_ID") else None
    )
    path = env.get("CI_CONFIG_PATH") or ".gitlab-ci.yml"
    internal = {
        key: env[name]
        for key, name in (
            ("pipeline_id", "CI_PIPELINE_ID"),
            ("pipeline_url", "CI_PIPELINE_URL"),
            ("job_id", "CI_JOB_ID"),
            ("project_id", "CI_PROJECT_ID"),
            ("runner_id", "CI_RUNNER_ID"),
            ("pipeline_source", "CI_PIPELINE_SOURCE"),
        )
        if env.get(name)
    }
    pipeline = {"repository": repository, "ref": ref, "path": path}
    return BuildContext(
        "gitlab", builder_id, GITLAB_BUILD_TYPE, repository, ref, sha, path,
        job_url or env.get("CI_PIPELINE_URL") or None, job_url,
        env.get("CI_PIPELINE_SOURCE") or None,
        external_parameters={"pipeline": {k: v for k, v in pipeline.items() if v}},
        internal_parameters={"gitlab": internal},
    )  # fmt: skip


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


def sign_statement(statement: Statement, key: PrivateKey) -> Envelope:
    """Serialise ``statement`` once and sign those bytes as an in-toto DSSE envelope."""
    return dsse.sign(statement.to_json(), dsse.PAYLOAD_TYPE_INTOTO, key)


def verify_statement(
    envelope: Envelope, keys: Sequence[PublicKey], threshold: int = 1
) -> tuple[Statement, list[PublicKey]]:
    """Check the signatures, then the payload type, then parse the verified bytes.

    Raises DSSEError (signatures) or StatementError (anything else).
    """
    signers = dsse.verify(envelope, keys, threshold)
    # NOTE: cosign pkg/cosign/verify.go rejects other payload types (FORMATS.md §2).
    if not _INTOTO_PAYLOAD_TYPE.fullmatch(envelope.payload_type):
        raise StatementError(
            f"the envelope's payload type is {envelope.payload_type!r}, "
            f"not {dsse.PAYLOAD_TYPE_INTOTO}"
        )
    return Statement.parse(envelope.payload), signers


def write_jsonl(path: str | os.PathLike[str], envelopes: Sequence[Envelope]) -> None:
    """Write ``provenance.intoto.jsonl``: one envelope per line, replaced atomically.

    A reader never sees half a file. Raises UsageError when the path cannot be written.
    """
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    data = b"".join(envelope.to_json() + b"\n" for envelope in envelopes)
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as e:
        temporary.unlink(missing_ok=True)
        raise UsageError(f"cannot write {target}: {e.strerror or e}") from e


@dataclass(frozen=True)
class AttestationCheck:
    """One attestation a policy rule requires (DESIGN.md, "Policy")."""

    predicate_type: str
    """A predicate type URI or an alias from PREDICATE_ALIASES."""
    builder: str | None = None
    """Exact builder ID, or a prefix ending in ``*``."""
    source: str | None = None
    """Source repository URL, or a prefix of one at a ``/`` boundary (an owner)."""


def accepted_predicate_types(name_or_uri: str) -> frozenset[str]:
    """The predicate types that satisfy ``name_or_uri``: an alias may stand for several."""
    if name_or_uri == "slsaprovenance":
        return frozenset({SLSA_PROVENANCE_V1, SLSA_PROVENANCE_V02})
    return frozenset({PREDICATE_ALIASES.get(name_or_uri, name_or_uri)})


def check_attestation(statement: Statement, digest: str, check: AttestationCheck) -> str | None:
    """None when ``statement`` satisfies ``check`` for ``digest``, else one sentence why not."""
    if not statement.covers(digest):
        return f"the attestation is not about {digest}: its subjects have other digests"
    accepted = accepted_predicate_types(check.predicate_type)
    if statement.predicate_type not in accepted:
        wanted = " or ".join(sorted(accepted))
        return f"the attestation has predicate type {statement.predicate_type}, not {wanted}"
    if check.builder is not None:
        builder = _builder_id(statement)
        if builder is None:
            return (
                f"the attestation names no builder, so it cannot show it came from {check.builder}"
            )
        wanted_builder = check.builder
        if not (
            builder == wanted_builder
            or (wanted_builder.endswith("*") and builder.startswith(wanted_builder[:-1]))
        ):
            return f"the attestation says it was built by {builder}, not {wanted_builder}"
    if check.source is not None:
        source = _source_uri(statement)
        if source is None:
            return f"the attestation names no source repository, so not {check.source}"
        have, want = _normalise_repository(source), _normalise_repository(check.source)
        if not (have == want or have.startswith(want + "/")):
            return f"the attestation says it was built from {source}, not {check.source}"
    return None


def _builder_id(statement: Statement) -> str | None:
    # NOTE: SLSA v1 keeps the builder under runDetails; v0.2 at the top of the predicate.
    predicate = statement.predicate
    found = _dig(predicate, "runDetails", "builder", "id")
    if statement.predicate_type != SLSA_PROVENANCE_V1 and found is None:
        found = _dig(predicate, "builder", "id")
    return found if isinstance(found, str) and found else None


def _source_uri(statement: Statement) -> str | None:
    predicate = statement.predicate
    candidates = [
        _dig(predicate, "buildDefinition", "externalParameters", "workflow", "repository"),
        _dig(predicate, "buildDefinition", "externalParameters", "pipeline", "repository"),
        _dig(predicate, "buildDefinition", "externalParameters", "source"),
        _dig(predicate, "buildDefinition", "externalParameters", "source", "uri"),
        _dig(predicate, "buildDefinition", "resolvedDependencies", 0, "uri"),
        # NOTE: SLSA v0.2: invocation.configSource.uri, then the first material.
        _dig(predicate, "invocation", "configSource", "uri"),
        _dig(predicate, "materials", 0, "uri"),
    ]
    return next((c for c in candidates if isinstance(c, str) and c), None)


def _normalise_repository(uri: str) -> str:
    """``git+https://Host/Owner/Repo.git@refs/x`` → ``host/owner/repo`` for comparison."""
    text = uri.strip().removeprefix("git+")
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text, flags=re.IGNORECASE)
    host, slash, path = text.partition("/")
    path = path.partition("@")[0]  # the ref; an '@' in the host part is ssh's user
    text = (host + slash + path).rstrip("/").removesuffix(".git")
    return text.lower()


def _dig(value: Any, *keys: str | int) -> Any:
    for key in keys:
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and len(value) > key else None
        else:
            value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _nonempty(subjects: Sequence[Subject], what: str) -> tuple[Subject, ...]:
    if not subjects:
        raise StatementError(f"a {what} needs at least one image with a digest; none was given")
    return tuple(subjects)


def _image_name(image: str) -> str:
    try:
        source = parse_source(image)
    except InvalidReferenceError:
        return image
    if source.kind is SourceKind.REGISTRY and source.reference is not None:
        return source.reference.name
    return image


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
