"""Interop with sigstore-js, an independent implementation, in both directions.

* sigstore-js signs a cosign-v3-style bundle (DSSE statement, predicate
  https://sigstore.dev/cosign/sign/v1) and attaches it as an OCI 1.1 referrer;
  docker-registry has no referrers API, so both sides use the tag-schema
  fallback — and `sealgate verify --key` must accept it.
* `sealgate sign --format bundle|both` writes that form, and @sigstore/verify
  must accept what it writes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gate import keys, signatures
from gate.cli import main
from gate.refs import Reference

from ..conftest import ROOT, require
from .conftest import RegistryServer

pytestmark = pytest.mark.integration
PEERS = ROOT / "tests" / "peers"


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    require(path is not None, "node (Debian nodejs)")
    require(
        (PEERS / "node_modules" / "@sigstore" / "sign").is_dir(), "sigstore-js (run `make peers`)"
    )
    assert path is not None
    return path


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Path, Path]:
    private, public = keys.write_key_pair(str(tmp_path / "k"), keys.generate(), None)
    return private, public


def peer(node: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(PEERS / "sigstore-peer.mjs"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PEERS,
        check=False,
    )


def verify(capsys: pytest.CaptureFixture[str], image: str, pub: Path) -> tuple[int, dict[str, Any]]:
    code = main(["verify", image, "--key", str(pub), "-o", "json"])
    out, _ = capsys.readouterr()
    return code, json.loads(out)[0]


def test_sigstore_js_bundle_referrer_verifies_with_sealgate(
    node: str,
    basic_registry: RegistryServer,
    push_image: Callable[..., Reference],
    keypair: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    isolated_docker_config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = push_image(basic_registry, repo="interop/js-signed")
    done = peer(
        node,
        "sign-attach",
        str(keypair[0]),
        str(keypair[1]),
        ref.name,
        ref.digest or "",
        basic_registry.username or "",
        basic_registry.password or "",
    )
    assert done.returncode == 0, done.stderr
    # the peer wrote the OCI tag-schema index, as the distribution spec says without a referrers API
    tags = basic_registry.client().list_tags(ref.repository)
    assert "sha256-" + (ref.digest or "").split(":")[1] in tags

    monkeypatch.setenv("SEALGATE_REGISTRY_USERNAME", basic_registry.username or "")
    monkeypatch.setenv("SEALGATE_REGISTRY_PASSWORD", basic_registry.password or "")
    monkeypatch.setenv("SEALGATE_REGISTRY", basic_registry.host)
    code, result = verify(capsys, str(ref), keypair[1])
    assert (code, result["status"]) == (0, "TRUSTED"), result
    other = keys.write_key_pair(str(keypair[0].parent / "other"), keys.generate(), None)[1]
    code, result = verify(capsys, str(ref), other)
    assert (code, result["status"]) == (1, "UNTRUSTED")


@pytest.mark.parametrize("fmt", ["bundle", "both"])
def test_sealgate_bundles_verify_with_sigstore_js(
    fmt: str,
    node: str,
    registry: RegistryServer,
    push_image: Callable[..., Reference],
    keypair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ref = push_image(registry, repo=f"interop/sealgate-{fmt}")
    assert main(["sign", str(ref), "--key", str(keypair[0]), "--format", fmt]) == 0
    capsys.readouterr()
    client = registry.client()
    found = [
        d
        for d in client.referrers(ref.repository, ref.digest or "")
        if d.artifact_type == signatures.BUNDLE_MEDIA_TYPE
    ]
    assert len(found) == 1
    manifest = client.get_manifest(ref.repository, found[0].digest).json()
    assert manifest["subject"]["digest"] == ref.digest
    bundle = client.get_blob(ref.repository, manifest["layers"][0]["digest"])
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle)
    done = peer(node, "verify", str(path), str(keypair[1]), ref.digest or "")
    assert done.returncode == 0 and "verified" in done.stdout, done.stderr

    # sigstore-js rejects a tampered bundle and a wrong key
    doc = json.loads(bundle)
    payload = bytearray(doc["dsseEnvelope"]["payload"].encode())
    payload[12] = ord("A") if payload[12] != ord("A") else ord("B")
    doc["dsseEnvelope"]["payload"] = payload.decode()
    path.write_text(json.dumps(doc))
    assert peer(node, "verify", str(path), str(keypair[1]), ref.digest or "").returncode == 1

    has_legacy = (
        client.find_manifest(ref.repository, signatures.attachment_tag(ref.digest or ""))
        is not None
    )
    assert has_legacy is (fmt == "both")
    code, result = verify(capsys, str(ref), keypair[1])
    assert (code, result["status"]) == (0, "TRUSTED")
