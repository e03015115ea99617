"""cosign v3 signs keylessly against the local Sigstore stack; Sealgate verifies (issue 13).

The stack is the one `sealgate sign --keyless` is tested against
(tests/servers/sigstore_stack.py: our OIDC issuer, @sigstore/mock's Fulcio, a
Rekor with a real Merkle tree); cosign gets it through a signing config and
its trusted root, and talks to nothing else.
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
from .keyless import GITHUB_SAN, clean_env, node, stack

pytestmark = pytest.mark.integration
__all__ = ["clean_env", "node", "stack"]  # fixtures, used by name


def test_sealgate_verifies_what_cosign_v3_signs_keylessly(
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from .peers import Runner, peer

    cosign = Runner(peer("cosign-v3"), tmp_path / "home")
    ref = push_random_image(registry, "keyless/by-cosign")
    image = f"{registry.host}/{ref.repository.path}@{ref.digest}"
    token = stack.issuer.token(oidc.github_claims())
    done = cosign.run(
        "sign", "--yes", "--allow-http-registry", "--signing-config", str(stack.config_path),
        "--trusted-root", str(stack.root_path), "--identity-token", token, image,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    def verify(san: str) -> dict:
        main(
            ["verify", image, "-o", "json", "--trusted-root", str(stack.root_path),
             "--certificate-identity", san, "--certificate-oidc-issuer", oidc.GITHUB_ISSUER]
        )  # fmt: skip
        return json.loads(capsys.readouterr().out)[0]

    result = verify(GITHUB_SAN)
    assert result["status"] == "TRUSTED", result["reason"]
    assert result["signer"]["identity"] == GITHUB_SAN
    assert verify(GITHUB_SAN.replace("payments", "other"))["status"] == "UNTRUSTED"
