"""Multi-platform indexes (--recursive, per-platform results); offline layouts vs the registry."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gate import keys
from gate.cli import main

from ..conftest import require
from .conftest import RegistryServer, push_random_image, push_random_index

pytestmark = pytest.mark.integration


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[str, str]:
    private, public = keys.write_key_pair(str(tmp_path / "ci"), keys.generate(), None)
    return str(private), str(public)


def verify(capsys: pytest.CaptureFixture[str], image: str, pub: str) -> tuple[int, dict[str, Any]]:
    code = main(["verify", image, "--key", pub, "-o", "json"])
    out, _ = capsys.readouterr()
    return code, json.loads(out)[0]


def test_index_reports_each_platform_and_recursive_signs_them(
    registry: RegistryServer,
    keypair: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    index, children = push_random_index(registry, "sealgate/multi", "1.0")
    assert main(["sign", str(index), "--key", keypair[0]]) == 0
    capsys.readouterr()
    code, result = verify(capsys, str(index), keypair[1])
    assert (code, result["status"]) == (0, "TRUSTED")
    platforms = {p["platform"]: p["status"] for p in result["platforms"]}
    assert platforms == {"linux/amd64": "UNKNOWN", "linux/arm64": "UNKNOWN"}

    capsys.readouterr()
    assert main(["sign", str(index), "--key", keypair[0], "--recursive"]) == 0
    capsys.readouterr()
    code, result = verify(capsys, str(index), keypair[1])
    assert {p["platform"]: p["status"] for p in result["platforms"]} == {
        "linux/amd64": "TRUSTED",
        "linux/arm64": "TRUSTED",
    }
    assert {p["digest"] for p in result["platforms"]} == {c.digest for c in children}
    for child in children:
        assert verify(capsys, f"{child.name}@{child.digest}", keypair[1])[1]["status"] == "TRUSTED"


def test_oci_layout_digest_matches_the_registry_after_skopeo_copy(
    registry: RegistryServer,
    keypair: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """skopeo (a real, independent client) copies a registry image into an OCI layout; the digest
    we compute from the layout's own bytes, offline, is the one the registry reports."""
    skopeo = shutil.which("skopeo")
    require(skopeo is not None, "skopeo (apt install skopeo)")
    ref = push_random_image(registry, "sealgate/layout", "1.0")
    layout = tmp_path / "layout"
    subprocess.run(
        [
            skopeo or "skopeo",
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            f"docker://{ref.name}:1.0",
            f"oci:{layout}:1.0",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert main(["sign", str(ref), "--key", keypair[0]]) == 0
    capsys.readouterr()
    code, result = verify(capsys, f"oci:{layout}:1.0", keypair[1])
    assert result["digest"] == ref.digest
    # one size for one image: the layout's config plus layers, as the registry lists them
    from_registry = verify(capsys, str(ref), keypair[1])[1]["size"]
    assert result["size"] == from_registry and from_registry > 0
    # no registry signature is consulted for a layout (it has no repository); the ledger has none
    assert (code, result["status"]) == (1, "UNKNOWN")
    assert main(["sign", f"oci:{layout}:1.0", "--key", keypair[0]]) == 0
    capsys.readouterr()
    assert verify(capsys, f"oci:{layout}:1.0", keypair[1])[1]["status"] == "TRUSTED"


@pytest.fixture(autouse=True)
def _ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALGATE_LEDGER", str(tmp_path / "ledger.db"))


def test_a_revoked_platform_fails_the_index(
    registry: RegistryServer,
    keypair: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SEALGATE_LEDGER", str(tmp_path / "ledger.db"))
    index, children = push_random_index(registry, "sealgate/multi-revoked", "1.0")
    assert main(["sign", str(index), "--key", keypair[0]]) == 0
    revoked = f"{children[1].name}@{children[1].digest}"
    assert main(["untrust", revoked, "--key", keypair[0], "--reason", "CVE-2026-9"]) == 0
    capsys.readouterr()
    code, result = verify(capsys, str(index), keypair[1])
    assert (code, result["status"]) == (1, "UNTRUSTED")
    assert "linux/arm64" in result["reason"] and "CVE-2026-9" in result["reason"]
    statuses = {p["platform"]: p["status"] for p in result["platforms"]}
    assert statuses == {"linux/amd64": "UNKNOWN", "linux/arm64": "UNTRUSTED"}


def test_platforms_each_needs_every_platform_signed(
    registry: RegistryServer,
    keypair: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index, _ = push_random_index(registry, "sealgate/multi-each", "1.0")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: 1\nsigners:\n  - {{name: ci, key: {keypair[1]}}}\n"
        "rules:\n  - match: '**'\n    platforms: each\n"
    )
    assert main(["sign", str(index), "--key", keypair[0]]) == 0
    capsys.readouterr()
    assert main(["verify", str(index), "--policy", str(policy), "-o", "json"]) == 1
    result = json.loads(capsys.readouterr().out)[0]
    assert result["status"] == "UNKNOWN" and "platform linux/" in result["reason"]
    assert main(["sign", str(index), "--key", keypair[0], "--recursive"]) == 0
    capsys.readouterr()
    assert main(["verify", str(index), "--policy", str(policy), "-o", "json"]) == 0


def test_an_engine_image_pulled_by_index_has_its_platform_size(
    registry: RegistryServer,
    keypair: tuple[str, str],
    docker_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docker:// of an image pulled by an index digest: the size is the platform the engine
    chose (config plus layers, as the registry lists them), the same as verifying it there."""
    index, children = push_random_index(registry, "sealgate/pulled-index", "1.0")
    pulled = f"{index.name}@{index.digest}"
    docker_client.images.pull(pulled)
    try:
        local = verify(capsys, f"docker://{pulled}", keypair[1])[1]
        amd64 = next(c for c in children if c.digest in {p["digest"] for p in local["platforms"]})
        remote = verify(capsys, f"{amd64.name}@{amd64.digest}", keypair[1])[1]
        assert local["size"] == remote["size"] and remote["size"] > 0
        assert verify(capsys, str(index), keypair[1])[1]["size"] is None  # an index has none
    finally:
        docker_client.images.remove(pulled, force=True)
