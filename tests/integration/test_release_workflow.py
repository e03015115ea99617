""".github/workflows/release.yml under ``act``: build the action image, push it, sign it
keylessly with the action itself, verify it, and tag a release whose action.yml runs it by
digest.

Offline and on loopback only: the registry is the session's docker-registry, the Sigstore
stack the local Fulcio/Rekor/OIDC issuer of the keyless tests (the runner's id-token
endpoint goes in with ``--env``), and ``origin`` a bare repository mounted into the job
(``remote.origin.pushurl``; act still reads the GitHub name from ``remote.origin.url``).
git and the docker CLI come from the host, mounted read-only into the Debian job image.

What this cannot run here (no buildx, no QEMU on this dockerd 20.10): the multi-platform
path. The workflow skips QEMU and Buildx itself when asked for linux/amd64 only and its
build step uses the classic builder when there is no buildx; act still clones skipped
remote actions, so those two are local placeholders that fail if they are ever run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate import signatures
from gate.cli import main
from tests.conftest import ROOT, require
from tests.integration import action_image
from tests.servers import oidc, sigstore_stack

from .conftest import RegistryServer
from .keyless import node, stack, token_free
from .test_action_act import action_image_tag

pytestmark = pytest.mark.integration
__all__ = ["action_image_tag", "node", "stack"]  # fixtures, used by name

ACT_TIMEOUT = 900
VERSION = "v1.2.3"
REPO = "acme/app"
SIGNER = f"https://github.com/{REPO}/.github/workflows/release.yml@refs/heads/main"
REMOTE_ACTIONS = ("docker/setup-qemu-action@v3", "docker/setup-buildx-action@v3")
SHIPPED = ("action.yml", "Dockerfile", ".dockerignore", "pyproject.toml", "README.md")


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=ci@example.test", "-c", "user.name=ci", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def _repository(tmp_path: Path, registry: RegistryServer, stack: sigstore_stack.Stack) -> Path:
    """What the release builds from: this tree's action, wheels for an offline build."""
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    for name in SHIPPED:
        shutil.copy(ROOT / name, repo / name)
    for package in ("gate", "action"):
        shutil.copytree(
            ROOT / package, repo / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    workflow = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    assert workflow.count("ghcr.io") >= 3
    (repo / ".github" / "workflows" / "release.yml").write_text(
        workflow.replace("ghcr.io", registry.host)
    )
    action_image.build_wheels(repo / "dist" / "wheels")
    (repo / "sigstore").mkdir()
    shutil.copy(stack.config_path, repo / "sigstore" / "signing-config.json")
    shutil.copy(stack.root_path, repo / "sigstore" / "trusted_root.json")
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "remote", "add", "origin", f"https://github.com/{REPO}.git")
    _git(repo, "config", "remote.origin.pushurl", str(origin))
    _git(repo, "add", "-A", "-f")
    _git(repo, "commit", "-qm", "release me")
    return repo


def _placeholders(tmp_path: Path) -> list[str]:
    """``--local-repository`` for the remote actions the workflow skips: act clones even
    skipped steps' actions, which cannot happen offline. Each fails if it ever runs."""
    flags = []
    for name in REMOTE_ACTIONS:
        directory = tmp_path / "placeholders" / name.replace("/", "_")
        directory.mkdir(parents=True)
        (directory / "action.yml").write_text(
            "name: placeholder\nruns:\n  using: composite\n  steps:\n"
            f"    - run: echo 'placeholder for {name} ran' && exit 1\n      shell: bash\n"
        )
        flags += ["--local-repository", f"{name}={directory}"]
    return flags


def _build_stages() -> set[str]:
    """IDs of the Dockerfile's build-stage images (labelled), which a build leaves dangling."""
    done = subprocess.run(
        ["docker", "images", "-q", "--no-trunc", "--filter", "label=dev.sealgate.stage=build"],
        capture_output=True,
        text=True,
        check=False,
    )
    return set(done.stdout.split())


@pytest.fixture
def released_images(registry: RegistryServer) -> Iterator[list[str]]:
    """Images the workflow leaves in dockerd (the release and its build stage); removed after."""
    made: list[str] = [f"{registry.host}/{REPO}:{VERSION}"]
    stages = _build_stages()
    yield made
    for name in [*made, *(_build_stages() - stages)]:
        subprocess.run(["docker", "rmi", name], capture_output=True, check=False)


def test_release_builds_signs_verifies_and_pins_the_action(
    action_image_tag: str,
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    released_images: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    docker_cli, git_cli = shutil.which("docker"), shutil.which("git")
    require(docker_cli is not None and git_cli is not None, "the docker and git CLIs")
    require(Path("/usr/lib/git-core").is_dir(), "git's helpers in /usr/lib/git-core (Debian git)")
    stack.issuer.github = oidc.github_claims(REPO)  # the runner's token: this workflow
    repo = _repository(tmp_path, registry, stack)
    original = (repo / "action.yml").read_text()
    origin = tmp_path / "origin.git"
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text('GITHUB_TOKEN="ghs_releaseToken0123456789abcdef"\n')
    secrets_file.chmod(0o600)
    mounts = [
        f"-v {docker_cli}:/usr/bin/docker:ro",
        f"-v {git_cli}:/usr/bin/git:ro",
        "-v /usr/lib/git-core:/usr/lib/git-core:ro",
        f"-v {origin}:{origin}",
    ]
    inputs = {
        "version": VERSION,
        "platforms": "linux/amd64",
        "build-options": f"--network none --build-arg BASE={action_image.BASE_TAG} "
        "--build-arg WHEELS=dist/wheels",
        "signing-config": "sigstore/signing-config.json",
        "trusted-root": "sigstore/trusted_root.json",
    }
    command = [
        "act", "workflow_dispatch",
        "-P", f"ubuntu-latest={action_image.BASE_TAG}",
        "--pull=false", "--rebuild=false", "--rm",
        "--secret-file", str(secrets_file),
        "--container-options", " ".join(mounts),
        *(f"--input={k}={v}" for k, v in inputs.items()),
        *(f"--env={k}={v}" for k, v in stack.issuer.runner_env().items()),
        *_placeholders(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(
        command,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=ACT_TIMEOUT,
        env={**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config")},
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]
    for job in ("image", "sign", "publish"):
        assert re.search(rf"\[release-action/{job}\s*\]\s+🏁  Job succeeded", log), log[-6000:]
    assert "placeholder for" not in log

    # image: one push, reported by digest
    outputs = re.findall(r"\[release-action/image\s*\]\s+⚙  ::set-output:: image=(\S+)", log)
    (image,) = outputs
    name, _, digest = image.partition("@")
    assert name == f"{registry.host}/{REPO}" and re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    released_images.append(image)
    client = registry.client()
    repository = registry.repository(REPO)
    assert client.get_manifest(repository, VERSION).digest == digest
    tags = set(client.list_tags(repository))
    hex_digest = digest.split(":")[1]
    assert {f"sha256-{hex_digest}.sig", f"sha256-{hex_digest}.att"} <= tags

    # sign: the action's keyless signature names this workflow; then the workflow's own
    # verify (this workflow's identity, provenance required) said success too
    set_outputs = re.findall(r"\[release-action/sign\s*\]\s+⚙  ::set-output:: ([\w-]+)=(.*)", log)
    assert [v for k, v in set_outputs if k == "result"] == ["success", "success"]
    sign_outputs = dict(set_outputs)
    assert sign_outputs["signer"] == SIGNER
    assert json.loads(sign_outputs["digests"]) == {image: digest}
    assert "provenance.intoto.jsonl" in sign_outputs["provenance-path"]

    # publish: the tags in origin, and their action.yml runs the signed image by digest
    assert set(_git(origin, "tag").split()) == {VERSION, "v1"}
    assert _git(origin, "rev-parse", f"{VERSION}^{{commit}}") == _git(
        origin, "rev-parse", "v1^{commit}"
    )
    released = _git(origin, "show", f"{VERSION}:action.yml")
    assert released == original.replace(
        "  image: Dockerfile\n", f"  image: docker://{image}\n"
    ).rstrip("\n")
    dockerfile = (ROOT / "Dockerfile").read_text().rstrip("\n")
    assert _git(origin, "show", f"{VERSION}:Dockerfile") == dockerfile  # kept for local builds

    # Sealgate on the host, against the stack's root: this workflow signed it, nobody else did
    def verify(identity: str) -> dict[str, Any]:
        capsys.readouterr()
        main(
            ["verify", image, "--certificate-identity", identity,
             "--certificate-oidc-issuer", oidc.GITHUB_ISSUER,
             "--trusted-root", str(stack.root_path), "-o", "json"]
        )  # fmt: skip
        rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
        return rows[0]

    trusted = verify(SIGNER)
    assert trusted["status"] == "TRUSTED", trusted["reason"]
    assert trusted["digest"] == digest
    other = verify(SIGNER.replace("release.yml", "other.yml"))
    assert other["status"] != "TRUSTED"
    att = client.find_manifest(repository, signatures.attachment_tag(digest, "att"))
    assert att is not None

    # the released image is the action: its sealgate runs
    ran = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", "sealgate", image,
         "--version"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0 and ran.stdout.strip(), ran.stderr
    assert token_free(log, stack), "an identity token reached the log"
