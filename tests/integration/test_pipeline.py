"""The whole pipeline of issue 4's "Done when", with the action's entrypoint in-process.

Build an image with dockerd and push it to a real docker-registry; run the action
with ``command: sign`` (signature and SLSA provenance attached); then ``command:
gate`` on a Compose file holding that image pinned and one unsigned image. Check the
step summary, outputs, annotations, JUnit (junitparser), SARIF (sarif-pydantic),
the signed VSA and the provenance (securesystemslib), and the commit-status requests
the recording GitHub API received. Secrets must appear in none of it.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import action
from gate import commands, keys, policy
from gate.provenance import SLSA_PROVENANCE_V1, VSA_V1
from gate.refs import Reference
from gate.result import Status
from tests.servers.github import GitHubServer
from tests.unit.test_action_workflow import parse_output_file
from tests.unit.test_attest import sslib_verify

pytestmark = pytest.mark.integration

SHA = "4444444444444444444444444444444444444444"
TOKEN = "ghs_pipelineToken0123456789abcdef"
PASSWORD = "pipeline passphrase 1"
WORKFLOW_REF = "acme/app/.github/workflows/release.yml@refs/heads/main"
BUILDER = f"https://github.com/{WORKFLOW_REF}"


def _env(workspace: Path, files: Path, github: GitHubServer) -> dict[str, str]:
    event = files / "event.json"
    event.write_text(json.dumps({"ref": "refs/heads/main", "after": SHA}))
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_REPOSITORY": "acme/app",
        "GITHUB_REPOSITORY_ID": "1234",
        "GITHUB_SHA": SHA,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_WORKFLOW_REF": WORKFLOW_REF,
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_API_URL": github.url,
        "GITHUB_RUN_ID": "7001",
        "GITHUB_RUN_ATTEMPT": "1",
        "RUNNER_ENVIRONMENT": "github-hosted",
    }


def _step(
    env: dict[str, str], files: Path, step: str, **inputs: str
) -> tuple[int, str, dict[str, str], str]:
    """One action step: fresh output and summary files, as the runner gives each step."""
    env = dict(
        env,
        GITHUB_OUTPUT=str(files / f"{step}.output"),
        GITHUB_STEP_SUMMARY=str(files / f"{step}.summary"),
    )
    Path(env["GITHUB_OUTPUT"]).touch()
    env.update({"SEALGATE_" + k.upper(): v for k, v in inputs.items()})
    out = io.StringIO()
    code = action.main(env, out)
    outputs = parse_output_file(Path(env["GITHUB_OUTPUT"]).read_text())
    return code, out.getvalue(), outputs, Path(env["GITHUB_STEP_SUMMARY"]).read_text()


def test_sign_then_gate(
    registry: Any,
    push_image: Callable[..., Reference],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    isolated_docker_config: Path,
) -> None:
    from junitparser import JUnitXml
    from sarif_pydantic import Sarif

    workspace, files = tmp_path / "workspace", tmp_path / "file_commands"
    workspace.mkdir()
    files.mkdir()
    monkeypatch.chdir(workspace)

    app = push_image(registry, repo="acme/app", tag="1.0")
    other = push_image(registry, repo="acme/pipeline-unsigned", tag="2.0")
    key = keys.generate()
    pem = key.to_pem(PASSWORD.encode()).decode()
    (workspace / "keys").mkdir()
    (workspace / "keys" / "ci.pub").write_bytes(key.public_key.pem)
    (workspace / "deploy").mkdir()
    (workspace / "deploy" / "policy.yaml").write_text(f"""\
version: 1
signers:
  - name: ci
    key: ../keys/ci.pub
    level: 1
rules:
  - match: "{registry.host}/acme/app"
    require: {{signers: [ci], threshold: 1}}
    pinned: required
    attestations:
      - type: https://slsa.dev/provenance/v1
        builder: {BUILDER}
        source: https://github.com/acme/app
  - match: "**"
    require: {{signers: [ci], threshold: 1}}
    pinned: required
default: deny
""")

    with GitHubServer() as github:
        env = _env(workspace, files, github)

        # --- sign, with provenance ----------------------------------------------------------
        code, log, outputs, summary = _step(
            env,
            files,
            "sign",
            command="sign",
            images=f"{registry.host}/acme/app:1.0",
            key=pem,
            key_password=PASSWORD,
            github_token=TOKEN,
        )
        assert code == 0, log
        assert outputs["result"] == "success"
        assert json.loads(outputs["digests"]) == {f"{registry.host}/acme/app:1.0": app.digest}
        assert outputs["provenance-path"] == "sealgate-reports/provenance.intoto.jsonl"
        assert "::group::Signing 1 image" in log and "::endgroup::" in log
        assert summary.startswith("### ✅ Sealgate signed 1 image\n")
        assert app.digest in summary and "SLSA provenance" in summary

        (line,) = (workspace / outputs["provenance-path"]).read_bytes().splitlines()
        envelope = json.loads(line)
        sslib_verify(envelope, key)
        statement = json.loads(base64.b64decode(envelope["payload"]))
        assert statement["predicateType"] == SLSA_PROVENANCE_V1
        assert statement["subject"] == [
            {"name": f"{registry.host}/acme/app", "digest": {"sha256": app.digest.split(":")[1]}}
        ]
        assert statement["predicate"]["runDetails"]["builder"]["id"] == BUILDER

        # Our own verifier finds the attached provenance (`verify --attestation slsaprovenance`).
        ctx = commands.Context()
        (verified,) = commands.verify(
            ctx,
            [f"{registry.host}/acme/app@{app.digest}"],
            policy.from_keys([key.public_key]),
            attestations=["slsaprovenance"],
        )
        assert verified.status is Status.TRUSTED, verified.reason
        assert SLSA_PROVENANCE_V1 in verified.attestations

        # --- verify, as a step: inline public key, provenance required --------------------
        code, log, outputs, summary = _step(
            env,
            files,
            "verify",
            command="verify",
            images=f"{registry.host}/acme/app:1.0",
            public_keys=key.public_key.pem.decode(),
            attestations="slsaprovenance",
        )
        assert code == 0, log
        assert outputs["result"] == "success"
        assert summary.startswith("### ✅ 1 of 1 image trusted")

        # --- attest: provenance for an image signed elsewhere ------------------------------
        code, log, outputs, summary = _step(
            env,
            files,
            "attest",
            command="attest",
            images=f"{registry.host}/acme/pipeline-unsigned:2.0",
            key=pem,
            key_password=PASSWORD,
        )
        assert code == 0, log
        assert json.loads(outputs["digests"]) == {
            f"{registry.host}/acme/pipeline-unsigned:2.0": other.digest
        }
        tags = registry.client().list_tags(registry.repository("acme/pipeline-unsigned"))
        assert tags == sorted(["2.0", f"sha256-{other.digest.split(':')[1]}.att"]) or set(tags) == {
            "2.0",
            f"sha256-{other.digest.split(':')[1]}.att",
        }

        # --- gate: the signed image pinned, and one unsigned image ------------------------
        compose = workspace / "deploy" / "compose.yaml"
        compose.write_text(f"""\
services:
  app:
    image: {registry.host}/acme/app@{app.digest}
  cache:
    image: {registry.host}/acme/pipeline-unsigned:2.0@{other.digest}
""")
        code, log, outputs, summary = _step(
            env,
            files,
            "gate",
            command="gate",
            manifests="deploy/compose.yaml",
            policy="deploy/policy.yaml",
            key=pem,
            key_password=PASSWORD,
            github_token=TOKEN,
        )
        assert code == 1, log
        assert outputs["result"] == "failure"
        assert set(json.loads(outputs["digests"]).values()) == {app.digest, other.digest}
        assert outputs["report-dir"] == "sealgate-reports"
        assert outputs["vsa-path"] == "sealgate-reports/vsa.intoto.jsonl"

        errors = [entry for entry in log.splitlines() if entry.startswith("::error")]
        assert len(errors) == 1, log
        assert re.fullmatch(
            r"::error file=deploy/compose\.yaml,line=5,title=Sealgate%3A UNKNOWN::"
            rf"{re.escape(registry.host)}/acme/pipeline-unsigned.*",
            errors[0],
        )
        assert summary.startswith("### ❌ 1 of 2 images failed: 1 unknown")
        assert "<details>" in summary and "vsa.intoto.jsonl" in summary

        reports = workspace / "sealgate-reports"
        junit = JUnitXml.fromfile(str(reports / "junit.xml"))
        cases = [case for suite in junit for case in suite]
        assert len(cases) == 2
        assert sum(1 for case in cases if not case.is_passed) == 1
        sarif = Sarif.model_validate_json((reports / "sarif.json").read_text())
        findings = sarif.runs[0].results or []
        assert any("unsigned" in (f.message.text or "") for f in findings)
        assert json.loads((reports / "report.json").read_text())[0]["status"] in (
            "TRUSTED",
            "UNKNOWN",
        )

        (vsa_line,) = (reports / "vsa.intoto.jsonl").read_bytes().splitlines()
        vsa_envelope = json.loads(vsa_line)
        sslib_verify(vsa_envelope, key)
        vsa = json.loads(base64.b64decode(vsa_envelope["payload"]))
        assert vsa["predicateType"] == VSA_V1
        assert vsa["predicate"]["verificationResult"] == "FAILED"
        assert vsa["predicate"]["policy"]["uri"] == (
            f"https://github.com/acme/app/blob/{SHA}/deploy/policy.yaml"
        )
        assert {s["digest"]["sha256"] for s in vsa["subject"]} == {
            app.digest.split(":")[1],
            other.digest.split(":")[1],
        }

        # --- gate again with only the signed image: it passes, the VSA says PASSED --------
        compose.write_text(f"services:\n  app:\n    image: {registry.host}/acme/app@{app.digest}\n")
        code, log, outputs, summary = _step(
            env,
            files,
            "gate-pass",
            command="gate",
            manifests="deploy/compose.yaml",
            policy="deploy/policy.yaml",
            github_token=TOKEN,
        )
        assert code == 0, log
        assert outputs["result"] == "success"
        assert not [entry for entry in log.splitlines() if entry.startswith("::error")]
        assert summary.startswith("### ✅ 1 of 1 image trusted")
        unsigned_vsa = json.loads((reports / "vsa.json").read_text())
        assert unsigned_vsa["predicate"]["verificationResult"] == "PASSED"

        statuses = github.statuses()

    assert [s.path for s in statuses] == [f"/repos/acme/app/statuses/{SHA}"] * 3
    sign_status, gate_status, pass_status = (s.json() for s in statuses)
    assert pass_status["state"] == "success" and pass_status["context"] == "sealgate/gate"
    assert sign_status == {
        "state": "success",
        "description": "✅ signed 1 image with SLSA provenance",
        "context": "sealgate/sign",
        "target_url": "https://github.com/acme/app/actions/runs/7001",
    }
    assert gate_status["state"] == "failure"
    assert gate_status["context"] == "sealgate/gate"
    assert gate_status["description"] == "❌ 1 of 2 images failed: 1 unknown"
    for request in statuses:
        assert request.header("Authorization") == f"token {TOKEN}"

    # Secrets: none in any file the run wrote, any output, any request body, or the log.
    secrets = [PASSWORD, TOKEN, *pem.strip().splitlines()[1:-1]]
    texts = [
        p.read_bytes().decode(errors="replace")
        for p in tmp_path.rglob("*")
        if p.is_file() and p.name != "event.json"
    ]
    texts += [log, json.dumps(outputs)] + [r.body.decode() for r in statuses]
    for secret in secrets:
        for text in texts:
            unmasked = "\n".join(t for t in text.splitlines() if not t.startswith("::add-mask::"))
            assert secret not in unmasked


def test_pin_check_annotates_unpinned_references_and_writes_nothing(
    registry: Any,
    push_image: Callable[..., Reference],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    isolated_docker_config: Path,
) -> None:
    workspace, files = tmp_path / "workspace", tmp_path / "file_commands"
    (workspace / "deploy").mkdir(parents=True)
    files.mkdir()
    monkeypatch.chdir(workspace)
    app = push_image(registry, repo="acme/pinme", tag="3.1")
    text = f"services:\n  app:\n    image: {registry.host}/acme/pinme:3.1\n"
    (workspace / "deploy" / "compose.yaml").write_text(text)
    with GitHubServer() as github:
        env = _env(workspace, files, github)
        code, log, outputs, summary = _step(
            env, files, "pin", command="pin-check", manifests="deploy", github_token=TOKEN
        )
        (status,) = github.statuses()
    assert code == 1, log
    assert outputs["result"] == "failure"
    (error,) = [line for line in log.splitlines() if line.startswith("::error")]
    assert error.startswith(
        "::error file=deploy/compose.yaml,line=3,title=Sealgate%3A unpinned image::"
    )
    assert app.digest in error
    assert summary.startswith("### ❌ 1 image reference not pinned by digest")
    assert (workspace / "deploy" / "compose.yaml").read_text() == text
    assert status.json()["context"] == "sealgate/pin-check"
    assert status.json()["state"] == "failure"
