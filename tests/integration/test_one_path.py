"""One image, every way in, one answer.

The same pushed image is verified as a registry reference, as ``docker://``,
as ``oci:`` and as ``docker-archive:`` (both made from the registry's own
bytes, as ``skopeo copy --preserve-digests`` and Docker 25's ``docker save``
keep them), through ``verify``, ``gate`` and one watchdog sweep, for each
signature form (cosign ``.sig``, cosign v3 bundle referrer, ledger) and each
revocation location (none, ledger, ``.sig`` layer, referrer). Every row must
agree on the status and on the digest.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gate import keys, provenance, signatures
from gate.cli import main
from gate.ledger import Ledger
from gate.refs import Reference
from gate.registry import RegistryClient
from gate.revoke import revoke
from gate.sign import _push
from tests.imagefiles import write_tar
from tests.unit.test_report_schema import validate

from .conftest import RegistryServer

pytestmark = pytest.mark.integration

SIGN_FORMS = ("sig", "bundle", "ledger")
REVOCATIONS = ("none", "ledger", "sig-layer", "referrer")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("SEALGATE_LEDGER", str(tmp_path / "ledger.db"))
    monkeypatch.setenv("SEALGATE_STATE_DIR", str(tmp_path / "state"))
    private, public = keys.write_key_pair(str(tmp_path / "ci"), keys.generate(), None)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        f"signers:\n  - {{name: ci, key: {public}, level: 1}}\n"
        "rules:\n  - match: '**'\n    require: {signers: [ci]}\n"
    )
    return {"private": Path(private), "public": Path(public), "policy": policy, "tmp": tmp_path}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def export_layout(client: RegistryClient, ref: Reference, root: Path) -> dict[str, bytes]:
    """The registry's exact manifest, config and layer bytes as an OCI layout; the blobs."""
    manifest = client.get_manifest(ref.repository, ref.digest or "")
    document = manifest.json()
    blobs = {manifest.digest: manifest.data}
    for descriptor in [document["config"], *document["layers"]]:
        blobs[descriptor["digest"]] = client.get_blob(ref.repository, descriptor["digest"])
    (root / "blobs" / "sha256").mkdir(parents=True)
    for digest, data in blobs.items():
        (root / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    entry = {
        "mediaType": manifest.media_type,
        "digest": manifest.digest,
        "size": len(manifest.data),
        "annotations": {"io.containerd.image.name": f"{ref.name}:{ref.tag}"},
    }
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return blobs


def export_archive(root: Path, path: Path, ref: Reference) -> None:
    """Docker 25's ``docker save``: the OCI layout plus manifest.json, in one tar."""
    index = json.loads((root / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads((root / "blobs" / "sha256" / digest.split(":")[1]).read_bytes())
    members = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    members["manifest.json"] = json.dumps(
        [
            {
                "Config": "blobs/sha256/" + manifest["config"]["digest"].split(":")[1],
                "RepoTags": [f"{ref.name}:{ref.tag}"],
                "Layers": ["blobs/sha256/" + x["digest"].split(":")[1] for x in manifest["layers"]],
            }
        ]
    ).encode()
    write_tar(path, members)


def push_revocation_referrer(client: RegistryClient, ref: Reference, key: keys.PrivateKey) -> None:
    """A revocation attached as an OCI 1.1 referrer (DSSE), as other hosts may write it."""
    assert ref.digest is not None
    statement = provenance.revocation(
        ref.name, ref.digest, "untrust", "CVE-2026-7", time=datetime.now(UTC)
    )
    envelope = provenance.sign_statement(statement, key).to_json()
    descriptor = client.resolve(ref).to_dict()
    artifact = signatures.referrer_manifest(
        descriptor, envelope, artifact_type=signatures.DSSE_MEDIA_TYPE, annotations={}
    )
    _push(client, ref.repository, artifact, artifact.digest)


@pytest.fixture
def running(docker_client: Any) -> Iterator[Callable[[str, str], None]]:
    started: list[Any] = []

    def start(image: str, label: str) -> None:
        started.append(
            docker_client.containers.run(
                image, detach=True, network_mode="none", labels={"sealgate.test": label}
            )
        )

    yield start
    for container in started:
        with contextlib.suppress(Exception):
            container.remove(force=True)


@pytest.mark.parametrize("revocation", REVOCATIONS)
@pytest.mark.parametrize("form", SIGN_FORMS)
def test_every_source_and_front_end_agrees(
    form: str,
    revocation: str,
    env: dict[str, Path],
    registry: RegistryServer,
    push_image: Callable[..., Reference],
    running: Callable[[str, str], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    tmp, private, policy = env["tmp"], str(env["private"]), str(env["policy"])
    key = keys.load_private_key(private)
    ref = push_image(registry, f"sealgate/onepath-{form}-{revocation}", "1.0", runnable=True)
    assert ref.digest is not None
    pinned = f"{ref.name}:{ref.tag}@{ref.digest}"
    with registry.client() as client:
        export_layout(client, ref, tmp / "layout")
        export_archive(tmp / "layout", tmp / "image.tar", ref)

        if form == "sig":
            assert run(capsys, "sign", pinned, "--key", private)[0] == 0
        elif form == "bundle":
            assert run(capsys, "sign", pinned, "--key", private, "--format", "bundle")[0] == 0
        else:
            assert (
                run(capsys, "sign", f"docker-archive:{tmp / 'image.tar'}", "--key", private)[0] == 0
            )

        if revocation == "ledger":
            code, _, err = run(
                capsys, "untrust", f"docker-archive:{tmp / 'image.tar'}", "--key", private,
                "--reason", "CVE-2026-7",
            )  # fmt: skip
            assert code == 0, err
        elif revocation == "sig-layer":
            # written to the .sig manifest only: the ledger it also records to is thrown away
            revoke(
                pinned,
                key,
                "untrust",
                "CVE-2026-7",
                ledger=Ledger.open(tmp / "x.db"),
                client=client,
            )
        elif revocation == "referrer":
            push_revocation_referrer(client, ref, key)

    rows: dict[str, tuple[str, str | None]] = {}
    sources = {
        "registry": pinned,
        "docker": f"docker://{ref.name}:{ref.tag}",
        "oci": f"oci:{tmp / 'layout'}",
        "archive": f"docker-archive:{tmp / 'image.tar'}",
    }
    for name, source in sources.items():
        code, out, err = run(capsys, "verify", source, "--policy", policy, "-o", "json")
        assert out, err
        validate(json.loads(out))  # every source's real output fits the documented schema
        result = json.loads(out)[0]
        rows[f"verify {name}"] = (result["status"], result["digest"])

    compose = tmp / "compose.yaml"
    compose.write_text(f"services:\n  app:\n    image: {pinned}\n")
    code, out, err = run(capsys, "gate", str(compose), "--policy", policy, "-o", "json")
    assert out, err
    result = json.loads(out)[0]
    rows["gate"] = (result["status"], result["digest"])

    label = secrets.token_hex(4)
    running(f"{ref.name}:{ref.tag}", label)
    points = tmp / "points.jsonl"
    code, out, err = run(
        capsys, "watch", "--once", "--policy", policy, "--influx", f"log:{points}",
        "--state-dir", str(tmp / "watch"), "--label", f"sealgate.test={label}",
    )  # fmt: skip
    seen = [json.loads(line) for line in points.read_text().splitlines()]
    assert len(seen) == 1, (seen, err)
    rows["watch sweep"] = (seen[0]["status"], seen[0]["digest"])

    expected = ("TRUSTED" if revocation == "none" else "UNTRUSTED", ref.digest)
    assert rows == dict.fromkeys(rows, expected), rows
