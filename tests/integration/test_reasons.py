"""Every row names its image once: the reason says what is wrong and what to do, not which image.

Representative failures, made for real (a registry, dockerd, files on disk),
go through `sealgate verify` and `sealgate gate`; no reason may repeat the
row's image reference, its repository path or its digest, and each is one
sentence.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate import keys
from gate.cli import main
from gate.refs import Reference
from gate.sign import sign_image

from .conftest import RegistryServer, push_random_image
from .test_sign_verify import _flip, _rewrite_sig_manifest

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def world(
    tmp_path: Path,
    registry: RegistryServer,
    basic_registry: RegistryServer,
    isolated_docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("SEALGATE_LEDGER", str(tmp_path / "ledger.db"))
    ci, other = keys.generate(), keys.generate()
    keys.write_key_pair(str(tmp_path / "ci"), ci, None)
    keys.write_key_pair(str(tmp_path / "other"), other, None)
    with registry.client() as client:

        def image(repo: str, tag: str, *signers: keys.PrivateKey) -> Reference:
            ref = push_random_image(registry, repo, tag, client=client)
            for signer in signers:
                sign_image(client, ref, signer)
            return ref

        refs = {
            "unsigned": image("reasons/unsigned", "1.0"),
            "wrong-key": image("reasons/wrong-key", "1.0", other),
            "revoked": image("reasons/revoked", "1.0", ci),
            "signed": image("reasons/signed", "1.0", ci),
            "elsewhere": image("reasons/elsewhere", "1.0", ci),
            "tampered": image("reasons/tampered", "1.0", ci),
            "loose": image("loose/app", "1.0"),
            "drift": image("reasons/drift", "1.0", ci),
        }
        image("reasons/drift", "1.0", ci)  # the tag moves on
    # a signature whose payload was edited after signing
    _rewrite_sig_manifest(
        registry, refs["tampered"], lambda _, payload: _flip(payload, payload.index(b"sha256:") + 9)
    )
    revoked = refs["revoked"]
    assert (
        main(
            [
                "untrust",
                str(revoked),
                "--key",
                str(tmp_path / "ci.key"),
                "--reason",
                "CVE-2026-1",
            ]
        )
        == 0
    )
    closed = _closed_port()
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""\
version: 1
signers:
  - {{name: ci, key: ci.pub, level: 1}}
  - {{name: other, key: other.pub, level: 1}}
registries: [{registry.host}, {basic_registry.host}, "127.0.0.1:{closed}"]
rules:
  - match: "{registry.host}/reasons/elsewhere"
    require: {{signers: [other], threshold: 1}}
  - match: "{registry.host}/reasons/**"
    require: {{signers: [ci], threshold: 1}}
    pinned: required
  - match: "{registry.host}/loose/**"
    require: {{signers: [ci], threshold: 1}}
    pinned: "off"
  - match: "{basic_registry.host}/**"
    require: {{signers: [ci], threshold: 1}}
  - match: "127.0.0.1:{closed}/**"
    require: {{signers: [ci], threshold: 1}}
default: deny
""")
    yield {"refs": refs, "policy": policy, "dir": tmp_path, "closed": closed}


def _verify(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    code = main(["verify", *argv, "-o", "json"])
    out, err = capsys.readouterr()
    assert code in (1, 3), err
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


def _mentions(reason: str, row: dict[str, Any]) -> list[str]:
    """The parts of the row's own identity that its reason repeats."""
    image = str(row["image"])
    said = [image] if image in reason else []
    name = image.removeprefix("docker://").removeprefix("oci:").removeprefix("docker-archive:")
    name = name.split("@")[0]
    if name and name in reason:
        said.append(name)
    digest = row.get("digest")
    if digest and digest.split(":")[-1][:12] in reason:
        said.append(digest)
    return said


def test_reasons_do_not_repeat_the_image(
    world: dict[str, Any],
    registry: RegistryServer,
    basic_registry: RegistryServer,
    docker_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    refs: dict[str, Reference] = world["refs"]
    base = world["dir"]
    policy = str(world["policy"])
    unsigned = refs["unsigned"]
    drift = refs["drift"]
    images = {
        "unsigned": str(unsigned),
        "wrong-key": str(refs["wrong-key"]),
        "revoked": str(refs["revoked"]),
        "not required": str(refs["elsewhere"]),
        "tampered": str(refs["tampered"]),
        "unknown tag": f"{refs['loose'].name}:no-such-tag",
        "unknown repo": f"{registry.host}/loose/nothing-here:1.0",
        "unknown digest": f"{unsigned.name}@sha256:{'0' * 64}",
        "not pinned": f"{unsigned.name}:1.0",
        "drift": f"{drift.name}:1.0@{drift.digest}",
        "no rule": f"{registry.host}/elsewhere/app@{unsigned.digest}",
        "registry not allowed": f"127.0.0.2:5/app/x@{unsigned.digest}",
        "unreachable": f"127.0.0.1:{world['closed']}/app/x@{unsigned.digest}",
        "no credentials": f"{basic_registry.host}/app/x@{unsigned.digest}",
        "no local image": "docker://sealgate-reasons/absent:1",
        "no layout": f"oci:{base}/no-layout",
        "no archive": f"docker-archive:{base}/absent.tar",
        "empty layout": f"oci:{base}/empty-layout",
        "not a tar": f"docker-archive:{base}/notes.txt",
    }
    (base / "empty-layout").mkdir()
    (base / "notes.txt").write_text("not a tar archive\n" * 64)
    rows = _verify(capsys, *images.values(), "--policy", policy)
    # the gate reads the same references from a file, with file:line on every row
    listing = base / "images.txt"
    listing.write_text("\n".join(v for v in images.values() if ":/" not in v) + "\n")
    capsys.readouterr()
    main(["gate", str(listing), "--policy", policy, "-o", "json"])
    out, err = capsys.readouterr()
    assert out, err
    gated = json.loads(out)
    assert len(rows) == len(images) and len(gated) == len(images) - 5
    seen = []
    for row in [*rows, *gated]:
        reason = row["reason"]
        seen.append(f"{row['status']:<9} {row['image'][:60]:<60} | {reason}")
        assert not _mentions(reason, row), f"{row['image']}: {reason}"
        assert reason and "\n" not in reason
    print("\n".join(seen))
    statuses = {case: row["status"] for case, row in zip(images, rows, strict=True)}
    assert statuses["unsigned"] == "UNKNOWN" and statuses["revoked"] == "UNTRUSTED"
    assert statuses["unreachable"] == "ERROR" and statuses["unknown tag"] == "ERROR"
