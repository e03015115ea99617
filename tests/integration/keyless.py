"""Shared parts of the keyless-signing tests: the stack fixture and registry readers."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate import signatures
from gate.cli import main
from gate.refs import Reference
from tests.servers import oidc, sigstore_stack

from ..conftest import ROOT, require
from .conftest import RegistryServer

PEERS = ROOT / "tests" / "peers"
GITHUB_SAN = "https://github.com/acme/payments/.github/workflows/release.yml@refs/heads/main"
GITLAB_SAN = "https://gitlab.com/acme/payments//.gitlab-ci.yml@refs/heads/main"


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    require(path is not None, "node (Debian nodejs)")
    require((PEERS / "node_modules" / "@sigstore" / "mock").is_dir(), "@sigstore/mock (npm ci)")
    assert path is not None
    return path


@pytest.fixture(scope="module")
def stack(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sigstore_stack.Stack]:
    running = sigstore_stack.start(node, tmp_path_factory.mktemp("sigstore-stack"))
    yield running
    running.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, isolated_docker_config: Path) -> None:
    for name in (
        "SIGSTORE_ID_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "GITHUB_ACTIONS",
    ):
        monkeypatch.delenv(name, raising=False)


CI_ENV = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/payments",
    "GITHUB_SHA": "a" * 40,
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_WORKFLOW_REF": "acme/payments/.github/workflows/release.yml@refs/heads/main",
    "GITHUB_RUN_ID": "1001",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_EVENT_NAME": "push",
}


def in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of a GitHub Actions push to main, which provenance describes."""
    for name, value in CI_ENV.items():
        monkeypatch.setenv(name, value)


def sign_provenance(
    stack: sigstore_stack.Stack,
    ref: Reference,
    out_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``sign --keyless --provenance --report-dir out_dir`` as release.yml; it must succeed."""
    token = stack.issuer.token(oidc.github_claims())
    code = sign(stack, str(ref), "--identity-token", token, "--provenance",
                "--report-dir", str(out_dir))  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Attached signed SLSA provenance to 1 image;" in out


def sign(stack: sigstore_stack.Stack, image: str, *extra: str, root: Path | None = None) -> int:
    """``sealgate sign IMAGE --keyless`` against the stack (``root``: another trusted root)."""
    return main(
        ["sign", image, "--keyless", "--signing-config", str(stack.config_path),
         "--trusted-root", str(root or stack.root_path), *extra]
    )  # fmt: skip


def legacy_layer(registry: RegistryServer, ref: Reference) -> tuple[bytes, dict[str, str]]:
    client = registry.client()
    found = client.find_manifest(ref.repository, signatures.attachment_tag(ref.digest or ""))
    assert found is not None
    (layer,) = signatures.parse_signature_manifest(found.json())
    return client.get_blob(ref.repository, layer.digest), dict(layer.annotations)


def referrer_bundle(registry: RegistryServer, ref: Reference) -> bytes:
    client = registry.client()
    (found,) = [
        d
        for d in client.referrers(ref.repository, ref.digest or "")
        if d.artifact_type == signatures.BUNDLE_MEDIA_TYPE
    ]
    manifest = client.get_manifest(ref.repository, found.digest).json()
    assert manifest["subject"]["digest"] == ref.digest
    return client.get_blob(ref.repository, manifest["layers"][0]["digest"])


def nothing_attached(registry: RegistryServer, ref: Reference) -> bool:
    return registry.client().list_tags(ref.repository) == ["latest"]


def token_free(text: str, stack: sigstore_stack.Stack) -> bool:
    """No identity token (or the runner's request token) in ``text``, except in the
    ``::add-mask::`` line that tells the runner to hide it."""
    shown = "\n".join(line for line in text.splitlines() if not line.startswith("::add-mask::"))
    return stack.issuer.request_token not in shown and ".eyJ" not in shown


def js_verify(node: str, bundle: Path, root: Path, digest: str, san: str, issuer: str) -> Any:
    return subprocess.run(
        [node, str(PEERS / "sigstore-peer.mjs"), "verify-keyless", str(bundle), str(root),
         digest, san, issuer],
        capture_output=True, text=True, timeout=60, cwd=PEERS, check=False,
    )  # fmt: skip
