"""What the CI system tells us about the build that is signing: GitHub Actions, GitLab CI, local.

Build types: on GitHub Actions we emit exactly what ``actions/attest-build-provenance``
emits, so tools that read GitHub's provenance read ours; GitLab CI and local
builds use the two Sealgate build types the package docstring describes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from gate.errors import UsageError

GITHUB_BUILD_TYPE = "https://actions.github.io/buildtypes/workflow/v1"
GITLAB_BUILD_TYPE = "https://sealgate.dev/buildtypes/gitlab-ci/v1"
LOCAL_BUILD_TYPE = "https://sealgate.dev/buildtypes/local/v1"
LOCAL_BUILDER_ID = "https://sealgate.dev/local"


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


def _present(env: Mapping[str, str], **names: str) -> dict[str, str]:
    """Each keyword's variable that is set and not empty, under the keyword, in order."""
    return {key: env[name] for key, name in names.items() if env.get(name)}


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
    internal = _present(
        env,
        event_name="GITHUB_EVENT_NAME",
        repository_id="GITHUB_REPOSITORY_ID",
        repository_owner_id="GITHUB_REPOSITORY_OWNER_ID",
        runner_environment="RUNNER_ENVIRONMENT",
    )
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
    internal = _present(
        env,
        pipeline_id="CI_PIPELINE_ID",
        pipeline_url="CI_PIPELINE_URL",
        job_id="CI_JOB_ID",
        project_id="CI_PROJECT_ID",
        runner_id="CI_RUNNER_ID",
        pipeline_source="CI_PIPELINE_SOURCE",
    )
    pipeline = {"repository": repository, "ref": ref, "path": path}
    return BuildContext(
        "gitlab", builder_id, GITLAB_BUILD_TYPE, repository, ref, sha, path,
        job_url or env.get("CI_PIPELINE_URL") or None, job_url,
        env.get("CI_PIPELINE_SOURCE") or None,
        external_parameters={"pipeline": {k: v for k, v in pipeline.items() if v}},
        internal_parameters={"gitlab": internal},
    )  # fmt: skip
