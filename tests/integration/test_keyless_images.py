"""Keyless-signed images in a real registry, through ``verify`` and ``gate``.

Images pushed to docker-registry are signed the way cosign v2 signs in CI:
a Fulcio-style certificate for the workflow's identity and a Rekor-style log
entry, in the ``.sig`` layer's annotations (tests/sigstore_local.py makes
them, with a trusted root of its own). The policy names the identity; a
wrong identity, issuer or claim turns the image UNTRUSTED.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.cli import main
from tests.sigstore_local import GITHUB, LocalSigstore, attach_keyless

from .conftest import RegistryServer, push_random_image

pytestmark = pytest.mark.integration
WORKFLOW = "https://github.com/acme/payments/.github/workflows/release.yml@refs/heads/main"
REPO_CLAIM = 12  # source_repository_uri
RUNNER_CLAIM = 11  # runner_environment


@pytest.fixture
def signed(registry: RegistryServer, tmp_path: Path) -> tuple[str, Path]:
    """One image signed keylessly by the release workflow; the root that vouches for it."""
    local = LocalSigstore()
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(local.trusted_root()))
    key, cert = local.certificate(
        WORKFLOW,
        GITHUB,
        {REPO_CLAIM: "https://github.com/acme/payments", RUNNER_CLAIM: "github-hosted"},
    )
    ref = push_random_image(registry, "acme/keyless-app", "1.0")
    with registry.client() as client:
        attach_keyless(client, ref, lambda payload: local.sign(payload, key, cert))
    return f"{ref.name}:{ref.tag}@{ref.digest}", root


def _policy(tmp_path: Path, root: Path, keyless: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"version: 1\ntrust: {{roots: [{root}]}}\n"
        f"signers:\n  - name: release\n    keyless: {keyless}\n    level: 2\n"
        "rules:\n  - match: '**'\n    require: {signers: [release]}\n    tlog: required\n"
    )
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert out, err
    return code, json.loads(out)[0]


def test_a_keyless_signed_image_verifies_and_gates_for_its_identity(
    signed: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, root = signed
    claims = (
        "{source_repository_uri: 'https://github.com/acme/payments', "
        "runner_environment: github-hosted}"
    )
    policy = _policy(
        tmp_path, root, f"{{issuer: '{GITHUB}', subject: '{WORKFLOW}', claims: {claims}}}"
    )
    code, result = _run(capsys, "verify", image, "--policy", str(policy), "-o", "json")
    assert (code, result["status"]) == (0, "TRUSTED"), result["reason"]
    assert result["signer"] == {
        "key_id": None,
        "name": "release",
        "identity": WORKFLOW,
        "issuer": GITHUB,
    }
    compose = tmp_path / "compose.yaml"
    compose.write_text(f"services:\n  app:\n    image: {image}\n")
    code, result = _run(capsys, "gate", str(compose), "--policy", str(policy), "-o", "json")
    assert (code, result["status"]) == (0, "TRUSTED"), result["reason"]
    # cosign's flags, without a policy file
    code, result = _run(
        capsys, "verify", image, "-o", "json", "--trusted-root", str(root),
        "--certificate-identity-regexp", r"https://github\.com/acme/payments/.*",
        "--certificate-oidc-issuer", GITHUB,
    )  # fmt: skip
    assert (code, result["status"]) == (0, "TRUSTED"), result["reason"]


@pytest.mark.parametrize(
    ("keyless", "reason"),
    [
        (f"{{issuer: '{GITHUB}', subject: '{WORKFLOW}x'}}", "identity"),
        (f"{{issuer: 'https://gitlab.com', subject: '{WORKFLOW}'}}", "issuer"),
        (f"{{issuer: '{GITHUB}', subject_regex: 'https://github.com/acme'}}", "anchored"),
        (
            f"{{issuer: '{GITHUB}', subject: '{WORKFLOW}', claims: "
            "{runner_environment: self-hosted}}",
            "runner_environment",
        ),
    ],
)
def test_a_wrong_identity_issuer_or_claim_is_untrusted(
    signed: tuple[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    keyless: str,
    reason: str,
) -> None:
    image, root = signed
    policy = _policy(tmp_path, root, keyless)
    code, result = _run(capsys, "verify", image, "--policy", str(policy), "-o", "json")
    assert (code, result["status"]) == (1, "UNTRUSTED"), result
    assert reason in result["reason"], result["reason"]


def test_a_root_that_does_not_vouch_for_the_ca_is_untrusted(
    signed: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image, _ = signed
    other = tmp_path / "other_root.json"
    other.write_text(json.dumps(LocalSigstore().trusted_root()))
    policy = _policy(tmp_path, other, f"{{issuer: '{GITHUB}', subject: '{WORKFLOW}'}}")
    code, result = _run(capsys, "verify", image, "--policy", str(policy), "-o", "json")
    assert (code, result["status"]) == (1, "UNTRUSTED"), result
