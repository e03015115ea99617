"""`sealgate sign --keyless` against a whole Sigstore stack on loopback (issue 12).

The stack (tests/servers/sigstore_stack.py): our OIDC issuer and GitHub's
runner token endpoint, @sigstore/mock's Fulcio (which checks the token's
signature and the proof of possession) and a Rekor with a real Merkle tree.
What Sealgate signs must verify with four independent checks: gate.sigstore,
sigstore-python's Verifier, sigstore-js @sigstore/verify and (where built)
cosign v3. Every failure must attach nothing to the registry.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gate import signatures
from gate.cli import main
from gate.refs import Reference
from gate.sigstore import Identity, KeylessError, TrustedRoot, verify_bundle, verify_cosign_keyless
from tests.servers import oidc, sigstore_stack

from .conftest import RegistryServer
from .keyless import (
    GITHUB_SAN,
    GITLAB_SAN,
    clean_env,
    js_verify,
    legacy_layer,
    node,
    nothing_attached,
    referrer_bundle,
    sign,
    stack,
)

pytestmark = pytest.mark.integration
__all__ = ["clean_env", "node", "stack"]  # fixtures, used by name


def test_keyless_both_forms_verify_with_four_verifiers(
    stack: sigstore_stack.Stack,
    node: str,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from sigstore.models import Bundle
    from sigstore.models import TrustedRoot as PyRoot
    from sigstore.verify import Verifier, policy

    ref = push_random_image(registry, "keyless/both")
    token = stack.issuer.token(oidc.github_claims())
    assert sign(stack, str(ref), "--identity-token", token, "--format", "both") == 0
    out, err = capsys.readouterr()
    assert token not in out + err + caplog.text
    assert GITHUB_SAN in out and f"{stack.rekor.url}/api/v1/log/entries/" in out
    roots = TrustedRoot.load(stack.root_path)
    who = Identity(issuer=oidc.GITHUB_ISSUER, subject=GITHUB_SAN)

    payload, notes = legacy_layer(registry, ref)
    cert = notes["dev.sigstore.cosign/certificate"].encode()
    sig = signatures.decode_b64(notes[signatures.SIGNATURE_ANNOTATION], "sig")
    done = verify_cosign_keyless(
        payload, sig, cert, notes["dev.sigstore.cosign/chain"].encode(),
        notes["dev.sigstore.cosign/bundle"].encode(), identity=who, roots=roots,
    )  # fmt: skip
    assert done.identity == GITHUB_SAN and done.log_index is not None
    assert done.extensions["runner_environment"] == "github-hosted"
    assert signatures.parse_payload(payload).digest == ref.digest

    bundle = referrer_bundle(registry, ref)
    assert (
        verify_bundle(
            bundle, ref.digest or "", identity=who, key=None, roots=roots, require_tlog=True
        ).identity
        == GITHUB_SAN
    )
    other = Identity(issuer=oidc.GITHUB_ISSUER, subject=GITHUB_SAN.replace("payments", "other"))
    with pytest.raises(KeylessError):
        verify_bundle(bundle, ref.digest or "", identity=other, key=None, roots=roots)

    verifier = Verifier(trusted_root=PyRoot.from_file(str(stack.root_path)))
    _, statement = verifier.verify_dsse(
        Bundle.from_json(bundle), policy.Identity(identity=GITHUB_SAN, issuer=oidc.GITHUB_ISSUER)
    )
    assert (ref.digest or "").split(":")[1] in statement.decode()

    path = tmp_path / "bundle.json"
    path.write_bytes(bundle)
    args = (node, path, stack.root_path, ref.digest or "")
    ok = js_verify(*args, GITHUB_SAN, oidc.GITHUB_ISSUER)
    assert ok.returncode == 0, ok.stderr
    assert js_verify(*args, GITLAB_SAN, oidc.GITHUB_ISSUER).returncode == 1
    assert stack.rekor.leaves and len(stack.rekor.leaves) >= 2


def test_github_runner_endpoint_and_mask(
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = push_random_image(registry, "keyless/github")
    for name, value in stack.issuer.runner_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    before = len(stack.issuer.requests)
    assert sign(stack, str(ref)) == 0
    out, _ = capsys.readouterr()
    assert stack.issuer.requests[before:] == [("/_apis/token", 200)]
    mask = [line for line in out.splitlines() if line.startswith("::add-mask::")]
    assert len(mask) == 1 and mask[0].count(".") == 2  # the JWT, masked before any use
    _, notes = legacy_layer(registry, ref)
    assert "dev.sigstore.cosign/bundle" in notes and "dev.sigstore.cosign/chain" in notes


def test_gitlab_token_from_env(
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = push_random_image(registry, "keyless/gitlab")
    token = stack.issuer.token(oidc.gitlab_claims(), issuer="https://gitlab.com")
    monkeypatch.setenv("SIGSTORE_ID_TOKEN", token)
    assert sign(stack, str(ref), "--format", "bundle") == 0
    assert GITLAB_SAN in capsys.readouterr().out
    who = Identity(issuer="https://gitlab.com", subject=GITLAB_SAN)
    roots = TrustedRoot.load(stack.root_path)
    bundle = referrer_bundle(registry, ref)
    assert verify_bundle(bundle, ref.digest or "", identity=who, key=None, roots=roots).issuer == (
        "https://gitlab.com"
    )


FAULTS = [
    # (name, exit code, the words the one sentence must contain)
    ("no-token", 2, "needs an identity token"),
    ("expired", 2, "expired"),
    ("audience", 2, "audience"),
    ("foreign-signer", 3, "Fulcio"),
    ("fulcio-closed", 3, "unreachable"),
    ("fulcio-500", 3, "HTTP 500"),
    ("fulcio-400", 3, "HTTP 400"),
    ("fulcio-other-key", 3, "another key"),
    ("rekor-closed", 3, "unreachable"),
    ("rekor-500", 3, "HTTP 500"),
    ("rekor-other-entry", 3, "not the one sent"),
    ("rekor-forged-set", 3, "SET"),
    ("github-no-permission", 3, "id-token: write"),
    ("root-without-ca", 3, "trusted root does not accept"),
]


@pytest.mark.parametrize(("fault", "code", "words"), FAULTS, ids=[f[0] for f in FAULTS])
def test_failures_attach_nothing(
    fault: str,
    code: int,
    words: str,
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    ref = push_random_image(registry, f"keyless/fault-{fault}")
    token = stack.issuer.token(oidc.github_claims())
    extra = ["--identity-token", token]
    proxy = None
    other_root: Path | None = None
    if fault == "no-token":
        extra = []
    elif fault == "expired":
        extra = ["--identity-token", stack.issuer.token(oidc.github_claims(), lifetime=-10)]
    elif fault == "audience":
        extra = ["--identity-token", stack.issuer.token(oidc.github_claims(), audience="other")]
    elif fault == "foreign-signer":
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        extra = ["--identity-token", stack.issuer.token(oidc.github_claims(), key=stranger)]
    elif fault == "fulcio-closed":
        extra += ["--fulcio-url", "http://127.0.0.1:9"]
    elif fault.startswith("fulcio-"):
        mode = fault.removeprefix("fulcio-")
        proxy = sigstore_stack.FulcioProxy(stack.fulcio_url, mode)
        extra += ["--fulcio-url", proxy.url]
    elif fault == "rekor-closed":
        extra += ["--rekor-url", "http://127.0.0.1:9"]
    elif fault.startswith("rekor-"):
        monkeypatch.setattr(stack.rekor, "fault", fault.removeprefix("rekor-"))
    elif fault == "root-without-ca":
        doc = json.loads(stack.root_path.read_text())
        doc["certificateAuthorities"] = []
        other_root = tmp_path / "root.json"
        other_root.write_text(json.dumps(doc))
    elif fault == "github-no-permission":
        env = stack.issuer.runner_env()
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", env["ACTIONS_ID_TOKEN_REQUEST_URL"])
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "not-the-runner-token")
        extra = []
    try:
        got = sign(stack, str(ref), "--format", "both", *extra, root=other_root)
    finally:
        if proxy is not None:
            proxy.close()
    out, err = capsys.readouterr()
    assert got == code, err
    assert "Traceback" not in err and words in err, err
    assert token not in out + err
    assert nothing_attached(registry, ref)


def test_rekor_failure_on_second_image_attaches_nothing(
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The first image is certified and logged, the second's Rekor upload fails: no partial push."""
    first = push_random_image(registry, "keyless/first")
    second = push_random_image(registry, "keyless/second")
    token = stack.issuer.token(oidc.github_claims())
    rekor = stack.rekor
    real_add = rekor.add
    calls: list[int] = []

    def flaky(proposed: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        if len(calls) > 1:
            rekor.fault = "other-entry"
        return real_add(proposed)

    monkeypatch.setattr(rekor, "add", flaky)
    monkeypatch.setattr(rekor, "fault", None)
    code = main(
        ["sign", str(first), str(second), "--keyless", "--identity-token", token,
         "--signing-config", str(stack.config_path), "--trusted-root", str(stack.root_path)]
    )  # fmt: skip
    assert code == 3, capsys.readouterr().err
    assert len(calls) == 2
    assert nothing_attached(registry, first) and nothing_attached(registry, second)


@pytest.mark.parametrize("form", ["bundle", "legacy"])
def test_cosign_v3_verifies_keyless_signatures(
    form: str,
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from .peers import Runner, peer

    cosign = Runner(peer("cosign-v3"), tmp_path / "home")
    ref = push_random_image(registry, f"keyless/cosign-{form}")
    token = stack.issuer.token(oidc.github_claims())
    assert sign(stack, str(ref), "--identity-token", token, "--format", form) == 0
    capsys.readouterr()
    image = f"{registry.host}/{ref.repository.path}@{ref.digest}"

    def verify(san: str) -> subprocess.CompletedProcess[str]:
        return cosign.run(
            "verify", "--allow-http-registry", "--trusted-root", str(stack.root_path),
            "--certificate-identity", san, "--certificate-oidc-issuer", oidc.GITHUB_ISSUER,
            *(["--new-bundle-format=false"] if form == "legacy" else []), image,
        )  # fmt: skip

    done = verify(GITHUB_SAN)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "transparency log was verified offline" in done.stderr
    assert verify(GITHUB_SAN.replace("payments", "other")).returncode != 0
