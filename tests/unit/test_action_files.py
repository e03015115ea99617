"""action.yml, the Dockerfile and the GitLab template agree with the entrypoint.

The same ``SEALGATE_*`` names are the contract between all three (STYLE.md #12);
a renamed input that is not renamed everywhere would silently be ignored.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from action import _env
from tests.conftest import ROOT


def _load(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def test_every_input_maps_to_its_sealgate_variable() -> None:
    metadata = _load("action.yml")
    assert metadata["runs"]["using"] == "docker"
    assert metadata["runs"]["image"] == "Dockerfile"
    env = metadata["runs"]["env"]
    for name in metadata["inputs"]:
        assert env[_env.variable(name)] == f"${{{{ inputs.{name} }}}}", name
    assert set(env) == {_env.variable(name) for name in metadata["inputs"]}
    assert set(metadata["outputs"]) == {
        "result",
        "digests",
        "report-dir",
        "provenance-path",
        "vsa-path",
        "signer",
        "rekor-entries",
    }
    for name in _env.SECRET_INPUTS:
        if name != "gitlab-token":  # GitLab only: a CI/CD variable, not an action input
            assert name in metadata["inputs"]


def test_the_dockerfile_pins_its_base_and_builds_in_two_stages() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE=python:3\.11-slim@sha256:[0-9a-f]{64}$", text, re.MULTILINE)
    assert len(re.findall(r"^FROM \$\{BASE\}", text, re.MULTILINE)) == 2
    assert "COPY --from=build /opt/sealgate /opt/sealgate" in text
    assert 'ENTRYPOINT ["/opt/sealgate/bin/python", "-P", "-m", "action"]' in text
    assert not re.search(r"^USER ", text, re.MULTILINE)  # GitHub runs container actions as root


def test_gitlab_template_hidden_jobs_use_the_same_variables() -> None:
    template = _load("ci/gitlab/sealgate.gitlab-ci.yml")
    base = template[".sealgate-base"]
    assert base["script"] == ["/opt/sealgate/bin/python -P -m action"]
    assert base["artifacts"]["when"] == "always"
    assert template[".sealgate-sign"]["variables"] == {"SEALGATE_COMMAND": "sign"}
    gate = template[".sealgate-gate"]
    assert gate["variables"]["SEALGATE_COMMAND"] == "gate"
    assert gate["artifacts"]["when"] == "always"
    assert gate["artifacts"]["reports"]["junit"] == "sealgate-reports/junit.xml"
    assert "sealgate-reports/" in gate["artifacts"]["paths"]
    inputs = set(_load("action.yml")["inputs"]) | {"gitlab-token"}
    known = {_env.variable(name) for name in inputs} | {"SEALGATE_IMAGE"}
    for job in template.values():
        for name in job.get("variables") or {}:
            assert name in known, name
    text = (ROOT / "ci/gitlab/sealgate.gitlab-ci.yml").read_text()
    assert "CI_JOB_TOKEN CANNOT post commit statuses" in text
    assert _env.variable("gitlab-token") == "SEALGATE_GITLAB_TOKEN"


def test_examples_extend_the_template_and_ask_for_least_permissions() -> None:
    gitlab = _load("examples/gitlab/.gitlab-ci.yml")
    assert gitlab["sign"]["extends"] == ".sealgate-sign"
    assert gitlab["gate"]["extends"] == ".sealgate-gate"
    workflow = _load("examples/github/workflow.yml")
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    assert list(jobs) == ["build", "sign", "gate", "deploy"]
    assert jobs["sign"]["permissions"]["statuses"] == "write"
    assert jobs["gate"]["permissions"] == {
        "contents": "read",
        "packages": "read",
        "statuses": "write",
    }
    assert jobs["deploy"]["needs"] == ["build", "gate"]


def test_keyless_example_grants_id_token_only_to_the_jobs_that_sign() -> None:
    workflow = _load("examples/github/keyless.yml")
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    assert jobs["sign"]["permissions"] == {
        "id-token": "write",
        "packages": "write",
        "statuses": "write",
    }
    (step,) = [s for s in jobs["sign"]["steps"] if s.get("id") == "sign"]
    assert "key" not in step["with"] and step["with"]["command"] == "sign"
    # The gate signs its verification summary keylessly; build and deploy never get a token.
    assert jobs["gate"]["permissions"]["id-token"] == "write"
    (gate,) = [s for s in jobs["gate"]["steps"] if s.get("with", {}).get("command") == "gate"]
    assert gate["with"]["keyless"] is True and "key" not in gate["with"]
    others = [name for name in jobs if name not in ("sign", "gate")]
    assert others and all("id-token" not in jobs[n].get("permissions", {}) for n in others)


def test_gitlab_keyless_template_mints_a_sigstore_token() -> None:
    template = _load("ci/gitlab/sealgate.gitlab-ci.yml")
    job = template[".sealgate-sign-keyless"]
    assert job["extends"] == ".sealgate-base"
    assert job["id_tokens"] == {"SIGSTORE_ID_TOKEN": {"aud": "sigstore"}}
    assert job["variables"] == {"SEALGATE_COMMAND": "sign"}
    assert "SEALGATE_KEY" not in job["variables"]
    assert _env.secrets({"SIGSTORE_ID_TOKEN": "a.b.c"}) == ["a.b.c"]
    gate = template[".sealgate-gate-keyless"]
    assert gate["extends"] == ".sealgate-gate" and gate["id_tokens"] == job["id_tokens"]
    assert _env.read({**gate["variables"], "SEALGATE_COMMAND": "gate", "SEALGATE_MANIFESTS": "m",
                      "SEALGATE_POLICY": "p"}).keyless_vsa  # fmt: skip


def test_release_workflow_signs_keylessly_with_least_privilege() -> None:
    """The release: id-token only where the action signs, tags only where action.yml is pinned."""
    workflow = _load(".github/workflows/release.yml")
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    assert list(jobs) == ["image", "sign", "publish"]
    assert jobs["image"]["permissions"] == {"contents": "read", "packages": "write"}
    assert jobs["sign"]["permissions"] == {
        "contents": "read",
        "id-token": "write",
        "packages": "write",
    }
    assert jobs["publish"]["permissions"] == {"contents": "write"}
    sign, verify = [s for s in jobs["sign"]["steps"] if s.get("uses") == "./"]
    assert sign["with"]["command"] == "sign" and "key" not in sign["with"]
    assert sign["with"]["provenance"] == "true"
    assert verify["with"]["command"] == "verify" and verify["with"]["attestations"]
    # The multi-platform tools are skipped for a build of the runner's own platform only
    # (the offline test relies on it); every other remote action is actions/checkout.
    steps = [s for job in jobs.values() for s in job["steps"]]
    remote = [s for s in steps if s.get("uses") and not s["uses"].startswith("./")]
    assert {s["uses"] for s in remote if "if" in s} == {
        "docker/setup-qemu-action@v3",
        "docker/setup-buildx-action@v3",
    }
    assert {s["uses"] for s in remote if "if" not in s} == {"actions/checkout@v4"}
    assert "  image: Dockerfile\n" in (ROOT / "action.yml").read_text()  # what publish replaces
