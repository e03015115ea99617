"""sign → verify end to end through the `sealgate` command, against real registries.

Images are built by the real dockerd and pushed with `docker push`; signatures
are written and read over the OCI API of a real docker-registry.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gate import keys, signatures
from gate.cli import main
from gate.refs import Reference
from gate.registry import OCI_MANIFEST

from .conftest import RegistryServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, keys.PrivateKey]:
    directory = tmp_path_factory.mktemp("keys")
    key = keys.generate()
    private, public = keys.write_key_pair(str(directory / "ci"), key, None)
    return str(private), str(public), key


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def verify_json(
    capsys: pytest.CaptureFixture[str], image: str, pub: str, *extra: str
) -> tuple[int, dict[str, Any]]:
    code, out, err = run(capsys, "verify", image, "--key", pub, "-o", "json", *extra)
    results = json.loads(out)
    assert len(results) == 1, err
    return code, results[0]


@pytest.fixture
def auth_env(
    monkeypatch: pytest.MonkeyPatch, isolated_docker_config: Path
) -> Callable[[RegistryServer], None]:
    def use(server: RegistryServer) -> None:
        if server.username:
            monkeypatch.setenv("SEALGATE_REGISTRY_USERNAME", server.username)
            monkeypatch.setenv("SEALGATE_REGISTRY_PASSWORD", server.password or "")
            monkeypatch.setenv("SEALGATE_REGISTRY", server.host)

    return use


@pytest.mark.parametrize("kind", ["registry", "basic_registry", "token_registry"])
def test_sign_then_verify_is_trusted(
    kind: str,
    request: pytest.FixtureRequest,
    push_image: Callable[..., Reference],
    keypair: tuple[str, str, Any],
    auth_env: Callable[[RegistryServer], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server: RegistryServer = request.getfixturevalue(kind)
    auth_env(server)
    ref = push_image(server, repo=f"sealgate/{kind.replace('_', '-')}", tag="1.0")
    tagged = f"{ref.name}:1.0"
    private, public, _ = keypair

    code, result = verify_json(capsys, tagged, public)
    assert (code, result["status"]) == (1, "UNKNOWN")

    code, out, err = run(capsys, "sign", tagged, "--key", private, "-a", "git_sha=abc123")
    assert code == 0, err
    assert f"Signed {ref.name}@{ref.digest}" in out

    code, result = verify_json(capsys, tagged, public)
    assert code == 0, result
    assert result["status"] == "TRUSTED"
    assert result["digest"] == ref.digest
    assert result["signer"]["key_id"] == keys.load_public_key(public).key_id
    assert result["signed_at"] is not None and result["size"] > 0

    # what we wrote is cosign's layout, to the byte
    client = server.client()
    manifest = client.get_manifest(ref.repository, signatures.attachment_tag(ref.digest or ""))
    doc = manifest.json()
    assert doc["mediaType"] == OCI_MANIFEST
    layer = doc["layers"][0]
    assert layer["mediaType"] == signatures.SIMPLE_SIGNING_MEDIA_TYPE
    payload = client.get_blob(ref.repository, layer["digest"])
    parsed = signatures.parse_payload(payload)
    assert parsed.digest == ref.digest and parsed.identity == ref.name
    assert parsed.optional["git_sha"] == "abc123"
    sig = base64.b64decode(layer["annotations"][signatures.SIGNATURE_ANNOTATION])
    assert keys.load_public_key(public).verify(sig, payload)


def test_second_signer_appends_and_threshold_counts_both(
    registry: RegistryServer,
    push_image: Callable[..., Reference],
    keypair: tuple[str, str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = push_image(registry, repo="sealgate/two-signers")
    private, public, _ = keypair
    other = keys.generate("ed25519")
    other_private, other_public = keys.write_key_pair(str(tmp_path / "release"), other, None)
    assert run(capsys, "sign", str(ref), "--key", private)[0] == 0
    assert run(capsys, "sign", str(ref), "--key", str(other_private))[0] == 0
    layers = (
        registry.client()
        .get_manifest(ref.repository, signatures.attachment_tag(ref.digest or ""))
        .json()["layers"]
    )
    assert len(layers) == 2
    for pub in (public, str(other_public)):
        assert verify_json(capsys, str(ref), pub)[1]["status"] == "TRUSTED"


def _signed(
    registry: RegistryServer,
    push_image: Callable[..., Reference],
    keypair: tuple[str, str, Any],
    capsys: pytest.CaptureFixture[str],
    repo: str,
) -> Reference:
    ref = push_image(registry, repo=repo)
    assert run(capsys, "sign", str(ref), "--key", keypair[0])[0] == 0
    return ref


def _rewrite_sig_manifest(
    registry: RegistryServer, ref: Reference, change: Callable[[dict[str, Any], bytes], bytes]
) -> None:
    """Re-push the .sig manifest after `change(layer, payload) -> new payload` edits it."""
    client = registry.client()
    tag = signatures.attachment_tag(ref.digest or "")
    doc = client.get_manifest(ref.repository, tag).json()
    layer = doc["layers"][0]
    payload = client.get_blob(ref.repository, layer["digest"])
    new_payload = change(layer, payload)
    layer["digest"] = client.push_blob(ref.repository, new_payload)
    layer["size"] = len(new_payload)
    client.push_manifest(ref.repository, tag, json.dumps(doc).encode(), OCI_MANIFEST)


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize(
    ("name", "change", "reason"),
    [
        ("payload-byte", lambda layer, p: _flip(p, p.index(b"sha256:") + 10), "none verifies"),
        (
            "signature-byte",
            lambda layer, p: (
                layer["annotations"].update(
                    {
                        signatures.SIGNATURE_ANNOTATION: base64.b64encode(
                            _flip(
                                base64.b64decode(
                                    layer["annotations"][signatures.SIGNATURE_ANNOTATION]
                                ),
                                10,
                            )
                        ).decode()
                    }
                ),
                p,
            )[1],
            "none verifies",
        ),
        (
            "missing-annotation",
            lambda layer, p: (layer["annotations"].clear(), p)[1],
            "no 'dev.cosignproject.cosign/signature'",
        ),
        (
            "non-base64-annotation",
            lambda layer, p: (
                layer["annotations"].update({signatures.SIGNATURE_ANNOTATION: "%%%"}),
                p,
            )[1],
            "not valid base64",
        ),
        ("not-simple-signing", lambda layer, p: b'{"hello": "world"}', "none verifies"),
    ],
)
def test_tampering_turns_trusted_into_untrusted(
    name: str,
    change: Callable[[dict[str, Any], bytes], bytes],
    reason: str,
    registry: RegistryServer,
    push_image: Callable[..., Reference],
    keypair: tuple[str, str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = _signed(registry, push_image, keypair, capsys, f"sealgate/tamper-{name}")
    assert verify_json(capsys, str(ref), keypair[1])[1]["status"] == "TRUSTED"
    _rewrite_sig_manifest(registry, ref, change)
    code, result = verify_json(capsys, str(ref), keypair[1])
    assert (code, result["status"]) == (1, "UNTRUSTED"), result
    assert reason in result["reason"]


def test_payload_naming_another_digest_is_untrusted(
    registry: RegistryServer,
    push_image: Callable[..., Reference],
    keypair: tuple[str, str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A valid signature copied onto another image (the tag now points elsewhere)."""
    signed = _signed(registry, push_image, keypair, capsys, "sealgate/repoint")
    other = push_image(registry, repo="sealgate/repoint", tag="2.0")
    client = registry.client()
    sig = client.get_manifest(signed.repository, signatures.attachment_tag(signed.digest or ""))
    client.push_manifest(
        other.repository, signatures.attachment_tag(other.digest or ""), sig.data, OCI_MANIFEST
    )
    code, result = verify_json(capsys, str(other), keypair[1])
    assert (code, result["status"]) == (1, "UNTRUSTED")
    assert "names " + (signed.digest or "")[:19] in result["reason"]


def test_repointed_tag_is_reported_as_drift(
    registry: RegistryServer,
    push_image: Callable[..., Reference],
    keypair: tuple[str, str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    signed = _signed(registry, push_image, keypair, capsys, "sealgate/drift")
    push_image(registry, repo="sealgate/drift", tag="1.0")  # the tag now points at another image
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: 1\nsigners:\n  - name: ci\n    key: {keypair[1]}\nrules:\n  - match: '**'\n"
    )
    code, out, _ = run(
        capsys,
        "verify",
        f"{signed.name}:1.0@{signed.digest}",
        "--policy",
        str(policy),
        "-o",
        "json",
    )
    result = json.loads(out)[0]
    assert (code, result["status"]) == (1, "UNTRUSTED") and "drift" in result["reason"]


def test_blob_corrupted_in_registry_storage_is_untrusted(
    registry: RegistryServer,
    push_image: Callable[..., Reference],
    keypair: tuple[str, str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = _signed(registry, push_image, keypair, capsys, "sealgate/corrupt")
    layer = (
        registry.client()
        .get_manifest(ref.repository, signatures.attachment_tag(ref.digest or ""))
        .json()["layers"][0]
    )
    data = registry.blob_file(layer["digest"])
    data.write_bytes(_flip(data.read_bytes(), 20))
    code, result = verify_json(capsys, str(ref), keypair[1])
    assert (code, result["status"]) == (1, "UNTRUSTED")
    assert "digest" in result["reason"]


def test_registry_that_cannot_serve_the_signature_manifest_fails_closed(
    registry: RegistryServer,
    push_image: Callable[..., Reference],
    keypair: tuple[str, str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docker-registry answers 500 for a corrupted stored manifest: ERROR (exit 3), never a pass."""
    ref = _signed(registry, push_image, keypair, capsys, "sealgate/notjson")
    manifest = registry.client().get_manifest(
        ref.repository, signatures.attachment_tag(ref.digest or "")
    )
    data = registry.blob_file(manifest.digest)
    data.write_bytes(b"this is not json" + b" " * (len(manifest.data) - 16))
    code, result = verify_json(capsys, str(ref), keypair[1])
    assert (code, result["status"]) == (3, "ERROR")
    assert "cannot read signatures" in result["reason"]


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["verify", "Nginx:latest", "--key", "PUB"], 2, "must be lowercase"),
        (["verify", "127.0.0.1:1/none/such:1", "--key", "PUB"], 3, "cannot reach"),
        (["sign", "127.0.0.1:5000/x@sha256:123", "--key", "KEY"], 2, "needs 64"),
        (["verify", "127.0.0.1:5000/x", "--key", "KEY"], 2, "private key"),
        (["verify", "127.0.0.1:5000/x"], 2, "--key PUB"),
    ],
)
def test_bad_input_one_line_and_exit_code(
    argv: list[str],
    code: int,
    message: str,
    keypair: tuple[str, str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [keypair[1] if a == "PUB" else keypair[0] if a == "KEY" else a for a in argv]
    got, out, err = run(capsys, *argv)
    assert got == code, (out, err)
    assert message in out + err


def test_image_not_found_is_error(
    registry: RegistryServer, keypair: tuple[str, str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = verify_json(capsys, f"{registry.host}/sealgate/none:1.0", keypair[1])
    assert (code, result["status"]) == (3, "ERROR") and "not found" in result["reason"]


def test_wrong_passphrase_and_nothing_written(
    registry: RegistryServer,
    push_image: Callable[..., Reference],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = push_image(registry, repo="sealgate/passphrase")
    private, _ = keys.write_key_pair(str(tmp_path / "enc"), keys.generate(), b"right")
    monkeypatch.setenv("SEALGATE_KEY_PASSWORD", "wrong")
    code, _, err = run(capsys, "sign", str(ref), "--key", str(private))
    assert code == 2 and "wrong passphrase" in err
    assert (
        registry.client().find_manifest(ref.repository, signatures.attachment_tag(ref.digest or ""))
        is None
    )


def test_unauthorized_registry_is_error_with_a_hint(
    basic_registry: RegistryServer,
    keypair: tuple[str, str, Any],
    isolated_docker_config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, result = verify_json(capsys, f"{basic_registry.host}/sealgate/x:1", keypair[1])
    assert (code, result["status"]) == (3, "ERROR")
    assert "SEALGATE_REGISTRY_USERNAME" in result["reason"] or "docker login" in result["reason"]


def test_sign_with_provenance_then_require_it(
    registry: RegistryServer,
    push_image: Callable[..., Reference],
    keypair: tuple[str, str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """sign --provenance attaches SLSA v1 (DSSE, .att).

    verify --attestation slsaprovenance requires it.
    """
    for name, value in {
        "GITHUB_ACTIONS": "true",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/app",
        "GITHUB_SHA": "a" * 40,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_WORKFLOW_REF": "acme/app/.github/workflows/release.yml@refs/heads/main",
        "GITHUB_RUN_ID": "1",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_EVENT_NAME": "push",
    }.items():
        monkeypatch.setenv(name, value)
    plain = push_image(registry, repo="sealgate/attested", tag="plain")
    assert run(capsys, "sign", str(plain), "--key", keypair[0])[0] == 0
    code, result = verify_json(capsys, str(plain), keypair[1], "--attestation", "slsaprovenance")
    assert (code, result["status"]) == (1, "UNTRUSTED") and "attestation" in result["reason"]

    ref = push_image(registry, repo="sealgate/attested", tag="built")
    code, _out, err = run(
        capsys,
        "sign",
        str(ref),
        "--key",
        keypair[0],
        "--provenance",
        "--report-dir",
        str(tmp_path / "out"),
    )
    assert code == 0, err
    assert (tmp_path / "out" / "provenance.intoto.jsonl").is_file()
    code, result = verify_json(capsys, str(ref), keypair[1], "--attestation", "slsaprovenance")
    assert (code, result["status"]) == (0, "TRUSTED"), result["reason"]
    assert "https://slsa.dev/provenance/v1" in result["attestations"]
