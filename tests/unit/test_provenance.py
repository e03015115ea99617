"""in-toto statements, SLSA provenance, VSA, revocations, attestation checks."""

from __future__ import annotations

import base64
import json
import os
import socket
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

from gate import dsse, keys, provenance
from gate.dsse import DSSEError, Envelope
from gate.errors import UsageError
from gate.provenance import (
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    STATEMENT_V01,
    STATEMENT_V1,
    VSA_V1,
    AttestationCheck,
    BuildContext,
    Statement,
    StatementError,
    Subject,
    check_attestation,
)
from gate.result import Result, Status

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
START = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
END = START + timedelta(minutes=3)

# The environment of the run that produced github-attestations/custom-issuer.statement.json.
GITHUB_ENV = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "too-legit/attest",
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_SHA": "283bf967fa3c591925dd25e6a6e8e781542117bf",
    "GITHUB_WORKFLOW_REF": "too-legit/attest/.github/workflows/integration.yml@refs/heads/main",
    "GITHUB_RUN_ID": "10818226125",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_EVENT_NAME": "workflow_dispatch",
    "GITHUB_REPOSITORY_ID": "851894824",
    "GITHUB_REPOSITORY_OWNER_ID": "180348046",
    "RUNNER_ENVIRONMENT": "github-hosted",
}
GITLAB_ENV = {
    "GITLAB_CI": "true",
    "CI_SERVER_URL": "https://gitlab.example.com",
    "CI_PROJECT_URL": "https://gitlab.example.com/acme/payments",
    "CI_PROJECT_PATH": "acme/payments",
    "CI_PROJECT_ID": "42",
    "CI_COMMIT_SHA": "1ac93ce21ee526b36fd154b9058d97dfaa424c50",
    "CI_COMMIT_REF_NAME": "main",
    "CI_PIPELINE_ID": "777",
    "CI_PIPELINE_URL": "https://gitlab.example.com/acme/payments/-/pipelines/777",
    "CI_PIPELINE_SOURCE": "push",
    "CI_JOB_ID": "9001",
    "CI_JOB_URL": "https://gitlab.example.com/acme/payments/-/jobs/9001",
    "CI_CONFIG_PATH": "ci/build.yml",
    "CI_RUNNER_ID": "12",
}


def _bundle_payload(path: Path) -> bytes:
    """The DSSE payload of a Sigstore bundle (.json) or of the first bundle in a .jsonl file."""
    text = path.read_text()
    bundle = json.loads(text.splitlines()[0] if path.suffix == ".jsonl" else text)
    return base64.b64decode(bundle["dsseEnvelope"]["payload"])


# --- parsing real statements ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "github-attestations/custom-issuer.statement.json",
        "github-attestations/github_provenance_demo-0.0.12-py3-none-any.statement.json",
        "sigstore-conformance/statement.json",
    ],
)
def test_parses_real_v1_statements(vectors: Path, name: str) -> None:
    raw = (vectors / name).read_bytes()
    statement = Statement.parse(raw)
    assert statement.statement_type == STATEMENT_V1
    assert statement.predicate_type == SLSA_PROVENANCE_V1
    assert statement.raw == raw
    subject = statement.subjects[0]
    assert statement.covers(f"sha256:{subject.digest['sha256']}")
    assert statement.covers(f"sha256:{subject.digest['sha256'].upper()}")
    assert not statement.covers(OTHER)
    assert not statement.covers(subject.digest["sha256"])  # no algorithm: no match


def test_parses_cosign_v01_statement_and_sha512_subjects(vectors: Path) -> None:
    statement = Statement.parse(
        _bundle_payload(vectors / "cosign-repo/oci-attestation.sigstore.json")
    )
    assert statement.statement_type == STATEMENT_V01
    assert statement.predicate_type == provenance.COSIGN_CUSTOM_V1
    assert statement.subjects[0].name == "127.0.0.1:60943/repo"
    assert statement.covers(
        "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
    )

    npm = Statement.parse(
        _bundle_payload(vectors / "github-attestations/sigstore-js-2.1.0-bundle.json")
    )
    digest = npm.subjects[0].digest["sha512"]
    assert npm.covers(f"sha512:{digest}") and not npm.covers(f"sha256:{digest[:64]}")


def test_parse_ignores_unknown_fields_and_null_predicate() -> None:
    raw = json.dumps(
        {
            "_type": STATEMENT_V1,
            "subject": [{"digest": {"sha256": "ab" * 32, "vendorHash": "x"}, "annotations": {}}],
            "predicateType": "https://example.com/p",
            "predicate": None,
            "extra": [1, 2],
        }
    ).encode()
    statement = Statement.parse(raw)
    assert statement.subjects == (Subject("", {"sha256": "ab" * 32, "vendorHash": "x"}),)
    assert statement.predicate == {}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"_type": "https://in-toto.io/Statement/v2"}, "'_type'"),
        ({"_type": None}, "'_type'"),
        ({"subject": []}, "'subject' is missing or empty"),
        ({"subject": "x"}, "'subject' is missing"),
        ({"subject": [{"name": "a"}]}, "subject 0 has no 'digest'"),
        ({"subject": [{"digest": {}}]}, "subject 0 has no 'digest'"),
        ({"subject": [{"name": 1, "digest": {"sha256": "ab" * 32}}]}, "'name'"),
        ({"subject": [{"digest": {"sha256": "ab" * 31}}]}, "'sha256' is not 64 hex"),
        ({"subject": [{"digest": {"sha256": "zz" * 32}}]}, "'sha256' is not 64 hex"),
        ({"subject": [{"digest": {"gitCommit": "ab" * 10}}]}, "'gitCommit' is not 40 hex"),
        ({"subject": [{"digest": {"other": ""}}]}, "non-empty string"),
        ({"predicateType": ""}, "'predicateType'"),
        ({"predicate": []}, "'predicate' is not a JSON object"),
    ],
)
def test_parse_rejects_broken_statements(change: dict[str, object], why: str) -> None:
    document = {
        "_type": STATEMENT_V1,
        "subject": [{"name": "x", "digest": {"sha256": "ab" * 32}}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {},
    } | change
    with pytest.raises(StatementError, match=f"is not an in-toto statement: .*{why}"):
        Statement.parse(json.dumps(document).encode())


@pytest.mark.parametrize("raw", [b"nope", b"[1]", b'{"_type": "a", "_type": "b"}'])
def test_parse_rejects_non_statements(raw: bytes) -> None:
    with pytest.raises(StatementError, match="layer 2 is not an in-toto statement"):
        Statement.parse(raw, source="layer 2")


def test_to_json_round_trips_and_omits_empty_names() -> None:
    statement = Statement(
        (Subject("ghcr.io/acme/app", {"sha256": "ab" * 32}), Subject("", {"sha256": "cd" * 32})),
        "https://example.com/p",
        {"k": "vä"},
    )
    raw = statement.to_json()
    document = json.loads(raw)
    assert list(document) == ["_type", "subject", "predicateType", "predicate"]
    assert document["subject"][1] == {"digest": {"sha256": "cd" * 32}}
    assert Statement.parse(raw) == statement
    assert b" " not in raw


def test_subject_for_image_drops_tag_and_normalises() -> None:
    assert Subject.for_image("nginx:1.25", DIGEST) == Subject(
        "docker.io/library/nginx", {"sha256": "ab" * 32}
    )
    assert Subject.for_image(f"127.0.0.1:5000/app@{DIGEST}", DIGEST).name == "127.0.0.1:5000/app"
    assert Subject.for_image("docker://app:dev", DIGEST).name == "docker://app:dev"


# --- build contexts and provenance ---------------------------------------------------------


def test_github_provenance_matches_what_attest_build_provenance_emits(vectors: Path) -> None:
    real = json.loads((vectors / "github-attestations/custom-issuer.statement.json").read_text())
    ctx = BuildContext.from_environment(GITHUB_ENV)
    assert ctx.platform == "github"
    assert ctx.builder_id == real["predicate"]["runDetails"]["builder"]["id"]
    assert ctx.repository == "https://github.com/too-legit/attest"
    assert ctx.workflow_path == ".github/workflows/integration.yml"
    assert ctx.run_url == "https://github.com/too-legit/attest/actions/runs/10818226125"
    assert ctx.event_name == "workflow_dispatch"

    subject = Subject("artifact", real["subject"][0]["digest"])
    statement = provenance.slsa_provenance([subject], ctx)
    assert json.loads(statement.to_json()) == real  # byte-for-byte the same document

    timed = provenance.slsa_provenance([subject], ctx, started_on=START, finished_on=END)
    metadata = timed.predicate["runDetails"]["metadata"]
    assert metadata == {
        "invocationId": "https://github.com/too-legit/attest/actions/runs/10818226125/attempts/1",
        "startedOn": "2026-01-02T03:04:05Z",
        "finishedOn": "2026-01-02T03:07:05Z",
    }


def test_github_tag_with_at_sign_and_missing_workflow_ref() -> None:
    env = GITHUB_ENV | {
        "GITHUB_REF": "refs/tags/pkg@1.2.0",
        "GITHUB_WORKFLOW_REF": "too-legit/attest/.github/workflows/release.yml@refs/tags/pkg@1.2.0",
    }
    predicate = provenance.slsa_provenance(
        [Subject("a", {"sha256": "ab" * 32})], BuildContext.from_environment(env)
    ).predicate
    workflow = predicate["buildDefinition"]["externalParameters"]["workflow"]
    assert workflow == {
        "ref": "refs/tags/pkg@1.2.0",
        "repository": "https://github.com/too-legit/attest",
        "path": ".github/workflows/release.yml",
    }
    older = {k: v for k, v in GITHUB_ENV.items() if k != "GITHUB_WORKFLOW_REF"}
    ctx = BuildContext.from_environment(older)
    assert ctx.builder_id == "https://github.com/actions/runner/github-hosted"
    assert ctx.external_parameters["workflow"]["ref"] == "refs/heads/main"


def test_gitlab_provenance_has_the_right_fields() -> None:
    ctx = BuildContext.from_environment(GITLAB_ENV)
    assert ctx.platform == "gitlab"
    assert ctx.builder_id == "https://gitlab.example.com/acme/payments/-/runners/12"
    assert ctx.build_type == provenance.GITLAB_BUILD_TYPE
    assert ctx.ref == "refs/heads/main"
    assert ctx.run_url == ctx.invocation_id == GITLAB_ENV["CI_JOB_URL"]
    predicate = provenance.slsa_provenance(
        [Subject.for_image("registry.example.com/acme/payments:1", DIGEST)], ctx, started_on=START
    ).predicate
    definition = predicate["buildDefinition"]
    assert definition["externalParameters"] == {
        "pipeline": {
            "repository": "https://gitlab.example.com/acme/payments",
            "ref": "refs/heads/main",
            "path": "ci/build.yml",
        }
    }
    assert definition["internalParameters"]["gitlab"]["pipeline_id"] == "777"
    assert definition["resolvedDependencies"] == [
        {
            "uri": "git+https://gitlab.example.com/acme/payments@refs/heads/main",
            "digest": {"gitCommit": GITLAB_ENV["CI_COMMIT_SHA"]},
        }
    ]
    assert predicate["runDetails"]["metadata"]["startedOn"] == "2026-01-02T03:04:05Z"
    tagged = BuildContext.from_environment(GITLAB_ENV | {"CI_COMMIT_TAG": "v1.0.0"})
    assert tagged.ref == "refs/tags/v1.0.0"


def test_local_provenance_names_no_host() -> None:
    ctx = BuildContext.from_environment({"HOSTNAME": socket.gethostname(), "HOME": "/root"})
    assert (ctx.platform, ctx.builder_id) == ("local", "https://sealgate.dev/local")
    statement = provenance.slsa_provenance([Subject("a", {"sha256": "ab" * 32})], ctx)
    raw = statement.to_json()
    assert socket.gethostname().encode() not in raw
    assert json.loads(raw)["predicate"]["buildDefinition"] == {
        "buildType": provenance.LOCAL_BUILD_TYPE,
        "externalParameters": {},
    }


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({k: v for k, v in GITHUB_ENV.items() if k != "GITHUB_SHA"}, "GITHUB_SHA"),
        ({k: v for k, v in GITHUB_ENV.items() if k != "GITHUB_REPOSITORY"}, "GITHUB_REPOSITORY"),
        ({k: v for k, v in GITLAB_ENV.items() if k != "CI_COMMIT_SHA"}, "CI_COMMIT_SHA"),
    ],
)
def test_ci_without_its_core_variables_is_a_usage_error(env: dict[str, str], missing: str) -> None:
    with pytest.raises(UsageError, match=f"{missing} is not set"):
        BuildContext.from_environment(env)


def test_provenance_needs_a_subject_and_writes_utc_seconds() -> None:
    ctx = BuildContext.from_environment({})
    with pytest.raises(StatementError, match="at least one image"):
        provenance.slsa_provenance([], ctx)
    plus_two = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    naive = datetime(2026, 1, 2, 3, 4, 5, 999)
    statement = provenance.slsa_provenance(
        [Subject("a", {"sha256": "ab" * 32})], ctx, started_on=plus_two, finished_on=naive
    )
    assert statement.predicate["runDetails"]["metadata"] == {
        "startedOn": "2026-01-02T03:04:05Z",
        "finishedOn": "2026-01-02T03:04:05Z",
    }


# --- VSA and revocations ------------------------------------------------------------------------


def _results() -> list[Result]:
    return [
        Result("ghcr.io/acme/app:1", DIGEST, Status.TRUSTED, "signed by ci"),
        Result("ghcr.io/acme/app@" + DIGEST, DIGEST, Status.TRUSTED, "signed by ci"),
        Result("ghcr.io/acme/db:2", OTHER, Status.UNKNOWN, "no signature by a trusted signer"),
        Result("ghcr.io/acme/gone:3", None, Status.ERROR, "the registry answered 500"),
    ]


def test_vsa_has_the_required_fields() -> None:
    statement = provenance.verification_summary(
        verifier_id="https://sealgate.dev/gate",
        time_verified=START,
        policy_uri="file:policy.yaml",
        policy_digest={"sha256": "ef" * 32},
        results=_results(),
        passed=False,
        resource_uri="file:deploy/compose.yaml",
        input_attestations=[{"uri": "oci://x", "digest": {"sha256": "12" * 32}}],
    )
    assert statement.predicate_type == VSA_V1
    assert [s.name for s in statement.subjects] == ["ghcr.io/acme/app", "ghcr.io/acme/db"]
    predicate = json.loads(statement.to_json())["predicate"]
    for required in (
        "verifier",
        "timeVerified",
        "resourceUri",
        "policy",
        "verificationResult",
        "verifiedLevels",
    ):
        assert required in predicate
    assert predicate["verifier"] == {"id": "https://sealgate.dev/gate"}
    assert predicate["timeVerified"] == "2026-01-02T03:04:05Z"
    assert predicate["policy"] == {"uri": "file:policy.yaml", "digest": {"sha256": "ef" * 32}}
    assert predicate["verificationResult"] == "FAILED"
    assert predicate["verifiedLevels"] == ["FAILED"]
    assert predicate["slsaVersion"] == "1.0"
    assert predicate["inputAttestations"][0]["digest"] == {"sha256": "12" * 32}
    assert predicate["sealgate_results"][3] == {
        "image": "ghcr.io/acme/gone:3",
        "digest": None,
        "status": "ERROR",
        "reason": "the registry answered 500",
    }


def test_vsa_for_one_image_names_it_by_purl() -> None:
    statement = provenance.verification_summary(
        verifier_id="https://sealgate.dev/gate",
        time_verified=START,
        policy_uri="file:policy.yaml",
        policy_digest={"sha256": "ef" * 32},
        results=_results()[:2],
        passed=True,
    )
    assert statement.predicate["verificationResult"] == "PASSED"
    assert statement.predicate["verifiedLevels"] == ["SLSA_BUILD_LEVEL_0"]
    assert "inputAttestations" not in statement.predicate
    assert statement.predicate["resourceUri"] == (
        f"pkg:oci/app@sha256%3A{'ab' * 32}?repository_url=ghcr.io/acme/app"
    )


def test_vsa_refuses_what_it_cannot_name() -> None:
    common = {
        "verifier_id": "v",
        "time_verified": START,
        "policy_uri": "p",
        "policy_digest": {},
        "passed": False,
    }
    with pytest.raises(UsageError, match="over 2 images needs a resource URI"):
        provenance.verification_summary(results=_results(), **common)  # type: ignore[arg-type]
    with pytest.raises(StatementError, match="at least one image with a digest"):
        provenance.verification_summary(results=_results()[3:], **common)  # type: ignore[arg-type]


def test_revocation_statement() -> None:
    statement = provenance.revocation(
        "ghcr.io/acme/app:1", DIGEST, "untrust", "leaked key", time=START
    )
    assert statement.predicate_type == provenance.REVOCATION_V1
    assert statement.covers(DIGEST)
    assert statement.predicate == {
        "action": "untrust",
        "reason": "leaked key",
        "time": "2026-01-02T03:04:05Z",
    }
    with pytest.raises(UsageError, match="'untrust' or 'unsupport'"):
        provenance.revocation("a", DIGEST, "delete", "x", time=START)  # type: ignore[arg-type]


# --- signing, verifying, writing ------------------------------------------------------------------


def test_signed_statement_verifies_here_and_in_securesystemslib() -> None:
    key = keys.generate("ecdsa-p256")
    statement = provenance.slsa_provenance(
        [Subject.for_image("ghcr.io/acme/app:1", DIGEST)], BuildContext.from_environment(GITHUB_ENV)
    )
    envelope = provenance.sign_statement(statement, key)
    assert envelope.payload_type == dsse.PAYLOAD_TYPE_INTOTO
    verified, signers = provenance.verify_statement(envelope, [key.public_key])
    assert verified == statement and verified.raw == envelope.payload
    assert signers == [key.public_key]

    sslib_key = SSlibKey.from_crypto(key.public_key.key)
    document = envelope.to_dict()
    document["signatures"][0]["keyid"] = sslib_key.keyid
    SslibEnvelope.from_dict(document).verify([sslib_key], 1)


def test_verify_statement_checks_signature_before_parsing() -> None:
    key = keys.generate("ed25519")
    garbage = Envelope(
        b"not json",
        dsse.PAYLOAD_TYPE_INTOTO,
        dsse.sign(b"{}", dsse.PAYLOAD_TYPE_INTOTO, key).signatures,
    )
    with pytest.raises(DSSEError):
        provenance.verify_statement(garbage, [key.public_key])
    signed_garbage = dsse.sign(b"not json", dsse.PAYLOAD_TYPE_INTOTO, key)
    with pytest.raises(StatementError, match="not JSON"):
        provenance.verify_statement(signed_garbage, [key.public_key])
    other_type = dsse.sign(
        Statement((Subject("", {"sha256": "ab" * 32}),), "p", {}).to_json(), "text/plain", key
    )
    with pytest.raises(StatementError, match="payload type is 'text/plain'"):
        provenance.verify_statement(other_type, [key.public_key])
    typed = dsse.sign(other_type.payload, "application/vnd.in-toto.provenance+json", key)
    assert provenance.verify_statement(typed, [key.public_key])[0].predicate_type == "p"


def test_write_jsonl_writes_one_envelope_per_line_atomically(tmp_path: Path) -> None:
    key = keys.generate("ecdsa-p256")
    envelopes = [
        provenance.sign_statement(
            provenance.revocation("a", d, "unsupport", "old", time=START), key
        )
        for d in (DIGEST, OTHER)
    ]
    target = tmp_path / "provenance.intoto.jsonl"
    target.write_text("stale\n")
    provenance.write_jsonl(target, envelopes)
    lines = target.read_bytes().splitlines()
    assert [Envelope.from_json(line) for line in lines] == envelopes
    assert target.read_bytes().endswith(b"\n")
    assert os.listdir(tmp_path) == ["provenance.intoto.jsonl"]
    with pytest.raises(UsageError, match="cannot write"):
        provenance.write_jsonl(tmp_path / "missing" / "p.jsonl", envelopes)
    assert os.listdir(tmp_path) == ["provenance.intoto.jsonl"]


# --- attestation checks ---------------------------------------------------------------------


@pytest.fixture
def github_statement() -> Statement:
    ctx = BuildContext.from_environment(GITHUB_ENV)
    return Statement.parse(
        provenance.slsa_provenance([Subject("app", {"sha256": "ab" * 32})], ctx).to_json()
    )


BUILDER = "https://github.com/too-legit/attest/.github/workflows/integration.yml@refs/heads/main"


@pytest.mark.parametrize(
    "check",
    [
        AttestationCheck(SLSA_PROVENANCE_V1),
        AttestationCheck("slsaprovenance", builder=BUILDER),
        AttestationCheck(
            SLSA_PROVENANCE_V1, builder=BUILDER, source="https://github.com/too-legit/attest"
        ),
        AttestationCheck(SLSA_PROVENANCE_V1, source="https://github.com/too-legit"),
        AttestationCheck(SLSA_PROVENANCE_V1, source="github.com/Too-Legit/attest.git"),
        AttestationCheck(
            SLSA_PROVENANCE_V1, source="git+https://github.com/too-legit/attest@refs/heads/main"
        ),
        AttestationCheck(
            SLSA_PROVENANCE_V1, builder="https://github.com/too-legit/attest/.github/workflows/*"
        ),
    ],
)
def test_check_accepts(github_statement: Statement, check: AttestationCheck) -> None:
    assert check_attestation(github_statement, DIGEST, check) is None


@pytest.mark.parametrize(
    ("digest", "check", "why"),
    [
        (OTHER, AttestationCheck(SLSA_PROVENANCE_V1), f"not about {OTHER}"),
        (
            DIGEST,
            AttestationCheck(SLSA_PROVENANCE_V02),
            "predicate type https://slsa.dev/provenance/v1, not",
        ),
        (DIGEST, AttestationCheck("vsa"), "not https://slsa.dev/verification_summary/v1"),
        (
            DIGEST,
            AttestationCheck(SLSA_PROVENANCE_V1, builder=BUILDER.replace("main", "dev")),
            f"built by {BUILDER}, not",
        ),
        (
            DIGEST,
            AttestationCheck(SLSA_PROVENANCE_V1, source="https://github.com/too-legit/other"),
            "built from",
        ),
        (
            DIGEST,
            AttestationCheck(SLSA_PROVENANCE_V1, source="https://github.com/too"),
            "built from",
        ),
        (
            DIGEST,
            AttestationCheck(SLSA_PROVENANCE_V1, source="https://gitlab.com/too-legit/attest"),
            "built from",
        ),
    ],
)
def test_check_rejects(
    github_statement: Statement, digest: str, check: AttestationCheck, why: str
) -> None:
    reason = check_attestation(github_statement, digest, check)
    assert reason is not None and why in reason


def test_check_reads_slsa_v02_and_old_github_shapes(vectors: Path) -> None:
    v02 = Statement(
        (Subject("app", {"sha256": "ab" * 32}),),
        SLSA_PROVENANCE_V02,
        {
            "builder": {
                "id": "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@refs/tags/v1.9.0"
            },
            "invocation": {
                "configSource": {
                    "uri": "git+https://github.com/acme/app@refs/tags/v1",
                    "entryPoint": "x",
                }
            },
        },
    )
    check = AttestationCheck(
        "slsaprovenance",
        builder="https://github.com/slsa-framework/slsa-github-generator/*",
        source="https://github.com/acme/app",
    )
    assert check_attestation(v02, DIGEST, check) is None
    assert check_attestation(v02, DIGEST, AttestationCheck("slsaprovenance1")) is not None

    old = Statement.parse(
        (
            vectors
            / "github-attestations/github_provenance_demo-0.0.12-py3-none-any.statement.json"
        ).read_bytes()
    )
    digest = "sha256:" + old.subjects[0].digest["sha256"]
    assert (
        check_attestation(
            old,
            digest,
            AttestationCheck(
                "slsaprovenance",
                builder="https://github.com/actions/runner/github-hosted",
                source="https://github.com/actions",
            ),
        )
        is None
    )

    bare = Statement((Subject("", {"sha256": "ab" * 32}),), SLSA_PROVENANCE_V1, {})
    assert "names no builder" in (
        check_attestation(bare, DIGEST, AttestationCheck(SLSA_PROVENANCE_V1, builder="b")) or ""
    )
    assert "names no source" in (
        check_attestation(bare, DIGEST, AttestationCheck(SLSA_PROVENANCE_V1, source="s")) or ""
    )


def test_gitlab_provenance_satisfies_a_source_check() -> None:
    statement = provenance.slsa_provenance(
        [Subject("app", {"sha256": "ab" * 32})], BuildContext.from_environment(GITLAB_ENV)
    )
    check = AttestationCheck(
        SLSA_PROVENANCE_V1,
        builder="https://gitlab.example.com/acme/payments/-/runners/*",
        source="https://gitlab.example.com/acme/payments",
    )
    assert check_attestation(statement, DIGEST, check) is None


def test_aliases() -> None:
    assert provenance.accepted_predicate_types("slsaprovenance") == {
        SLSA_PROVENANCE_V1,
        SLSA_PROVENANCE_V02,
    }
    assert provenance.accepted_predicate_types(SLSA_PROVENANCE_V1) == {SLSA_PROVENANCE_V1}
    assert provenance.PREDICATE_ALIASES["slsaprovenance"] == SLSA_PROVENANCE_V1
    assert provenance.PREDICATE_ALIASES["custom"] == "https://cosign.sigstore.dev/attestation/v1"
