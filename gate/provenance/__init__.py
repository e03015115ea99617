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

The package: ``_statement`` (statements, subjects, signing), ``_ci`` (the build
context from CI variables), ``_predicates`` (the statements Sealgate makes) and
``_check`` (holding a statement to a policy's attestation requirement).
"""

from gate.dsse import Envelope  # importable from here too, beside the statements it carries
from gate.provenance._check import AttestationCheck, accepted_predicate_types, check_attestation
from gate.provenance._ci import (
    GITHUB_BUILD_TYPE,
    GITLAB_BUILD_TYPE,
    LOCAL_BUILD_TYPE,
    LOCAL_BUILDER_ID,
    BuildContext,
)
from gate.provenance._predicates import revocation, slsa_provenance, verification_summary
from gate.provenance._statement import (
    COSIGN_CUSTOM_V1,
    COSIGN_SIGN_V1,
    PREDICATE_ALIASES,
    REVOCATION_V1,
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    STATEMENT_V01,
    STATEMENT_V1,
    VSA_V1,
    Statement,
    StatementError,
    Subject,
    sign_statement,
    verify_statement,
    write_jsonl,
)

__all__ = [
    "COSIGN_CUSTOM_V1",
    "COSIGN_SIGN_V1",
    "GITHUB_BUILD_TYPE",
    "GITLAB_BUILD_TYPE",
    "LOCAL_BUILDER_ID",
    "LOCAL_BUILD_TYPE",
    "PREDICATE_ALIASES",
    "REVOCATION_V1",
    "SLSA_PROVENANCE_V02",
    "SLSA_PROVENANCE_V1",
    "STATEMENT_V01",
    "STATEMENT_V1",
    "VSA_V1",
    "AttestationCheck",
    "BuildContext",
    "Envelope",
    "Statement",
    "StatementError",
    "Subject",
    "accepted_predicate_types",
    "check_attestation",
    "revocation",
    "sign_statement",
    "slsa_provenance",
    "verification_summary",
    "verify_statement",
    "write_jsonl",
]
