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
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gate import signatures
from gate.cli import main
from gate.refs import Reference
from gate.sigstore import Identity, KeylessError, TrustedRoot, verify_bundle, verify_cosign_keyless
from tests.servers import oidc, sigstore_stack

from ..conftest import ROOT, require
from .conftest import RegistryServer

pytestmark = pytest.mark.integration
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


def sign(stack: sigstore_stack.Stack, image: str, *extra: str) -> int:
    return main(
        ["sign", image, "--keyless", "--signing-config", str(stack.config_path),
         "--trusted-root", str(stack.root_path), *extra]
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
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    ref = push_random_image(registry, f"keyless/fault-{fault}")
    token = stack.issuer.token(oidc.github_claims())
    extra = ["--identity-token", token]
    proxy = None
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
    elif fault == "github-no-permission":
        env = stack.issuer.runner_env()
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", env["ACTIONS_ID_TOKEN_REQUEST_URL"])
        monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "not-the-runner-token")
        extra = []
    try:
        got = sign(stack, str(ref), "--format", "both", *extra)
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


def _identity_of_policy(text: str) -> Identity:
    import yaml

    doc = yaml.safe_load(text)
    (signer,) = doc["signers"]
    keyless = signer["keyless"]
    return Identity(
        issuer=keyless["issuer"],
        subject=keyless.get("subject"),
        subject_regex=keyless.get("subject_regex"),
        claims=keyless.get("claims", {}),
    )


@pytest.mark.parametrize(
    ("spec", "ref", "trusted"),
    [
        ("acme/payments/release.yml", "refs/heads/main", True),
        ("acme/payments", "refs/heads/*", True),
        ("acme/payments/deploy.yml", "refs/heads/main", False),
        ("acme/other/release.yml", "refs/heads/main", False),
        ("acme/payments/release.yml", "refs/tags/v*", False),
    ],
)
def test_policy_init_from_github_matches_the_workflow_certificate(
    spec: str,
    ref: str,
    trusted: bool,
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What `policy init --from-github` writes accepts that workflow's certificate, and only it."""
    image = push_random_image(registry, f"keyless/init-{abs(hash((spec, ref))):x}")
    token = stack.issuer.token(oidc.github_claims())
    assert sign(stack, str(image), "--identity-token", token, "--format", "bundle") == 0
    capsys.readouterr()
    assert main(["policy", "init", "--from-github", spec, "--ref", ref]) == 0
    who = _identity_of_policy(capsys.readouterr().out)
    bundle = referrer_bundle(registry, image)
    roots = TrustedRoot.load(stack.root_path)
    if trusted:
        verify_bundle(bundle, image.digest or "", identity=who, key=None, roots=roots)
    else:
        with pytest.raises(KeylessError):
            verify_bundle(bundle, image.digest or "", identity=who, key=None, roots=roots)


@pytest.mark.parametrize("command", ["sign", "attest"])
def test_action_signs_keylessly_without_a_key(
    command: str,
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No `key` input, the runner's id-token endpoint: summary and status name who signed."""
    import io

    import action
    from tests.servers.github import GitHubServer
    from tests.unit.test_action_workflow import parse_output_file

    ref = push_random_image(registry, f"keyless/action-{command}")
    root, files = tmp_path / "workspace", tmp_path / "files"
    root.mkdir()
    files.mkdir()
    (files / "output").touch()
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"ref": "refs/heads/main", "after": "1" * 40}))
    monkeypatch.chdir(root)
    with GitHubServer() as github:
        env = {
            "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(root),
            "GITHUB_REPOSITORY": "acme/payments", "GITHUB_SHA": "1" * 40,
            "GITHUB_REF": "refs/heads/main", "GITHUB_EVENT_NAME": "push",
            "GITHUB_EVENT_PATH": str(event), "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": github.url, "GITHUB_RUN_ID": "7",
            "GITHUB_OUTPUT": str(files / "output"), "GITHUB_STEP_SUMMARY": str(files / "summary"),
            "PATH": "/usr/bin:/bin", **stack.issuer.runner_env(),
            "SEALGATE_COMMAND": command, "SEALGATE_IMAGES": str(ref),
            "SEALGATE_GITHUB_TOKEN": "ghs_statusToken0123456789",
            "SEALGATE_SIGNING_CONFIG": str(stack.config_path),
            "SEALGATE_TRUSTED_ROOT": str(stack.root_path),
        }  # fmt: skip
        out = io.StringIO()
        code = action.main(env, out)
        (post,) = github.statuses()
    log = out.getvalue() + capsys.readouterr().out
    assert code == 0, log
    outputs = parse_output_file((files / "output").read_text())
    assert outputs["signer"] == GITHUB_SAN
    entries = outputs["rekor-entries"].splitlines()
    # sign: the .sig signature, the bundle signature, the provenance; attest: the provenance
    assert len(entries) == (3 if command == "sign" else 1)
    assert all(e.startswith(stack.rekor.url) for e in entries)
    assert outputs["provenance-path"].endswith("provenance.intoto.jsonl")
    summary = (files / "summary").read_text()
    assert GITHUB_SAN in summary and f"]({entries[0]})" in summary
    status = post.json()
    assert status["state"] == "success" and GITHUB_SAN[:60] in status["description"]
    assert status["target_url"] == entries[0]
    if command == "sign":
        _, notes = legacy_layer(registry, ref)
        assert "dev.sigstore.cosign/certificate" in notes
    att = registry.client().find_manifest(
        ref.repository, signatures.attachment_tag(ref.digest or "", "att")
    )
    assert att is not None
    assert token_free(log + summary + (files / "output").read_text(), stack)


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


def test_keyless_provenance_both_layouts(
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`sign --keyless --provenance`: the .att and the referrer verify (gate, cosign v3)."""
    from .peers import Runner, peer

    for name, value in CI_ENV.items():
        monkeypatch.setenv(name, value)
    ref = push_random_image(registry, "keyless/provenance")
    token = stack.issuer.token(oidc.github_claims())
    out_dir = tmp_path / "out"
    code = sign(stack, str(ref), "--identity-token", token, "--provenance",
                "--report-dir", str(out_dir))  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Attached signed SLSA provenance to 1 image(s)" in out
    roots = TrustedRoot.load(stack.root_path)
    who = Identity(issuer=oidc.GITHUB_ISSUER, subject=GITHUB_SAN)
    slsa = "https://slsa.dev/provenance/v1"

    bundles = [
        d for d in registry.client().referrers(ref.repository, ref.digest or "")
        if d.artifact_type == signatures.BUNDLE_MEDIA_TYPE
    ]  # fmt: skip
    assert len(bundles) == 1  # the provenance; signatures were the legacy form only
    client = registry.client()
    manifest = client.get_manifest(ref.repository, bundles[0].digest).json()
    assert manifest["annotations"]["dev.sigstore.bundle.predicateType"] == slsa
    bundle = client.get_blob(ref.repository, manifest["layers"][0]["digest"])
    done = verify_bundle(
        bundle, ref.digest or "", identity=who, key=None, roots=roots, predicate_type=slsa
    )
    assert done.identity == GITHUB_SAN
    assert (out_dir / "provenance.sigstore.jsonl").read_bytes() == bundle + b"\n"
    assert (out_dir / "provenance.intoto.jsonl").is_file()
    for san, expected in ((GITHUB_SAN, 0), (GITHUB_SAN.replace("main", "dev"), 1)):
        jsonl = str(out_dir / "provenance.sigstore.jsonl")
        cli = ["verify-blob", ref.digest or "", "--bundle", jsonl, "--certificate-identity", san,
               "--certificate-oidc-issuer", oidc.GITHUB_ISSUER,
               "--trusted-root", str(stack.root_path)]  # fmt: skip
        assert main(cli) == expected, capsys.readouterr()
    capsys.readouterr()

    att = client.find_manifest(ref.repository, signatures.attachment_tag(ref.digest or "", "att"))
    assert att is not None
    (layer,) = signatures.parse_signature_manifest(att.json())
    assert {"dev.sigstore.cosign/certificate", "dev.sigstore.cosign/bundle"} <= set(
        layer.annotations
    )

    cosign = Runner(peer("cosign-v3"), tmp_path / "home")
    image = f"{registry.host}/{ref.repository.path}@{ref.digest}"
    for extra in ([], ["--new-bundle-format=false"]):
        done_c = cosign.run(
            "verify-attestation", "--type", "slsaprovenance1", "--allow-http-registry",
            "--trusted-root", str(stack.root_path), "--certificate-identity", GITHUB_SAN,
            "--certificate-oidc-issuer", oidc.GITHUB_ISSUER, *extra, image,
        )  # fmt: skip
        assert done_c.returncode == 0, (extra, done_c.stderr[-2000:])


def test_keyless_provenance_failure_attaches_no_signature_either(
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The image's signature is logged, the provenance's Rekor upload fails: nothing is pushed."""
    for name, value in CI_ENV.items():
        monkeypatch.setenv(name, value)
    ref = push_random_image(registry, "keyless/provenance-fails")
    token = stack.issuer.token(oidc.github_claims())
    rekor = stack.rekor
    real_add = rekor.add

    def signatures_only(proposed: dict[str, Any]) -> dict[str, Any]:
        if proposed["kind"] != "hashedrekord":
            raise ValueError("this log takes no dsse entries today")  # answered as HTTP 400
        return real_add(proposed)

    monkeypatch.setattr(rekor, "add", signatures_only)
    assert sign(stack, str(ref), "--identity-token", token, "--provenance") == 3
    assert "refused the entry (HTTP 400)" in capsys.readouterr().err
    assert nothing_attached(registry, ref)


def test_tsa_timestamps_verify_everywhere(
    stack: sigstore_stack.Stack,
    node: str,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--tsa-url: an RFC 3161 timestamp per signature, checked by gate, sigstore-python, js."""
    from sigstore.models import Bundle
    from sigstore.models import TrustedRoot as PyRoot
    from sigstore.verify import Verifier, policy

    ref = push_random_image(registry, "keyless/tsa")
    token = stack.issuer.token(oidc.github_claims())
    args = ("--identity-token", token, "--format", "both", "--tsa-url", stack.tsa_url)
    assert sign(stack, str(ref), *args) == 0, capsys.readouterr().err
    roots = TrustedRoot.load(stack.root_path)
    who = Identity(issuer=oidc.GITHUB_ISSUER, subject=GITHUB_SAN)

    payload, notes = legacy_layer(registry, ref)
    stamp = notes["dev.sigstore.cosign/rfc3161timestamp"].encode()
    sig = signatures.decode_b64(notes[signatures.SIGNATURE_ANNOTATION], "sig")
    cert = notes["dev.sigstore.cosign/certificate"].encode()
    done = verify_cosign_keyless(
        payload, sig, cert, None, None, identity=who, roots=roots, rfc3161_timestamp_json=stamp
    )
    assert done.time_source == "signed timestamp"

    bundle = referrer_bundle(registry, ref)
    doc = json.loads(bundle)
    assert doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    checked = verify_bundle(bundle, ref.digest or "", identity=who, key=None, roots=roots)
    assert "signed timestamp" in checked.checks
    Verifier(trusted_root=PyRoot.from_file(str(stack.root_path))).verify_dsse(
        Bundle.from_json(bundle), policy.Identity(identity=GITHUB_SAN, issuer=oidc.GITHUB_ISSUER)
    )
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle)
    ok = js_verify(node, path, stack.root_path, ref.digest or "", GITHUB_SAN, oidc.GITHUB_ISSUER)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("fault", ["closed", "500", "untrusted"])
def test_tsa_failures_attach_nothing(
    fault: str,
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = push_random_image(registry, f"keyless/tsa-{fault}")
    token = stack.issuer.token(oidc.github_claims())
    root = stack.root_path
    proxy = None
    tsa = stack.tsa_url
    if fault == "closed":
        tsa = "http://127.0.0.1:9/api/v1/timestamp"
    elif fault == "500":
        proxy = sigstore_stack.FulcioProxy(stack.fulcio_url, "500")
        tsa = proxy.url + "/api/v1/timestamp"
    else:  # a root without the TSA: its timestamps are not trusted
        doc = json.loads(root.read_text())
        doc["timestampAuthorities"] = []
        root = tmp_path / "root-without-tsa.json"
        root.write_text(json.dumps(doc))
    try:
        code = main(
            ["sign", str(ref), "--keyless", "--identity-token", token, "--signing-config",
             str(stack.config_path), "--trusted-root", str(root), "--tsa-url", tsa]
        )  # fmt: skip
    finally:
        if proxy is not None:
            proxy.close()
    err = capsys.readouterr().err
    assert code == 3, err
    assert "timestamp authority" in err and "Traceback" not in err
    assert nothing_attached(registry, ref)
