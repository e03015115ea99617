"""Multi-platform images: a revoked platform must fail the index, whatever the shape or source."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gate.cli import main
from gate.registry import OCI_INDEX
from tests.integration.conftest import RegistryServer, push_random_index


def _verify(capsys: pytest.CaptureFixture[str], image: str, pub: str) -> dict[str, Any]:
    main(["verify", image, "--key", pub, "-o", "json"])
    out, _ = capsys.readouterr()
    return json.loads(out)[0]


def test_a_revoked_platform_behind_a_nested_index_does_not_fail_the_top_index(
    registry: RegistryServer, keypair: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """_subjects._manifest_facts reads one level of platforms: an index whose entry is itself an
    index (legal in image-spec; buildx/oras/crane can write it) hides the revocation of a
    platform one level down. The same platform under a flat index fails it (test in
    tests/integration/test_index_and_layouts.py)."""
    inner, children = push_random_index(registry, "acme/nested", "inner")
    with registry.client() as client:
        data = client.get_manifest(inner.repository, inner.digest or "").data
        outer = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_INDEX, "digest": inner.digest, "size": len(data)}],
        }
        body = json.dumps(outer, separators=(",", ":")).encode()
        digest = client.push_manifest(inner.repository, "1.0", body, OCI_INDEX)
    top = f"{inner.name}@{digest}"
    assert main(["sign", top, "--key", keypair[0]]) == 0
    revoked = f"{children[0].name}@{children[0].digest}"
    assert main(["untrust", revoked, "--key", keypair[0], "--reason", "CVE-2026-7"]) == 0
    capsys.readouterr()
    # control: the revoked platform itself, and the inner index, are UNTRUSTED
    assert _verify(capsys, revoked, keypair[1])["status"] == "UNTRUSTED"
    assert _verify(capsys, f"{inner.name}@{inner.digest}", keypair[1])["status"] == "UNTRUSTED"
    result = _verify(capsys, top, keypair[1])
    # Nested indexes are refused outright (ERROR, fail closed): never TRUSTED.
    assert result["status"] == "ERROR" and "nests another index" in result["reason"], result


def test_docker_source_ignores_the_revoked_platform_it_runs(
    registry: RegistryServer,
    keypair: tuple[str, str],
    docker_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The engine pulls a multi-arch image by its index digest; RepoDigests names the index and
    .Id is the amd64 config. local_subject (sources.open_engine_image) gets no platforms, so the
    revocation of the very platform the engine runs (written at the platform digest, in the
    registry and the ledger) is never read: docker:// says TRUSTED where the registry reference
    of the same image says UNTRUSTED. This is what the watchdog verifies for every container."""
    index, children = push_random_index(registry, "acme/multi-docker", "1.0")
    assert main(["sign", str(index), "--key", keypair[0]]) == 0
    amd64 = next(c for c in children)  # linux/amd64 comes first
    assert (
        main(
            [
                "untrust",
                f"{amd64.name}@{amd64.digest}",
                "--key",
                keypair[0],
                "--reason",
                "CVE-2026-8",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert _verify(capsys, str(index), keypair[1])["status"] == "UNTRUSTED"  # control

    pulled = docker_client.images.pull(f"{index.name}@{index.digest}", platform="linux/amd64")
    try:
        result = _verify(capsys, f"docker://{pulled.id}", keypair[1])
        assert result["status"] != "TRUSTED", (
            f"engine image of revoked platform {amd64.digest[:19]} is TRUSTED: {result['reason']}"
        )
    finally:
        docker_client.images.remove(pulled.id, force=True)
