"""A revocation that exists but cannot be read must fail closed (ERROR), not be skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gate.cli import main
from tests.integration.conftest import RegistryServer, push_random_image


def test_unreadable_revocation_blob_is_ignored_and_the_image_passes(
    registry: RegistryServer,
    keypair: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`sealgate untrust` adds a DSSE layer to the image's .sig manifest. When that layer's blob
    cannot be read (404 from the registry, a cache that lost it, a size or digest mismatch),
    RegistryStore._blob turns it into a Claim with a problem, and _decide._revocation skips
    problem claims with a warning ("not signed by a trusted key"): the image is TRUSTED on its
    signature. DESIGN.md: a store that cannot be read is ERROR (fail closed)."""
    ref = push_random_image(registry, "acme/revoked-unreadable", "1.0")
    assert main(["sign", str(ref), "--key", keypair[0]]) == 0
    assert main(["untrust", str(ref), "--key", keypair[0], "--reason", "CVE-2026-5"]) == 0
    capsys.readouterr()
    with registry.client() as client:
        tag = "sha256-" + (ref.digest or "").split(":")[1] + ".sig"
        sig = client.get_manifest(ref.repository, tag).json()
    [revocation] = [
        layer
        for layer in sig["layers"]
        if layer["mediaType"] == "application/vnd.dsse.envelope.v1+json"
    ]
    registry.blob_file(revocation["digest"]).unlink()  # the registry lost that one blob
    # A gate on another machine: it has only the registry, not the revoker's ledger.
    monkeypatch.setenv("SEALGATE_LEDGER", str(tmp_path / "gate-host-ledger.db"))
    monkeypatch.setenv("SEALGATE_STATE_DIR", str(tmp_path / "gate-host-state"))
    main(["verify", f"{ref.name}@{ref.digest}", "--key", keypair[1], "-o", "json"])
    result = json.loads(capsys.readouterr().out)[0]
    assert result["status"] in ("ERROR", "UNTRUSTED"), (
        f"revoked image with an unreadable revocation is {result['status']}: {result['reason']}"
    )
