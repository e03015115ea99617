"""The per-registry "no referrers API" flag (RegistryClient._referrers_api) is set by any 404,
from any repository, and then hides every referrer in that registry: a revocation pushed as an
OCI 1.1 referrer stops counting for every other image."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gate import keys, policy, provenance, signatures
from gate.cli import main
from gate.refs import Reference, parse_source
from gate.registry import OCI_MANIFEST
from gate.result import Status
from gate.verify import RegistryStore, Target, Verifier
from tests.imagefiles import make_image, write_layout
from tests.integration.conftest import push_random_image

from .oci11_registry import Oci11Registry


@pytest.fixture
def oci11() -> Iterator[Oci11Registry]:
    server = Oci11Registry().start()
    yield server
    server.stop()


def _revoke_as_referrer(server: Oci11Registry, ref: Reference, private: str) -> None:
    """A signed revocation of ``ref`` pushed as an OCI 1.1 referrer (artifactType DSSE)."""
    assert ref.digest is not None
    key = keys.load_private_key(private, b"")
    with server.client() as client:
        manifest = client.get_manifest(ref.repository, ref.digest)
        statement = provenance.revocation(
            ref.name, ref.digest, "untrust", "CVE-2026-0001", time=datetime.now(UTC)
        )
        envelope = provenance.sign_statement(statement, key).to_json()
        artifact = signatures.referrer_manifest(
            {"mediaType": OCI_MANIFEST, "size": len(manifest.data), "digest": ref.digest},
            envelope,
            artifact_type=signatures.DSSE_MEDIA_TYPE,
            annotations={"predicateType": provenance.REVOCATION_V1},
        )
        for data in artifact.blobs.values():
            client.push_blob(ref.repository, data)
        client.push_manifest(ref.repository, artifact.digest, artifact.manifest, OCI_MANIFEST)


def _signed_and_revoked(server: Oci11Registry, keypair: tuple[str, str], repo: str) -> Reference:
    ref = push_random_image(server, repo, "1.0")  # type: ignore[arg-type]
    assert main(["sign", str(ref), "--key", keypair[0]]) == 0
    _revoke_as_referrer(server, ref, keypair[0])
    return ref


def _verify_json(
    capsys: pytest.CaptureFixture[str], images: list[str], pub: str
) -> list[dict[str, Any]]:
    main(["verify", *images, "--key", pub, "-o", "json"])
    out, _ = capsys.readouterr()
    return json.loads(out)


def test_referrer_revocation_counts_on_its_own(
    oci11: Oci11Registry, keypair: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Control: the referrer revocation is honoured when nothing else is verified."""
    ref = _signed_and_revoked(oci11, keypair, "team/victim")
    capsys.readouterr()
    [result] = _verify_json(capsys, [f"{ref.name}@{ref.digest}"], keypair[1])
    assert result["status"] == "UNTRUSTED", result


def test_a_layout_naming_a_missing_repository_hides_another_images_revocation(
    oci11: Oci11Registry,
    keypair: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One run, two images: an OCI layout whose io.containerd.image.name names a repository the
    registry does not have, and a revoked image. The layout's referrers probe gets the spec's
    404 NAME_UNKNOWN, registry.py:349-354 marks the *whole registry* as lacking the API, and the
    victim's referrers are then read from the (absent) tag schema: TRUSTED."""
    ref = _signed_and_revoked(oci11, keypair, "team/victim")
    layout = tmp_path / "layout"
    write_layout(
        layout,
        [make_image("attacker")],
        annotations={"io.containerd.image.name": f"{oci11.host}/team/never-pushed:1"},
    )
    capsys.readouterr()
    results = _verify_json(capsys, [f"oci:{layout}", f"{ref.name}@{ref.digest}"], keypair[1])
    victim = results[1]
    assert victim["status"] == "UNTRUSTED", (
        f"revoked image verified {victim['status']} next to an unrelated layout: {victim['reason']}"
    )


def test_one_404_poisons_a_long_lived_client(
    oci11: Oci11Registry, keypair: tuple[str, str], tmp_path: Path
) -> None:
    """The watchdog keeps one RegistryClient for its lifetime (commands.watchdog factory): after
    a single referrers 404 in any repository of a registry, no referrer revocation in that
    registry ever counts again, even after the client had seen the API answer 200."""
    ref = _signed_and_revoked(oci11, keypair, "team/victim")
    pol = policy.from_keys([keys.load_public_key(keypair[1])])
    layout = tmp_path / "layout"
    write_layout(
        layout,
        [make_image("local build")],
        annotations={"io.containerd.image.name": f"{oci11.host}/team/not-pushed-yet:dev"},
    )
    with oci11.client() as client:

        def run(text: str) -> Any:
            verifier = Verifier(pol, client=client, stores=[RegistryStore(client)])
            return verifier.run([Target(parse_source(text))])[0]

        assert run(f"{ref.name}@{ref.digest}").status is Status.UNTRUSTED  # API seen: 200
        run(f"oci:{layout}")  # one 404 NAME_UNKNOWN from a repository that does not exist
        after = run(f"{ref.name}@{ref.digest}")
        assert after.status is Status.UNTRUSTED, f"revocation no longer counts: {after.reason}"
