"""GitHub commit statuses through PyGithub (FORMATS.md §8.1).

The status goes on the commit a reviewer looks at: ``GITHUB_SHA``, except on
pull-request events, where ``GITHUB_SHA`` is a merge commit nobody sees and the
pull request's head SHA (from the event payload) is the right one.
``GITHUB_API_URL`` is honoured so GitHub Enterprise Server works. PyGithub's
and requests' exceptions stop here: they become ``CommitStatusError`` (or
``StatusForbiddenError`` for a token without ``statuses: write``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.errors import UsageError
from gate.notify._status import (
    CommitStatus,
    CommitStatusError,
    StatusForbiddenError,
    clip,
)

DESCRIPTION_MAX = 140
"""GitHub answers 422 to a longer description (FORMATS.md §8.1)."""
PULL_REQUEST_EVENTS = frozenset(
    {"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"}
)
DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
"""Sent as ``X-GitHub-Api-Version`` (FORMATS.md §8.1)."""
_FORBIDDEN = (401, 403, 404)  # 404: a token that cannot see the repository at all


@dataclass(frozen=True)
class GitHubTarget:
    """Where a status goes: ``owner/name``, the commit, and the API to talk to."""

    repository: str
    sha: str
    api_url: str = DEFAULT_API_URL
    run_url: str | None = None
    """The workflow run page, used as the status's ``target_url``."""


def read_event(path: str | None) -> dict[str, Any]:
    """The webhook payload at ``GITHUB_EVENT_PATH`` ({} when unset). Raises UsageError."""
    if not path:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read the event payload {path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise UsageError(f"the event payload {path} is not JSON (not UTF-8 text)") from e
    try:
        event = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"the event payload {path} is not JSON ({e.msg}, line {e.lineno})") from e
    if not isinstance(event, dict):
        raise UsageError(f"the event payload {path} is not a JSON object")
    return event


def run_url(env: Mapping[str, str]) -> str | None:
    """The page of this workflow run, or None outside GitHub Actions."""
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    repository, run_id = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
    return f"{server}/{repository}/actions/runs/{run_id}" if repository and run_id else None


def target_from_environment(
    env: Mapping[str, str], event: Mapping[str, Any] | None = None
) -> GitHubTarget:
    """The commit to post on, from the runner's variables and the event payload.

    Raises UsageError when the repository or commit cannot be told.
    """
    repository = env.get("GITHUB_REPOSITORY", "")
    if repository.count("/") != 1:
        raise UsageError("GITHUB_REPOSITORY is not set to owner/name; cannot post a commit status")
    event = read_event(env.get("GITHUB_EVENT_PATH")) if event is None else event
    sha = env.get("GITHUB_SHA", "")
    if env.get("GITHUB_EVENT_NAME") in PULL_REQUEST_EVENTS:
        head = (event.get("pull_request") or {}).get("head") or {}
        if isinstance(head.get("sha"), str) and head["sha"]:
            sha = head["sha"]
    if not sha:
        raise UsageError("GITHUB_SHA is not set; cannot tell which commit the status is for")
    api_url = (env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
    return GitHubTarget(repository, sha, api_url, run_url(env))


def post_status(
    target: GitHubTarget, token: str, status: CommitStatus, *, timeout: int = 15
) -> None:
    """``POST /repos/{owner}/{repo}/statuses/{sha}``; one request, no retries.

    Raises StatusForbiddenError when the token lacks permission and
    CommitStatusError for anything else; neither message carries the token.
    """
    from github import Auth, Github, GithubException
    from requests import RequestException

    client = Github(
        base_url=target.api_url,
        auth=Auth.Token(token),
        timeout=timeout,
        retry=None,
        lazy=True,  # NOTE: PEERS.md §7: lazy objects send only the POST
        seconds_between_requests=None,
        seconds_between_writes=None,
        user_agent="sealgate",
        api_version=API_VERSION,
    )
    where = f"{target.repository}@{target.sha[:12]}"
    optional = {"target_url": target.run_url} if target.run_url else {}
    try:
        commit = client.get_repo(target.repository).get_commit(target.sha)
        commit.create_status(
            state=status.state.value,
            description=clip(status.description, DESCRIPTION_MAX),
            context=status.context,
            **({"target_url": status.target_url} if status.target_url else optional),
        )
    except GithubException as e:
        reason = _reason(e.data)
        if e.status in _FORBIDDEN:
            raise StatusForbiddenError(
                f"GitHub refused the commit status on {where} ({e.status}{reason})",
                hint="give the job 'permissions: statuses: write' and pass github-token",
            ) from e
        raise CommitStatusError(
            f"GitHub did not accept the commit status on {where} ({e.status}{reason})"
        ) from e
    except RequestException as e:
        raise CommitStatusError(
            f"could not reach the GitHub API at {target.api_url} ({type(e).__name__})"
        ) from e
    finally:
        client.close()


def _reason(data: Any) -> str:
    """GitHub's own message (e.g. "Validation Failed: description is too long"), clipped."""
    if not isinstance(data, Mapping):
        return ""
    message = str(data.get("message") or "")
    errors = data.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        detail = errors[0].get("message") or errors[0].get("code")
        message = f"{message}: {detail}" if detail else message
    return f": {clip(message, 200)}" if message else ""
