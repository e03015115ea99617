"""The action's entrypoint in-process: a temporary workspace, GITHUB_*/INPUT_* variables,
an event payload file, and a recording GitHub API for commit statuses.

These are the bad-input paths (each: one ``::error::`` line, an ``error`` status when a
token was given, a non-zero exit) and the secret-hygiene rule; the happy paths against a
real registry are in tests/integration/test_pipeline.py.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import action
from gate import keys
from tests.servers.github import GitHubServer
from tests.servers.gitlab import GitLabServer
from tests.unit.test_action_workflow import parse_output_file

SHA = "1111111111111111111111111111111111111111"
HEAD_SHA = "2222222222222222222222222222222222222222"
TOKEN = "ghs_knownTokenValue0123456789"
PASSWORD = "correct horse battery staple"
REGISTRY_PASSWORD = "s3cr3t-registry-password"


@dataclass
class Run:
    code: int
    log: str
    outputs: dict[str, str]
    summary: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.log.splitlines() if line.startswith("::error")]


@dataclass
class Workspace:
    path: Path
    env: dict[str, str]
    github: GitHubServer

    def run(self, **inputs: str) -> Run:
        env = dict(self.env)
        for name, value in inputs.items():
            env["SEALGATE_" + name.upper()] = value
        out = io.StringIO()
        code = action.main(env, out)
        outputs = parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text())
        summary_path = Path(env["GITHUB_STEP_SUMMARY"])
        summary = summary_path.read_text() if summary_path.is_file() else ""
        return Run(code, out.getvalue(), outputs, summary)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    root = tmp_path / "workspace"
    files = tmp_path / "file_commands"
    root.mkdir()
    files.mkdir()
    monkeypatch.chdir(root)
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"ref": "refs/heads/main", "after": SHA}))
    (files / "output").touch()
    with GitHubServer(forbidden=("ghs_readonly",)) as github:
        env = {
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(root),
            "GITHUB_REPOSITORY": "acme/app",
            "GITHUB_SHA": SHA,
            "GITHUB_REF": "refs/heads/main",
            "GITHUB_EVENT_NAME": "push",
            "GITHUB_EVENT_PATH": str(event),
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": github.url,
            "GITHUB_RUN_ID": "99",
            "GITHUB_OUTPUT": str(files / "output"),
            "GITHUB_STEP_SUMMARY": str(files / "summary"),
            "PATH": "/usr/bin:/bin",
        }
        yield Workspace(root, env, github)


def _one_error_status(workspace: Workspace, sha: str = SHA) -> dict[str, str]:
    (post,) = workspace.github.statuses()
    assert post.path == f"/repos/acme/app/statuses/{sha}"
    assert post.header("Authorization") == f"token {TOKEN}"
    assert post.header("X-GitHub-Api-Version") == "2022-11-28"
    body = post.json()
    assert body["state"] == "error"
    assert len(body["description"]) <= 140
    assert body["target_url"] == "https://github.com/acme/app/actions/runs/99"
    return body


def test_unknown_command(workspace: Workspace) -> None:
    run = workspace.run(command="deploy", github_token=TOKEN)
    assert run.code == 2
    assert run.errors == [
        "::error::unknown command 'deploy': use one of sign, verify, gate, pin-check, attest"
    ]
    body = _one_error_status(workspace)
    assert body["context"] == "sealgate"
    assert run.outputs["result"] == "error"
    assert "could not run" in run.summary


def test_missing_required_input(workspace: Workspace) -> None:
    run = workspace.run(command="verify", images="127.0.0.1:1/a:1", github_token=TOKEN)
    assert run.code == 2
    assert run.errors == ["::error::command 'verify' needs input 'policy or public-keys'"]
    assert _one_error_status(workspace)["context"] == "sealgate/verify"


def test_sign_without_key_or_id_token_permission_names_the_permission(
    workspace: Workspace,
) -> None:
    """No key means keyless; without an OIDC token the one error says which permission."""
    run = workspace.run(command="sign", images="127.0.0.1:1/a:1", github_token=TOKEN)
    assert run.code == 2
    (error,) = run.errors
    assert "id-token: write" in error
    run = workspace.run(command="attest", images="127.0.0.1:1/a:1")
    assert run.code == 2
    (error,) = run.errors
    assert "id-token: write" in error


def test_key_that_does_not_parse(workspace: Workspace) -> None:
    garbage = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    run = workspace.run(command="sign", images="127.0.0.1:1/a:1", key=garbage, github_token=TOKEN)
    assert run.code == 2
    assert run.errors == ["::error::the inline key holds a malformed or unsupported private key"]
    _one_error_status(workspace)
    unmasked = [line for line in run.log.splitlines() if not line.startswith("::add-mask::")]
    assert not [line for line in unmasked if "bm90IGEga2V5" in line]


def test_wrong_password(workspace: Workspace) -> None:
    pem = keys.generate().to_pem(PASSWORD.encode()).decode()
    run = workspace.run(
        command="sign",
        images="127.0.0.1:1/a:1",
        key=pem,
        key_password="not the password",
        github_token=TOKEN,
    )
    assert run.code == 2
    (error,) = run.errors
    assert error.startswith("::error::wrong passphrase for the inline key")
    _one_error_status(workspace)


def test_event_payload_that_is_not_json(workspace: Workspace) -> None:
    Path(workspace.env["GITHUB_EVENT_PATH"]).write_text("{not json")
    workspace.env["GITHUB_EVENT_NAME"] = "pull_request"
    run = workspace.run(command="gate", manifests="a.yaml", policy="p.yaml", github_token=TOKEN)
    assert run.code == 2
    (error,) = run.errors
    assert re.match(r"::error::the event payload \S+ is not JSON", error)
    _one_error_status(workspace)  # GITHUB_SHA: the head SHA could not be read


def test_unwritable_step_summary(workspace: Workspace, tmp_path: Path) -> None:
    workspace.env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "missing-dir" / "summary")
    run = workspace.run(command="gate", manifests="a.yaml", policy="p.yaml", github_token=TOKEN)
    assert run.code == 2
    (error,) = run.errors
    assert error.startswith("::error::cannot write GITHUB_STEP_SUMMARY")
    _one_error_status(workspace)


def test_pull_request_status_goes_on_the_head_commit(workspace: Workspace) -> None:
    event = {"pull_request": {"number": 5, "head": {"sha": HEAD_SHA}}}
    Path(workspace.env["GITHUB_EVENT_PATH"]).write_text(json.dumps(event))
    workspace.env["GITHUB_EVENT_NAME"] = "pull_request"
    workspace.env["GITHUB_SHA"] = "3" * 40  # the merge commit nobody looks at
    workspace.run(command="nope", github_token=TOKEN)
    _one_error_status(workspace, sha=HEAD_SHA)


def test_forbidden_status_is_a_warning_and_keeps_the_exit_code(workspace: Workspace) -> None:
    run = workspace.run(command="nope", github_token="ghs_readonly", status_context="ci/sealgate")
    assert run.code == 2
    warnings = [line for line in run.log.splitlines() if line.startswith("::warning")]
    assert len(warnings) == 1
    assert "403" in warnings[0] and "statuses: write" in warnings[0]
    assert "statuses: write" in run.summary
    assert workspace.github.statuses()[0].json()["context"] == "ci/sealgate"


def test_no_token_posts_no_status(workspace: Workspace) -> None:
    run = workspace.run(command="nope")
    assert run.code == 2
    assert workspace.github.requests == []


def test_unreachable_api_is_a_warning(workspace: Workspace) -> None:
    workspace.env["GITHUB_API_URL"] = "http://127.0.0.1:9"
    run = workspace.run(command="nope", github_token=TOKEN)
    assert run.code == 2
    assert any(line.startswith("::warning") for line in run.log.splitlines())


def test_inputs_as_the_runner_passes_them(workspace: Workspace) -> None:
    """Without runs.env, the runner's INPUT_* variables are read (hyphens kept)."""
    workspace.env.update(
        {"INPUT_COMMAND": "verify", "INPUT_IMAGES": "127.0.0.1:1/a:1", "INPUT_GITHUB-TOKEN": TOKEN}
    )
    run = workspace.run()
    assert run.errors == ["::error::command 'verify' needs input 'policy or public-keys'"]
    assert _one_error_status(workspace)["context"] == "sealgate/verify"


def test_gitlab_job_posts_a_failed_status_and_writes_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with GitLabServer() as gitlab:
        env = {
            "GITLAB_CI": "true",
            "CI_API_V4_URL": gitlab.url + "/api/v4",
            "CI_PROJECT_ID": "12",
            "CI_COMMIT_SHA": SHA,
            "CI_COMMIT_REF_NAME": "main",
            "CI_JOB_URL": "https://gitlab.example.com/grp/app/-/jobs/7",
            "SEALGATE_GITLAB_TOKEN": "glpat-knownToken",
            "SEALGATE_COMMAND": "gate",
        }
        out = io.StringIO()
        code = action.main(env, out)
        (post,) = gitlab.statuses()
    assert code == 2
    assert post.path == f"/api/v4/projects/12/statuses/{SHA}"
    assert post.header("PRIVATE-TOKEN") == "glpat-knownToken"
    assert post.json() == {
        "state": "failed",
        "name": "sealgate/gate",
        "description": "⚠️ sealgate gate could not run: command 'gate' needs inputs "
        "'manifests', 'policy'",
        "target_url": "https://gitlab.example.com/grp/app/-/jobs/7",
        "ref": "main",
    }
    assert "::" not in out.getvalue()  # no GitHub workflow commands in a GitLab log
    assert out.getvalue().startswith("error: command 'gate' needs inputs")
    dotenv = (tmp_path / "sealgate-reports" / "sealgate.env").read_text()
    assert "SEALGATE_GATE_RESULT=error\n" in dotenv
    assert "glpat-knownToken" not in out.getvalue() + dotenv


def test_secrets_never_reach_the_log_outputs_summary_or_files(workspace: Workspace) -> None:
    """Run with known secrets through a path that fails late (registry unreachable)."""
    pem = keys.generate().to_pem(PASSWORD.encode()).decode()
    run = workspace.run(
        command="sign",
        images="127.0.0.1:9/acme/app:1",
        key=pem,
        key_password=PASSWORD,
        registry_username="robot",
        registry_password=REGISTRY_PASSWORD,
        github_token=TOKEN,
    )
    assert run.code == 3, run.log
    assert run.errors == ["::error::cannot reach registry 127.0.0.1:9: connection refused"]
    secrets = [PASSWORD, REGISTRY_PASSWORD, TOKEN, *pem.strip().splitlines()[1:-1]]
    log_without_masks = "\n".join(
        line for line in run.log.splitlines() if not line.startswith("::add-mask::")
    )
    masked = {
        line.removeprefix("::add-mask::")
        for line in run.log.splitlines()
        if line.startswith("::add-mask::")
    }
    written = [
        p.read_bytes().decode(errors="replace") for p in workspace.path.rglob("*") if p.is_file()
    ]
    bodies = [r.body.decode() for r in workspace.github.requests]
    for secret in secrets:
        assert secret in masked
        assert secret not in log_without_masks
        assert secret not in run.summary and secret not in json.dumps(run.outputs)
        assert all(secret not in text for text in written + bodies)


def test_a_report_dir_that_is_a_file_stops_sign_before_any_push(workspace: Workspace) -> None:
    (workspace.path / "reports").write_text("a file")
    pem = keys.generate().to_pem(PASSWORD.encode()).decode()
    run = workspace.run(
        command="sign",
        # nothing listens on port 9: had signing started, the error would be about the registry
        images="127.0.0.1:9/acme/app@sha256:" + "a" * 64,
        key=pem,
        key_password=PASSWORD,
        report_dir="reports",
        github_token=TOKEN,
    )
    assert run.code == 2
    assert run.errors == ["::error::the report directory reports is a file, not a directory"]
    assert (workspace.path / "reports").read_text() == "a file"
