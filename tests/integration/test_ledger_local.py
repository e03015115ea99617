"""Local images and the embedded ledger, end to end with the real dockerd and registry.

A locally built image is signed into the ledger, verified via docker://,
docker-archive: (after `docker save`) and, once pushed, via its repo digest;
revocations take effect at once; direct edits of the SQLite file are caught
by `ledger verify` and by every verification.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate import keys, signatures
from gate.cli import main

from .conftest import RegistryServer

pytestmark = pytest.mark.integration


@pytest.fixture
def ledger_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger.db"
    monkeypatch.setenv("SEALGATE_LEDGER", str(path))
    return path


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[str, str]:
    private, public = keys.write_key_pair(str(tmp_path / "ci"), keys.generate(), None)
    return str(private), str(public)


@pytest.fixture
def local_image(docker_client: Any, tmp_path: Path) -> Iterator[str]:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "payload").write_bytes(secrets.token_bytes(32))
    (context / "Dockerfile").write_text("FROM scratch\nCOPY payload /payload\n")
    tag = f"sealgate-local/app:{secrets.token_hex(4)}"
    docker_client.images.build(path=str(context), tag=tag, network_mode="none", rm=True)
    yield tag
    docker_client.images.remove(tag, force=True)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def verify(capsys: pytest.CaptureFixture[str], image: str, pub: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run(capsys, "verify", image, "--key", pub, "-o", "json")
    assert out, err
    return code, json.loads(out)[0]


def archive_size(path: Path) -> int:
    """Config plus layer files, as a `docker save` tarball stores them (read with tarfile)."""
    with tarfile.open(path) as archive:
        handle = archive.extractfile("manifest.json")
        assert handle is not None
        entry = json.loads(handle.read())[0]
        return sum(archive.getmember(n).size for n in [entry["Config"], *entry["Layers"]])


def test_sign_local_then_verify_via_engine_archive_and_registry(
    ledger_env: Path,
    keypair: tuple[str, str],
    local_image: str,
    docker_client: Any,
    registry: RegistryServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = keypair
    image_id = docker_client.images.get(local_image).id
    assert verify(capsys, f"docker://{local_image}", public)[1]["status"] == "UNKNOWN"

    code, _out, err = run(capsys, "sign", f"docker://{local_image}", "--key", private)
    assert code == 0, err
    code, result = verify(capsys, f"docker://{local_image}", public)
    assert (code, result["status"], result["digest"]) == (0, "TRUSTED", image_id)
    # never pushed: the engine holds no manifest, so no size (its own Size is the unpacked tree)
    assert result["image_id"] == image_id and result["size"] is None

    archive = tmp_path / "image.tar"
    with archive.open("wb") as out_file:
        for chunk in docker_client.images.get(local_image).save(named=True):
            out_file.write(chunk)
    code, result = verify(capsys, f"docker-archive:{archive}", public)
    assert (code, result["status"], result["digest"]) == (0, "TRUSTED", image_id)
    # the archive's own blobs: its config plus the (uncompressed) layer files docker save wrote
    assert result["size"] == archive_size(archive)

    # push: the engine learns a repo digest; sign --push also signs it in the registry
    remote = f"{registry.host}/sealgate/local-pushed"
    docker_client.images.get(local_image).tag(remote, "1.0")
    for _ in docker_client.images.push(remote, tag="1.0", stream=True, decode=True):
        pass
    try:
        code, _, err = run(capsys, "sign", f"docker://{remote}:1.0", "--key", private, "--push")
        assert code == 0, err
        repo_digest = next(
            d
            for d in docker_client.images.get(remote + ":1.0").attrs["RepoDigests"]
            if d.startswith(registry.host)
        )
        pushed = registry.client().find_manifest(
            registry.repository("sealgate/local-pushed"),
            signatures.attachment_tag(repo_digest.split("@")[1]),
        )
        assert pushed is not None, "--push writes a cosign signature next to the pushed image"
        code, result = verify(capsys, repo_digest, public)
        assert (code, result["status"]) == (0, "TRUSTED"), result["reason"]
        assert result["digest"] == repo_digest.split("@")[1]
        manifest = json.loads(
            registry.client()
            .get_manifest(registry.repository("sealgate/local-pushed"), repo_digest.split("@")[1])
            .data
        )
        pushed_size = manifest["config"]["size"] + sum(x["size"] for x in manifest["layers"])
        assert result["size"] == pushed_size
        code, result = verify(capsys, f"docker://{remote}:1.0", public)
        # once the engine knows a manifest digest, docker:// reports it, as the registry does
        assert result["digest"] == repo_digest.split("@")[1] and result["image_id"] == image_id
        assert repo_digest in result["repo_digests"]
        # and the same size: config plus the compressed layers the registry holds
        assert result["size"] == pushed_size
    finally:
        docker_client.images.remove(f"{remote}:1.0", force=True)


def test_untrust_and_unsupport_take_effect_at_once(
    ledger_env: Path,
    keypair: tuple[str, str],
    local_image: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = keypair
    assert run(capsys, "sign", f"docker://{local_image}", "--key", private)[0] == 0
    assert (
        run(capsys, "unsupport", f"docker://{local_image}", "--key", private, "--reason", "EOL")[0]
        == 0
    )
    code, result = verify(capsys, f"docker://{local_image}", public)
    assert (code, result["status"]) == (0, "UNSUPPORTED") and "EOL" in result["reason"]
    assert (
        run(
            capsys, "untrust", f"docker://{local_image}", "--key", private, "--reason", "CVE-2026-1"
        )[0]
        == 0
    )
    code, result = verify(capsys, f"docker://{local_image}", public)
    assert (code, result["status"]) == (1, "UNTRUSTED") and "CVE-2026-1" in result["reason"]

    # a revocation by a key the policy does not trust is ignored, and said so
    stranger, _ = keys.write_key_pair(str(tmp_path / "stranger"), keys.generate(), None)
    other = tmp_path / "fresh.db"
    code, _, _ = run(
        capsys, "--ledger", str(other), "sign", f"docker://{local_image}", "--key", private
    )
    assert code == 0
    run(
        capsys,
        "--ledger",
        str(other),
        "untrust",
        f"docker://{local_image}",
        "--key",
        str(stranger),
        "--reason",
        "x",
    )
    code, out, _ = run(
        capsys,
        "--ledger",
        str(other),
        "verify",
        f"docker://{local_image}",
        "--key",
        public,
        "-o",
        "json",
    )
    result = json.loads(out)[0]
    assert result["status"] == "TRUSTED"
    assert any("ignored a revocation" in w for w in result["warnings"])


def test_untrust_registry_image_writes_next_to_signatures(
    ledger_env: Path,
    keypair: tuple[str, str],
    registry: RegistryServer,
    push_image: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = keypair
    ref = push_image(registry, repo="sealgate/revoked")
    assert run(capsys, "sign", str(ref), "--key", private)[0] == 0
    assert run(capsys, "untrust", str(ref), "--key", private, "--reason", "leaked key")[0] == 0
    # another host: no ledger at all, the registry alone carries the revocation
    monkeypatch.setenv("SEALGATE_LEDGER", str(tmp_path / "elsewhere.db"))
    code, result = verify(capsys, str(ref), public)
    assert (code, result["status"]) == (1, "UNTRUSTED") and "leaked key" in result["reason"]
    assert not (tmp_path / "elsewhere.db").exists()


def _signed_ledger(capsys: pytest.CaptureFixture[str], image: str, private: str) -> None:
    for _ in range(3):
        assert (
            run(
                capsys,
                "sign",
                f"docker://{image}",
                "--key",
                private,
                "-a",
                f"n={secrets.token_hex(2)}",
            )[0]
            == 0
        )


TAMPERS = {
    "edit-byte": "UPDATE entries SET payload ="
    " CAST(REPLACE(CAST(payload AS TEXT), 'sealgate', 'sealgatX') AS BLOB) WHERE idx = 1",
    "delete-row": "DELETE FROM entries WHERE idx = 2",
    "swap-rows": "UPDATE entries SET idx = -1 WHERE idx = 0;"
    " UPDATE entries SET idx = 0 WHERE idx = 1;"
    " UPDATE entries SET idx = 1 WHERE idx = -1",
    "forged-entry": "INSERT INTO entries SELECT idx + 100, kind, subject, name, payload_type,"
    " payload, signature, signer, created FROM entries WHERE idx = 0",
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_direct_sqlite_edits_are_caught(
    tamper: str,
    ledger_env: Path,
    keypair: tuple[str, str],
    local_image: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = keypair
    _signed_ledger(capsys, local_image, private)
    assert run(capsys, "ledger", "verify")[0] == 0
    db = sqlite3.connect(ledger_env)
    with db:
        db.executescript(TAMPERS[tamper])
    db.close()
    code, _, err = run(capsys, "ledger", "verify")
    assert code == 3 and "error" in err
    code, result = verify(capsys, f"docker://{local_image}", public)
    assert (code, result["status"]) == (3, "ERROR"), result


def test_ledger_proof_export_import(
    ledger_env: Path,
    keypair: tuple[str, str],
    local_image: str,
    docker_client: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from gate.ledger import verify_inclusion_proof

    private, public = keypair
    _signed_ledger(capsys, local_image, private)
    image_id = docker_client.images.get(local_image).id
    code, out, _ = run(capsys, "ledger", "proof", image_id)
    assert code == 0
    assert verify_inclusion_proof(json.loads(out), keys.load_public_key(public))
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(out)
    code, out, _ = run(capsys, "ledger", "check-proof", str(proof_file), "--key", public)
    assert code == 0 and "OK: entry" in out
    stranger = keys.write_key_pair(str(tmp_path / "stranger"), keys.generate(), None)[1]
    code, out, _ = run(capsys, "ledger", "check-proof", str(proof_file), "--key", str(stranger))
    assert code == 1 and "INVALID" in out
    tampered = json.loads(proof_file.read_text())
    tampered["entry"]["subject"] = "sha256:" + "f" * 64
    proof_file.write_text(json.dumps(tampered))
    code, out, _ = run(capsys, "ledger", "check-proof", str(proof_file), "--key", public)
    assert code == 1
    exported = tmp_path / "export.jsonl"
    assert run(capsys, "ledger", "export", str(exported))[0] == 0
    code, out, _ = run(
        capsys, "--ledger", str(tmp_path / "airgapped.db"), "ledger", "import", str(exported)
    )
    assert code == 0 and "Imported 3" in out
    code, out, _ = run(
        capsys,
        "--ledger",
        str(tmp_path / "airgapped.db"),
        "verify",
        f"docker://{local_image}",
        "--key",
        public,
        "-o",
        "json",
    )
    assert json.loads(out)[0]["status"] == "TRUSTED"


def test_no_engine_is_a_clear_error(
    ledger_env: Path,
    keypair: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    code, _out, err = run(capsys, "sign", "docker://hello-world", "--key", keypair[0])
    assert code == 3 and "Docker engine" in err
    assert not ledger_env.exists()


# ---------------------------------------------------------------- the witness (issue 10)


def _roll_back(path: Path, keep: int) -> None:
    """Cut the newest entries and their checkpoints, then recompute the tree: a clean log."""
    from tests.unit.test_ledger import edit, rebuild_tree

    edit(
        path,
        ("DELETE FROM entries WHERE idx >= ?", (keep,)),
        ("DELETE FROM checkpoints WHERE size > ?", (keep,)),
    )
    rebuild_tree(path)


def _sign_and_untrust(capsys: pytest.CaptureFixture[str], image: str, private: str) -> None:
    assert run(capsys, "sign", f"docker://{image}", "--key", private)[0] == 0
    code, _, err = run(
        capsys, "untrust", f"docker://{image}", "--key", private, "--reason", "CVE-2026-7"
    )
    assert code == 0, err


def test_rolled_back_ledger_cannot_hide_a_revocation(
    ledger_env: Path,
    keypair: tuple[str, str],
    local_image: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = keypair
    _sign_and_untrust(capsys, local_image, private)
    assert verify(capsys, f"docker://{local_image}", public)[1]["status"] == "UNTRUSTED"
    _roll_back(ledger_env, 1)  # the untrust entry and its checkpoint are gone
    code, _out, err = run(capsys, "ledger", "verify")
    assert code == 3 and "has 1 entries but the witness in" in err and "saw 2" in err, err
    assert "rolled back or replaced" in err and "move the file aside" not in err
    code, result = verify(capsys, f"docker://{local_image}", public)
    assert (code, result["status"]) == (3, "ERROR"), result
    assert "rolled back" in result["reason"]


@pytest.mark.parametrize("attack", ["empty-file", "deleted"])
def test_replaced_or_deleted_ledger_makes_a_revoked_image_an_error(
    attack: str,
    ledger_env: Path,
    keypair: tuple[str, str],
    registry: RegistryServer,
    push_image: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Signed in the registry, revoked in the ledger only: without the ledger it was TRUSTED."""
    private, public = keypair
    ref = push_image(registry, repo=f"sealgate/witness-{attack}")
    assert run(capsys, "sign", str(ref), "--key", private)[0] == 0
    code, _, err = run(capsys, "untrust", ref.digest, "--key", private, "--reason", "CVE-2026-9")
    assert code == 0, err
    code, result = verify(capsys, str(ref), public)
    assert (code, result["status"]) == (1, "UNTRUSTED") and "CVE-2026-9" in result["reason"]
    backup = ledger_env.with_name("backup.jsonl")
    assert run(capsys, "ledger", "export", str(backup))[0] == 0
    ledger_env.unlink()
    if attack == "empty-file":
        ledger_env.write_bytes(b"")
    said = "has 0 entries but the witness" if attack == "empty-file" else "is missing but the"
    code, result = verify(capsys, str(ref), public)
    assert (code, result["status"]) == (3, "ERROR"), result
    assert said in result["reason"]
    code, _out, err = run(capsys, "ledger", "verify")
    assert code == 3 and said in err
    code, _out, err = run(capsys, "untrust", ref.digest, "--key", private, "--reason", "again")
    assert code == 3 and said in err  # appending does not start a new history over the old one
    code, out, err = run(capsys, "ledger", "import", str(backup))  # the way back
    assert code == 0 and "Imported 1 new entries" in out, err
    assert verify(capsys, str(ref), public)[1]["status"] == "UNTRUSTED"


def test_witness_export_and_import_across_two_state_dirs(
    ledger_env: Path,
    keypair: tuple[str, str],
    local_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = keypair
    monkeypatch.setenv("SEALGATE_STATE_DIR", str(tmp_path / "state-a"))
    assert run(capsys, "sign", f"docker://{local_image}", "--key", private)[0] == 0
    assert run(capsys, "ledger", "export", str(tmp_path / "old.jsonl"))[0] == 0
    assert run(capsys, "ledger", "witness", "export", str(tmp_path / "old-witness.json"))[0] == 0
    code, _, err = run(
        capsys, "untrust", f"docker://{local_image}", "--key", private, "--reason", "CVE-2026-8"
    )
    assert code == 0, err
    assert run(capsys, "ledger", "export", str(tmp_path / "new.jsonl"))[0] == 0
    code, out, err = run(capsys, "ledger", "witness", "export", str(tmp_path / "witness.json"))
    assert code == 0 and "witness of 2 entries" in out, err
    assert json.loads((tmp_path / "witness.json").read_text())["size"] == 2

    # the other host: its own ledger and state directory, given on the command line
    host = ("--ledger", str(tmp_path / "b.db"), "--state-dir", str(tmp_path / "state-b"))
    assert run(capsys, *host, "ledger", "import", str(tmp_path / "old.jsonl"))[0] == 0
    code, _, err = run(capsys, *host, "ledger", "witness", "import", str(tmp_path / "witness.json"))
    assert code == 3 and "has 1 entries but the witness in" in err, err  # a stale copy is refused
    assert run(capsys, *host, "ledger", "import", str(tmp_path / "new.jsonl"))[0] == 0
    code, out, err = run(
        capsys, *host, "ledger", "witness", "import", str(tmp_path / "witness.json")
    )
    assert code == 0 and "held to the 2 entries" in out, err
    witness = str(tmp_path / "old-witness.json")
    code, out, err = run(capsys, *host, "ledger", "witness", "import", witness)
    assert code == 0 and "Kept the witness" in out and "covers 2 entries" in out, err
    _, stranger = keys.write_key_pair(str(tmp_path / "stranger"), keys.generate(), None)
    code, _, err = run(
        capsys, *host, "ledger", "witness", "import", witness, "--key", str(stranger)
    )
    assert code == 3 and "not a trusted writer" in err
    assert len(list((tmp_path / "state-b").glob("ledger-witness-*.json"))) == 1
    code, out, _ = run(capsys, *host, "verify", f"docker://{local_image}", "--key", public)
    assert code == 1 and "UNTRUSTED" in out
    _roll_back(tmp_path / "b.db", 1)
    code, out, _ = run(
        capsys, *host, "verify", f"docker://{local_image}", "--key", public, "-o", "json"
    )
    assert code == 3 and json.loads(out)[0]["status"] == "ERROR"
    code, _, err = run(capsys, *host, "ledger", "witness", "import", "/nonexistent/w.json")
    assert code == 2 and "does not exist" in err
    (tmp_path / "junk.json").write_text("[" * 50_000)
    code, _, err = run(capsys, *host, "ledger", "witness", "import", str(tmp_path / "junk.json"))
    assert code == 3 and "not a valid ledger witness" in err


def test_ledger_verify_with_the_wrong_key_does_not_blame_the_ledger(
    ledger_env: Path,
    keypair: tuple[str, str],
    local_image: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    private, public = keypair
    assert run(capsys, "sign", f"docker://{local_image}", "--key", private)[0] == 0
    _, stranger = keys.write_key_pair(str(tmp_path / "stranger"), keys.generate(), None)
    code, _out, err = run(capsys, "ledger", "verify", "--key", str(stranger))
    assert code == 3 and "is intact, but all 1 of its checkpoints" in err, err
    assert "not a trusted writer" in err and "move the file aside" not in err
    assert run(capsys, "ledger", "verify", "--key", public)[0] == 0
