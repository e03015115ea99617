"""Sign keylessly, then gate by identity: the whole loop through `sealgate verify` and `gate`.

`sealgate sign --keyless` signs against the local Sigstore stack (@sigstore/mock's
Fulcio and a Rekor with a real Merkle tree, tests/servers/sigstore_stack.py) in
both forms: cosign v2's keyless `.sig` layer and a cosign v3 Sigstore bundle as
an OCI 1.1 referrer (docker-registry has no referrers API: the tag schema).
Each form alone must be TRUSTED through `verify` and `gate` for the policy that
`policy init --from-github` writes, and flipping the identity must fail the gate.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gate.cli import main
from gate.refs import Reference
from tests.servers import oidc, sigstore_stack

from .conftest import RegistryServer
from .keyless import GITHUB_SAN, clean_env, node, sign, stack

pytestmark = pytest.mark.integration
__all__ = ["clean_env", "node", "stack"]  # fixtures, used by name


def _gate(capsys: pytest.CaptureFixture[str], image: str, policy: Path, tmp: Path) -> dict:
    compose = tmp / "compose.yaml"
    compose.write_text(f"services:\n  app:\n    image: {image}\n")
    main(["gate", str(compose), "--policy", str(policy), "-o", "json"])
    out, err = capsys.readouterr()
    assert out, err
    return json.loads(out)[0]


@pytest.mark.parametrize("form", ["legacy", "bundle"])
def test_keyless_signed_images_pass_the_gate_for_their_workflow_only(
    form: str,
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = push_random_image(registry, f"keyless/gate-{form}")
    token = stack.issuer.token(oidc.github_claims())
    assert sign(stack, str(ref), "--identity-token", token, "--format", form) == 0
    image = f"{ref.name}:{ref.tag}@{ref.digest}"

    policy = tmp_path / "policy.yaml"
    assert main(["policy", "init", "--from-github", "acme/payments/release.yml",
                 "-o", str(policy)]) == 0  # fmt: skip
    text = policy.read_text()
    policy.write_text(
        text.replace("version: 1\n", f"version: 1\ntrust:\n  roots: [{stack.root_path}]\n", 1)
    )
    capsys.readouterr()

    main(["verify", image, "--policy", str(policy), "-o", "json"])
    result = json.loads(capsys.readouterr().out)[0]
    assert result["status"] == "TRUSTED", result["reason"]
    assert result["signer"]["identity"] == GITHUB_SAN
    assert result["signer"]["issuer"] == oidc.GITHUB_ISSUER
    assert _gate(capsys, image, policy, tmp_path)["status"] == "TRUSTED"

    flipped = tmp_path / "flipped.yaml"
    flipped.write_text(policy.read_text().replace("acme/payments", "acme/other"))
    result = _gate(capsys, image, flipped, tmp_path)
    assert result["status"] == "UNTRUSTED", result
