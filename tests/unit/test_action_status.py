"""gate.notify._github and _gitlab: which commit, exact requests, and errors that never leak."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.errors import UsageError
from gate.notify import _github, _gitlab
from gate.notify._status import CommitStatus, CommitStatusError, State, StatusForbiddenError
from tests.servers.github import GitHubServer
from tests.servers.gitlab import GitLabServer

SHA = "a" * 40
HEAD = "b" * 40


def test_push_uses_github_sha_and_enterprise_api_url() -> None:
    env = {
        "GITHUB_REPOSITORY": "acme/app",
        "GITHUB_SHA": SHA,
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_API_URL": "https://ghe.example.com/api/v3/",
        "GITHUB_SERVER_URL": "https://ghe.example.com",
        "GITHUB_RUN_ID": "5",
    }
    target = _github.target_from_environment(env, {})
    assert target == _github.GitHubTarget(
        "acme/app",
        SHA,
        "https://ghe.example.com/api/v3",
        "https://ghe.example.com/acme/app/actions/runs/5",
    )


@pytest.mark.parametrize("event_name", ["pull_request", "pull_request_target"])
def test_pull_requests_use_the_head_sha(tmp_path: Path, event_name: str) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"sha": HEAD}}}))
    env = {
        "GITHUB_REPOSITORY": "acme/app",
        "GITHUB_SHA": SHA,
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": str(event),
    }
    assert _github.target_from_environment(env).sha == HEAD


def test_event_payload_problems_are_usage_errors(tmp_path: Path) -> None:
    bad = tmp_path / "event.json"
    bad.write_bytes(b"\xff\xfe not json")
    with pytest.raises(UsageError, match="is not JSON"):
        _github.read_event(str(bad))
    bad.write_text("[1, 2]")
    with pytest.raises(UsageError, match="not a JSON object"):
        _github.read_event(str(bad))
    with pytest.raises(UsageError, match="cannot read the event payload"):
        _github.read_event(str(tmp_path / "missing.json"))
    with pytest.raises(UsageError, match="GITHUB_REPOSITORY"):
        _github.target_from_environment({"GITHUB_SHA": SHA}, {})


def test_github_request_is_exact_and_the_description_fits() -> None:
    with GitHubServer() as github:
        target = _github.GitHubTarget("acme/app", SHA, github.url, "https://run/1")
        status = CommitStatus(State.FAILURE, "❌ " + "x" * 300, "sealgate/gate")
        _github.post_status(target, "ghs_t", status)
        (post,) = github.requests
    assert post.method == "POST"
    assert post.target == f"/repos/acme/app/statuses/{SHA}"
    assert post.header("Authorization") == "token ghs_t"
    assert post.header("Content-Type") == "application/json"
    body = post.json()
    assert set(body) == {"state", "description", "context", "target_url"}
    assert body["state"] == "failure" and body["context"] == "sealgate/gate"
    assert len(body["description"]) == 140 and body["description"].endswith("…")
    assert body["target_url"] == "https://run/1"


def test_github_errors_are_translated_without_the_token() -> None:
    with GitHubServer(forbidden=("ghs_ro",)) as github:
        target = _github.GitHubTarget("acme/app", SHA, github.url)
        with pytest.raises(StatusForbiddenError, match=r"\(403: Resource not accessible") as info:
            _github.post_status(target, "ghs_ro", CommitStatus(State.SUCCESS, "ok", "c"))
        assert "ghs_ro" not in str(info.value) and "statuses: write" in (info.value.hint or "")
        github.reply(500, {"message": "boom"}, method="POST")
        with pytest.raises(CommitStatusError, match=r"did not accept .*\(500: boom\)"):
            _github.post_status(target, "ghs_t", CommitStatus(State.SUCCESS, "ok", "c"))
    with pytest.raises(CommitStatusError, match="could not reach the GitHub API"):
        _github.post_status(target, "ghs_t", CommitStatus(State.SUCCESS, "ok", "c"))


def test_gitlab_target_needs_its_variables() -> None:
    with pytest.raises(UsageError, match="CI_PROJECT_ID, CI_COMMIT_SHA not set"):
        _gitlab.target_from_environment({"CI_API_V4_URL": "https://gl/api/v4"})


def test_gitlab_request_is_exact_and_states_are_mapped() -> None:
    with GitLabServer() as gitlab:
        target = _gitlab.GitLabTarget(f"{gitlab.url}/api/v4", "grp/app", SHA, "https://job/1")
        for state in State:
            _gitlab.post_status(target, "glpat-x", CommitStatus(state, "d" * 300, "sealgate/sign"))
        posts = gitlab.statuses()
    assert [p.json()["state"] for p in posts] == ["pending", "success", "failed", "failed"]
    assert posts[0].target == f"/api/v4/projects/grp%2Fapp/statuses/{SHA}"
    assert posts[0].header("PRIVATE-TOKEN") == "glpat-x"
    assert len(posts[0].json()["description"]) == 255
    assert posts[0].json()["name"] == "sealgate/sign"


def test_gitlab_job_token_is_refused_with_a_pointed_hint() -> None:
    with GitLabServer(forbidden=("job-token",)) as gitlab:
        target = _gitlab.GitLabTarget(f"{gitlab.url}/api/v4", "12", SHA)
        with pytest.raises(StatusForbiddenError, match=r"\(403") as info:
            _gitlab.post_status(target, "job-token", CommitStatus(State.SUCCESS, "ok", "c"))
    assert "CI_JOB_TOKEN cannot post commit statuses" in (info.value.hint or "")
    assert "job-token" not in str(info.value)
