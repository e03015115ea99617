"""`sealgate sign --keyless` against Rekor v2 (rekor-tiles API) on loopback (issue 12).

The stack's signing config lists a v1 and a v2 log and a TSA; Sealgate must
pick v2, log the DSSE envelope as a hashedrekord v0.0.2 over its PAE, check
the answer (body, inclusion proof, Ed25519-signed checkpoint) and write a
bundle with the v2 entry and an RFC 3161 timestamp. Verified by gate.sigstore
(`sealgate verify`), sigstore-python's Verifier and cosign v3. Every failure
attaches nothing.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.cli import main
from gate.refs import Reference
from tests.servers import oidc, sigstore_stack

from .conftest import RegistryServer
from .keyless import GITHUB_SAN, clean_env, node, nothing_attached, referrer_bundle, sign

pytestmark = pytest.mark.integration
__all__ = ["clean_env", "node"]  # fixtures, used by name


@pytest.fixture(scope="module")
def stack(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[sigstore_stack.Stack]:
    running = sigstore_stack.start(
        node, tmp_path_factory.mktemp("sigstore-stack-v2"), rekor_v2=True
    )
    yield running
    running.close()


def _v2(stack: sigstore_stack.Stack) -> sigstore_stack.rekor.RekorV2:
    assert stack.rekor_v2 is not None
    return stack.rekor_v2


def _legacy_tags(registry: RegistryServer, ref: Reference) -> list[str]:
    """cosign ``.sig``/``.att`` tags (the ``sha256-<hex>`` tag is the referrers fallback index)."""
    tags = registry.client().list_tags(ref.repository)
    return [t for t in tags if t.endswith((".sig", ".att"))]


def _verify(
    image: str, stack: sigstore_stack.Stack, san: str, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    """`sealgate verify IMAGE -o json` with the stack's root and that identity."""
    code = main(
        ["verify", image, "-o", "json", "--trusted-root", str(stack.root_path),
         "--certificate-identity", san, "--certificate-oidc-issuer", oidc.GITHUB_ISSUER]
    )  # fmt: skip
    result: dict[str, Any] = json.loads(capsys.readouterr().out)[0]
    assert (code == 0) == (result["status"] == "TRUSTED")
    return result


def test_v2_bundle_verifies_with_sealgate_sigstore_python_and_cosign(
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sigstore.models import Bundle
    from sigstore.models import TrustedRoot as PyRoot
    from sigstore.verify import Verifier, policy

    ref = push_random_image(registry, "keyless-v2/bundle")
    token = stack.issuer.token(oidc.github_claims())
    v1_before, v2_before = stack.rekor.posts, _v2(stack).posts
    assert sign(stack, str(ref), "--identity-token", token) == 0  # no --format: the bundle
    out, err = capsys.readouterr()
    assert token not in out + err
    assert GITHUB_SAN in out and _v2(stack).url in out
    assert (stack.rekor.posts, _v2(stack).posts) == (v1_before, v2_before + 1)
    assert not _legacy_tags(registry, ref)  # a referrer only

    bundle = referrer_bundle(registry, ref)
    doc = json.loads(bundle)
    (entry,) = doc["verificationMaterial"]["tlogEntries"]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    assert "inclusionPromise" not in entry and "integratedTime" not in entry
    assert entry["inclusionProof"]["checkpoint"]["envelope"].startswith("127.0.0.1\n")
    assert base64.b64decode(entry["logId"]["keyId"]) == _v2(stack).log_id
    assert len(doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]) == 1

    image = f"{registry.host}/{ref.repository.path}@{ref.digest}"
    result = _verify(image, stack, GITHUB_SAN, capsys)
    assert result["status"] == "TRUSTED", result["reason"]
    other = GITHUB_SAN.replace("payments", "other")
    assert _verify(image, stack, other, capsys)["status"] == "UNTRUSTED"

    verifier = Verifier(trusted_root=PyRoot.from_file(str(stack.root_path)))
    _, statement = verifier.verify_dsse(
        Bundle.from_json(bundle), policy.Identity(identity=GITHUB_SAN, issuer=oidc.GITHUB_ISSUER)
    )
    assert (ref.digest or "").split(":")[1] in statement.decode()

    from .peers import Runner, peer

    cosign = Runner(peer("cosign-v3"), tmp_path / "home")

    def cosign_verify(san: str) -> subprocess.CompletedProcess[str]:
        return cosign.run(
            "verify", "--allow-http-registry", "--trusted-root", str(stack.root_path),
            "--certificate-identity", san, "--certificate-oidc-issuer", oidc.GITHUB_ISSUER,
            image,
        )  # fmt: skip

    done = cosign_verify(GITHUB_SAN)
    assert done.returncode == 0, done.stderr[-2000:]
    assert cosign_verify(other).returncode != 0


def test_both_writes_the_bundle_only_and_says_so(
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ref = push_random_image(registry, "keyless-v2/both")
    token = stack.issuer.token(oidc.github_claims())
    assert sign(stack, str(ref), "--identity-token", token, "--format", "both") == 0
    capsys.readouterr()
    assert "writing the Sigstore bundle (OCI referrer) only" in caplog.text
    assert not _legacy_tags(registry, ref)
    assert json.loads(referrer_bundle(registry, ref))["mediaType"].endswith("v0.3+json")


def _config_without_tsa(stack: sigstore_stack.Stack, tmp_path: Path) -> Path:
    doc = json.loads(stack.config_path.read_text())
    doc["tsaUrls"] = []
    path = tmp_path / "no-tsa.json"
    path.write_text(json.dumps(doc))
    return path


USAGE = [
    ("legacy", "legacy .sig form needs a Rekor v1"),
    ("no-tsa", "needs a timestamp authority"),
]


@pytest.mark.parametrize(("case", "words"), USAGE, ids=[u[0] for u in USAGE])
def test_usage_errors_reach_no_log(
    case: str,
    words: str,
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = push_random_image(registry, f"keyless-v2/usage-{case}")
    token = stack.issuer.token(oidc.github_claims())
    before = _v2(stack).posts
    if case == "legacy":
        args = ["--format", "legacy", "--signing-config", str(stack.config_path)]
    else:
        args = ["--signing-config", str(_config_without_tsa(stack, tmp_path))]
    code = main(
        ["sign", str(ref), "--keyless", "--identity-token", token,
         "--trusted-root", str(stack.root_path), *args]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 2, err
    assert words in err and "Traceback" not in err and token not in out + err
    assert _v2(stack).posts == before
    assert nothing_attached(registry, ref)


FAULTS = [
    ("500", "refused the entry (HTTP 500)"),
    ("other-entry", "not the one sent"),
    ("forged-checkpoint", "checkpoint is not signed by the log"),
    ("bad-proof", "inclusion proof does not reach"),
    ("closed", "unreachable"),
    ("unlisted", "does not list"),
]


@pytest.mark.parametrize(("fault", "words"), FAULTS, ids=[f[0] for f in FAULTS])
def test_v2_faults_attach_nothing(
    fault: str,
    words: str,
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = push_random_image(registry, f"keyless-v2/fault-{fault}")
    token = stack.issuer.token(oidc.github_claims())
    extra = ["--identity-token", token]
    root: Path | None = None
    if fault == "closed":
        extra += ["--rekor-url", "http://127.0.0.1:9"]
    elif fault == "unlisted":  # a root that knows the v1 log and the CA, not the v2 log
        doc = json.loads(stack.root_path.read_text())
        doc["tlogs"] = [t for t in doc["tlogs"] if t["baseUrl"] != _v2(stack).url]
        root = tmp_path / "root.json"
        root.write_text(json.dumps(doc))
    else:
        monkeypatch.setattr(_v2(stack), "fault", fault)
    got = sign(stack, str(ref), "--format", "bundle", *extra, root=root)
    out, err = capsys.readouterr()
    assert got == 3, err
    assert words in err and "Traceback" not in err and token not in out + err
    assert nothing_attached(registry, ref)


def test_v2_provenance_is_a_bundle_referrer_only(
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`sign --provenance` with Rekor v2: signature and provenance bundles, no .sig/.att."""
    from .keyless import in_ci, sign_provenance
    from .peers import Runner, peer

    in_ci(monkeypatch)
    ref = push_random_image(registry, "keyless-v2/provenance")
    out_dir = tmp_path / "out"
    sign_provenance(stack, ref, out_dir, capsys)
    assert not _legacy_tags(registry, ref)
    client = registry.client()
    kinds = sorted(
        client.get_manifest(ref.repository, d.digest).json()["annotations"][
            "dev.sigstore.bundle.predicateType"
        ]
        for d in client.referrers(ref.repository, ref.digest or "")
    )
    slsa = "https://slsa.dev/provenance/v1"
    assert kinds == ["https://sigstore.dev/cosign/sign/v1", slsa]
    for san, expected in ((GITHUB_SAN, 0), (GITHUB_SAN.replace("main", "dev"), 1)):
        cli = ["verify-blob", ref.digest or "", "--bundle",
               str(out_dir / "provenance.sigstore.jsonl"), "--certificate-identity", san,
               "--certificate-oidc-issuer", oidc.GITHUB_ISSUER,
               "--trusted-root", str(stack.root_path)]  # fmt: skip
        assert main(cli) == expected, capsys.readouterr()
    capsys.readouterr()

    cosign = Runner(peer("cosign-v3"), tmp_path / "home")
    done = cosign.run(
        "verify-attestation", "--type", "slsaprovenance1", "--allow-http-registry",
        "--trusted-root", str(stack.root_path), "--certificate-identity", GITHUB_SAN,
        "--certificate-oidc-issuer", oidc.GITHUB_ISSUER,
        f"{registry.host}/{ref.repository.path}@{ref.digest}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
