"""GitLab commit statuses through python-gitlab (FORMATS.md §9).

``POST /projects/:id/statuses/:sha`` with a project or group access token
(``api`` scope) in ``SEALGATE_GITLAB_TOKEN``. ``CI_JOB_TOKEN`` cannot do this:
the job token may only call a fixed list of endpoints, and the Commits API is
not among them for writing. python-gitlab's exceptions stop here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gate.errors import UsageError
from gate.notify._status import (
    CommitStatus,
    CommitStatusError,
    State,
    StatusForbiddenError,
    clip,
)

DESCRIPTION_MAX = 255
TOKEN_VARIABLE = "SEALGATE_GITLAB_TOKEN"
# NOTE: GitLab doc/api/commits.md: pending, running, success, failed, canceled.
_STATES = {
    State.PENDING: "pending",
    State.SUCCESS: "success",
    State.FAILURE: "failed",
    State.ERROR: "failed",
}
_FORBIDDEN = (401, 403, 404)


@dataclass(frozen=True)
class GitLabTarget:
    """Where a status goes: the API root, the project, the commit, and the job page."""

    api_url: str
    """``CI_API_V4_URL``, e.g. ``https://gitlab.example.com/api/v4``."""
    project_id: str
    sha: str
    job_url: str | None = None
    ref: str | None = None
    pipeline_id: str | None = None


def target_from_environment(env: Mapping[str, str]) -> GitLabTarget:
    """The commit of this job, from GitLab's predefined variables. Raises UsageError."""
    missing = [n for n in ("CI_API_V4_URL", "CI_PROJECT_ID", "CI_COMMIT_SHA") if not env.get(n)]
    if missing:
        raise UsageError(f"{', '.join(missing)} not set; cannot post a GitLab commit status")
    return GitLabTarget(
        env["CI_API_V4_URL"].rstrip("/"),
        env["CI_PROJECT_ID"],
        env["CI_COMMIT_SHA"],
        env.get("CI_JOB_URL") or None,
        env.get("CI_COMMIT_REF_NAME") or None,
        env.get("CI_PIPELINE_ID") or None,
    )


def post_status(
    target: GitLabTarget, token: str, status: CommitStatus, *, timeout: float = 15
) -> None:
    """Set the commit status; raises StatusForbiddenError or CommitStatusError (no token in it)."""
    import gitlab
    import requests

    # python-gitlab wants the server root and appends /api/v4 itself.
    server = target.api_url.removesuffix("/api/v4")
    client = gitlab.Gitlab(server, private_token=token, timeout=timeout, user_agent="sealgate")
    body = {
        "state": _STATES[status.state],
        "name": status.context,
        "description": clip(status.description, DESCRIPTION_MAX),
    }
    if status.target_url or target.job_url:
        body["target_url"] = clip(status.target_url or target.job_url or "", DESCRIPTION_MAX)
    if target.ref:
        body["ref"] = target.ref
    if target.pipeline_id:
        body["pipeline_id"] = target.pipeline_id
    where = f"project {target.project_id}@{target.sha[:12]}"
    try:
        project = client.projects.get(target.project_id, lazy=True)
        project.commits.get(target.sha, lazy=True).statuses.create(body)
    except gitlab.exceptions.GitlabError as e:
        code = e.response_code
        reason = f": {clip(str(e.error_message), 200)}" if e.error_message else ""
        if code in _FORBIDDEN:
            raise StatusForbiddenError(
                f"GitLab refused the commit status on {where} ({code}{reason})",
                hint=f"put a project access token with the api scope in {TOKEN_VARIABLE}; "
                "CI_JOB_TOKEN cannot post commit statuses",
            ) from e
        raise CommitStatusError(
            f"GitLab did not accept the commit status on {where} ({code}{reason})"
        ) from e
    except requests.RequestException as e:
        raise CommitStatusError(
            f"could not reach the GitLab API at {target.api_url} ({type(e).__name__})"
        ) from e
    finally:
        client.session.close()
