"""Keyless signing in CI (issue 12): policy init, the Action, provenance, timestamps.

Same loopback stack as test_keyless_sign.py (tests/integration/keyless.py).
"""

from __future__ import annotations

import json
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
    clean_env,
    in_ci,
    js_verify,
    legacy_layer,
    node,
    nothing_attached,
    referrer_bundle,
    sign,
    sign_provenance,
    stack,
    token_free,
)

pytestmark = pytest.mark.integration
__all__ = ["clean_env", "node", "stack"]  # fixtures, used by name


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

    in_ci(monkeypatch)
    ref = push_random_image(registry, "keyless/provenance")
    out_dir = tmp_path / "out"
    sign_provenance(stack, ref, out_dir, capsys)
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
    in_ci(monkeypatch)
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


def _keyless_policy(path: Path, stack: sigstore_stack.Stack, san: str) -> Path:
    path.write_text(
        f"version: 1\ntrust:\n  roots: [{stack.root_path}]\nsigners:\n  - name: release\n"
        f"    keyless:\n      issuer: {oidc.GITHUB_ISSUER}\n      subject: {san}\n"
        'rules:\n  - match: "**"\n    require: {signers: [release], threshold: 1}\n'
    )
    return path


def _signed_and_gated(
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    repository: str,
) -> tuple[Reference, Path, Path]:
    """An image signed keylessly by release.yml, a policy trusting it, a Compose file naming it."""
    in_ci(monkeypatch)
    ref = push_random_image(registry, repository)
    assert sign(stack, str(ref), "--identity-token", stack.issuer.token(oidc.github_claims())) == 0
    policy = _keyless_policy(tmp_path / "policy.yaml", stack, GITHUB_SAN)
    compose = tmp_path / "compose.yaml"
    compose.write_text(f"services:\n  app:\n    image: {ref.name}@{ref.digest}\n")
    return ref, policy, compose


def test_gate_signs_its_verification_summary_keylessly(
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`gate --keyless`: the VSA is certified for the gate job's identity and logged in Rekor;
    its bundle verifies with verify-blob for that identity only, and with sigstore-js."""
    from gate.provenance import VSA_V1

    ref, policy, compose = _signed_and_gated(stack, registry, push_random_image, tmp_path,
                                             monkeypatch, "keyless/vsa")  # fmt: skip
    gate_claims = oidc.github_claims(workflow="gate.yml")
    gate_san = GITHUB_SAN.replace("release.yml", "gate.yml")
    token = stack.issuer.token(gate_claims)
    out_dir = tmp_path / "reports"
    capsys.readouterr()
    code = main(
        ["gate", str(compose), "--policy", str(policy), "--report-dir", str(out_dir),
         "--keyless", "--identity-token", token, "--signing-config", str(stack.config_path)]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert f"Verification summary signed as {gate_san}; Rekor entry: {stack.rekor.url}" in err
    assert token_free(out + err, stack)
    bundle_file = out_dir / "vsa.sigstore.jsonl"
    envelope = json.loads((out_dir / "vsa.intoto.jsonl").read_text())
    assert not (out_dir / "vsa.json").exists()
    statement = json.loads(__import__("base64").b64decode(envelope["payload"]))
    assert statement["predicateType"] == VSA_V1
    assert statement["predicate"]["verificationResult"] == "PASSED"
    bundle = bundle_file.read_bytes().strip()
    assert json.loads(bundle)["dsseEnvelope"] == envelope

    roots = TrustedRoot.load(stack.root_path)
    who = Identity(issuer=oidc.GITHUB_ISSUER, subject=gate_san)
    done = verify_bundle(bundle, ref.digest or "", identity=who, key=None, roots=roots,
                         predicate_type=VSA_V1)  # fmt: skip
    assert done.identity == gate_san
    for san, expected in ((gate_san, 0), (GITHUB_SAN, 1)):
        cli = ["verify-blob", ref.digest or "", "--bundle", str(bundle_file),
               "--certificate-identity", san, "--certificate-oidc-issuer", oidc.GITHUB_ISSUER,
               "--trusted-root", str(stack.root_path)]  # fmt: skip
        assert main(cli) == expected, capsys.readouterr()


@pytest.mark.parametrize("fault", ["no-token", "fulcio-500", "flag-without-keyless", "both"])
def test_gate_keyless_vsa_failures_are_one_sentence(
    fault: str,
    stack: sigstore_stack.Stack,
    registry: RegistryServer,
    push_random_image: Callable[..., Reference],
    clean_env: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Configuration errors stop before any image is read (exit 2); a Fulcio failure at
    signing time is exit 3 and leaves no signed summary behind."""
    _, policy, compose = _signed_and_gated(stack, registry, push_random_image, tmp_path,
                                             monkeypatch, f"keyless/vsa-{fault}")  # fmt: skip
    out_dir = tmp_path / "reports"
    token = stack.issuer.token(oidc.github_claims(workflow="gate.yml"))
    args = ["gate", str(compose), "--policy", str(policy), "--report-dir", str(out_dir)]
    proxy = None
    if fault == "no-token":
        args += ["--keyless", "--signing-config", str(stack.config_path)]
    elif fault == "fulcio-500":
        # An earlier run's summary in a reused report directory must not outlive this one.
        out_dir.mkdir()
        for stale in ("vsa.intoto.jsonl", "vsa.sigstore.jsonl", "vsa.json"):
            (out_dir / stale).write_text('{"verificationResult": "PASSED"}\n')
        proxy = sigstore_stack.FulcioProxy(stack.fulcio_url, "500")
        args += ["--keyless", "--identity-token", token, "--fulcio-url", proxy.url,
                 "--rekor-url", stack.rekor.url]  # fmt: skip
    elif fault == "flag-without-keyless":
        args += ["--identity-token", token]
    else:
        key = tmp_path / "k"
        assert main(["keys", "generate", "--no-password", "--out", str(key)]) == 0
        args += ["--keyless", "--key", f"{key}.key", "--identity-token", token]
    capsys.readouterr()
    try:
        code = main(args)
    finally:
        if proxy is not None:
            proxy.close()
    out, err = capsys.readouterr()
    assert code == (3 if fault == "fulcio-500" else 2), out + err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert token_free(out + err, stack)
    assert not (out_dir / "vsa.intoto.jsonl").exists()
    assert not (out_dir / "vsa.sigstore.jsonl").exists()
    assert not (out_dir / "vsa.json").exists()
