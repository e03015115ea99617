"""The ledger on real SQLite files with real keys: appends, proofs, tampering, concurrency, import.

Tamper tests edit the file with the ``sqlite3`` module as an attacker would,
including recomputing the stored tree, and expect verify() to name the problem.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gate import merkle
from gate.errors import LedgerError, UsageError
from gate.keys import PrivateKey, generate
from gate.ledger import Checkpoint, Ledger, SignedStatement, default_path, verify_inclusion_proof

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


def digest(n: int | str) -> str:
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


def statement(key: PrivateKey, n: int | str, kind: str = "sign") -> SignedStatement:
    """A cosign simple-signing statement about image ``n``, signed by ``key``."""
    payload = json.dumps(
        {"critical": {"identity": {"docker-reference": f"example.test/app{n}"},
                      "image": {"docker-manifest-digest": digest(n)},
                      "type": "cosign container image signature"}, "optional": {"kind": kind}},
        separators=(",", ":"),
    ).encode()  # fmt: skip
    return SignedStatement(
        kind, digest(n), f"example.test/app{n}", SIMPLE_SIGNING, payload, key.sign(payload),
        key.public_key,
    )  # fmt: skip


def add(ledger: Ledger, key: PrivateKey, n: int | str, kind: str = "sign") -> None:
    s = statement(key, n, kind)
    ledger.append(
        kind=s.kind, subject=s.subject, name=s.name, payload_type=s.payload_type,
        payload=s.payload, signature=s.signature, public_key=s.public_key, writer=key,
    )  # fmt: skip


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return generate()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.db"


def filled(path: Path, key: PrivateKey, count: int) -> Path:
    with Ledger.open(path) as ledger:
        for n in range(count):
            add(ledger, key, n)
    return path


def edit(path: Path, *sql: str | tuple[str, tuple[object, ...]]) -> None:
    """Change the closed ledger file directly, as someone with write access could."""
    db = sqlite3.connect(path)
    with db:
        for item in sql:
            text, args = (item, ()) if isinstance(item, str) else item
            db.execute(text, args)
    db.close()


def rebuild_tree(path: Path) -> None:
    """The attacker's next step: recompute leaves, nodes and frontier from the (edited) entries."""
    db = sqlite3.connect(path)
    indices = [row[0] for row in db.execute("SELECT idx FROM entries ORDER BY idx")]
    db.close()
    with Ledger.open(path) as ledger:
        leaves = [merkle.leaf_hash(ledger.entry(i).leaf_bytes()) for i in indices]
    tree = merkle.levels(leaves)
    compact = merkle.CompactRange.at(len(leaves), merkle.getter(tree))
    rows = [(lv, i, h) for lv, hashes in enumerate(tree) for i, h in enumerate(hashes)]
    db = sqlite3.connect(path)
    with db:
        db.execute("DELETE FROM nodes")
        db.executemany("INSERT INTO nodes VALUES (?, ?, ?)", rows)
        db.execute(
            "UPDATE tree SET size = ?, frontier = ?", (len(leaves), b"".join(compact.hashes))
        )
    db.close()


def forge_checkpoint(path: Path, size: int, forger: PrivateKey) -> None:
    """Sign a checkpoint over the current (rebuilt) tree with a key the forger owns."""
    with Ledger.open(path) as ledger:
        root = merkle.root([merkle.leaf_hash(ledger.entry(i).leaf_bytes()) for i in range(size)])
    pem = forger.public_key.pem
    checkpoint = Checkpoint.create(size, root, datetime.now(UTC), forger)
    edit(
        path,
        ("INSERT OR IGNORE INTO signers (pem, key_id) VALUES (?, ?)",
         (pem, forger.public_key.key_id)),
        ("INSERT OR REPLACE INTO checkpoints VALUES"
         " (?, ?, ?, (SELECT id FROM signers WHERE pem = ?), ?)",
         (size, root, checkpoint.to_dict()["timestamp"], pem, checkpoint.signature)),
    )  # fmt: skip


# ---------------------------------------------------------------- appending and reading


def test_append_and_lookup(path: Path, key: PrivateKey) -> None:
    with Ledger.open(path) as ledger:
        assert ledger.size() == 0 and ledger.latest_checkpoint() is None
        add(ledger, key, 1)
        add(ledger, key, 2)
        add(ledger, key, 1, kind="untrust")
        assert ledger.size() == 3
        found = ledger.entries_for(digest(1))
        assert [(e.index, e.kind) for e in found] == [(0, "sign"), (2, "untrust")]
        assert found[0].key_id == key.public_key.key_id
        assert ledger.entries_for(digest(99)) == []
        entry = ledger.entry(1)
        assert entry.subject == digest(2) and entry.name == "example.test/app2"
        assert entry.public_key == key.public_key.pem and entry.created.tzinfo is UTC
        checkpoint = ledger.latest_checkpoint()
        assert checkpoint is not None and checkpoint.size == 3
        assert checkpoint.key_id == key.public_key.key_id and checkpoint.problem() is None
        assert checkpoint.root.hex() == ledger.verify().root
        assert "sealgate/ledger/v1\n3\n" in checkpoint.note()
        with pytest.raises(UsageError, match="no entry 7"):
            ledger.entry(7)


def test_refuses_statements_that_do_not_verify(path: Path, key: PrivateKey) -> None:
    other = generate()
    good = statement(key, 1)
    with Ledger.open(path) as ledger:
        with pytest.raises(UsageError, match="not signed by key"):
            ledger.append(
                kind="sign", subject=good.subject, name=good.name, payload_type=SIMPLE_SIGNING,
                payload=good.payload + b" ", signature=good.signature, public_key=key.public_key,
                writer=key,
            )  # fmt: skip
        with pytest.raises(UsageError, match="not signed by key"):
            ledger.append_many([SignedStatement(
                "sign", good.subject, good.name, SIMPLE_SIGNING, good.payload, good.signature,
                other.public_key)], writer=key)  # fmt: skip
        with pytest.raises(UsageError, match="unknown ledger entry kind"):
            ledger.append_many([statement(key, 1, kind="bless")], writer=key)
        with pytest.raises(UsageError, match="not a digest"):
            ledger.append_many([SignedStatement(
                "sign", "latest", "x", SIMPLE_SIGNING, good.payload, good.signature,
                key.public_key)], writer=key)  # fmt: skip
        assert ledger.size() == 0 and ledger.latest_checkpoint() is None


def test_append_many_writes_one_checkpoint(path: Path, key: PrivateKey) -> None:
    with Ledger.open(path) as ledger:
        entries = ledger.append_many([statement(key, n) for n in range(10)], writer=key)
        assert [e.index for e in entries] == list(range(10))
        report = ledger.verify()
        assert (report.entries, report.checkpoints) == (10, 1)


def test_default_path_follows_env_then_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEALGATE_LEDGER", str(tmp_path / "env" / "l.db"))
    assert default_path() == tmp_path / "env" / "l.db"
    with Ledger.open() as ledger:
        assert ledger.path == tmp_path / "env" / "l.db" and ledger.path.exists()
    monkeypatch.delenv("SEALGATE_LEDGER")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "sealgate" / "ledger.db"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / ".local" / "share" / "sealgate" / "ledger.db"


# ---------------------------------------------------------------- proofs


def test_proofs_for_every_index_at_sizes_1_to_50(path: Path, key: PrivateKey) -> None:
    roots = [merkle.EMPTY_ROOT]
    with Ledger.open(path) as ledger:
        for size in range(1, 51):
            add(ledger, key, size)
            checkpoint = ledger.latest_checkpoint()
            assert checkpoint is not None
            roots.append(checkpoint.root)
            for index in range(size):
                proof = ledger.inclusion_proof(index)
                assert proof["tree_size"] == size and proof["leaf_index"] == index
                assert verify_inclusion_proof(json.loads(json.dumps(proof)), key.public_key)
        for old in range(51):
            for new in range(old, 51):
                hashes = ledger.consistency_proof(old, new)
                assert merkle.verify_consistency(old, new, roots[old], roots[new], hashes)
        with pytest.raises(UsageError):
            ledger.consistency_proof(10, 51)


def test_proof_by_digest_is_for_the_newest_statement(path: Path, key: PrivateKey) -> None:
    with Ledger.open(filled(path, key, 5)) as ledger:
        add(ledger, key, 2, kind="untrust")
        proof = ledger.inclusion_proof(digest(2))
        assert proof["leaf_index"] == 5 and proof["entry"]["kind"] == "untrust"
        assert proof["checkpoint"]["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
        with pytest.raises(UsageError, match="no entry for"):
            ledger.inclusion_proof(digest(42))


def test_third_party_check_rejects_altered_proofs(path: Path, key: PrivateKey) -> None:
    with Ledger.open(filled(path, key, 7)) as ledger:
        proof = ledger.inclusion_proof(3)
    assert verify_inclusion_proof(proof, key.public_key)
    assert not verify_inclusion_proof(proof, generate().public_key)
    changed = json.loads(json.dumps(proof))
    changed["entry"]["name"] = "evil.test/app"
    assert not verify_inclusion_proof(changed, key.public_key)
    changed = json.loads(json.dumps(proof))
    changed["hashes"][0] = "00" * 32
    assert not verify_inclusion_proof(changed, key.public_key)
    changed = json.loads(json.dumps(proof))
    changed["leaf_index"] = 4
    assert not verify_inclusion_proof(changed, key.public_key)
    changed = json.loads(json.dumps(proof))
    changed["checkpoint"]["size"] = 8
    changed["tree_size"] = 8
    assert not verify_inclusion_proof(changed, key.public_key)
    changed = json.loads(json.dumps(proof))
    changed["entry"]["extra"] = "unhashed"
    assert not verify_inclusion_proof(changed, key.public_key)
    assert not verify_inclusion_proof({"entry": None}, key.public_key)


# ---------------------------------------------------------------- tampering with the file


def test_clean_ledger_verifies(path: Path, key: PrivateKey) -> None:
    with Ledger.open(filled(path, key, 12)) as ledger:
        report = ledger.verify(trusted_keys=[key.public_key])
        assert (report.entries, report.checkpoints) == (12, 12)
        assert report.writers == (key.public_key.key_id,)


def test_edited_payload_byte_is_caught(path: Path, key: PrivateKey) -> None:
    filled(path, key, 6)
    edit(path, "UPDATE entries SET payload = CAST(REPLACE(CAST(payload AS TEXT), 'app2', 'app3')"
               " AS BLOB) WHERE idx = 2")  # fmt: skip
    with (
        Ledger.open(path) as ledger,
        pytest.raises(LedgerError, match="entry 2 has a statement sig"),
    ):
        ledger.verify()


def test_edited_unsigned_column_is_caught(path: Path, key: PrivateKey) -> None:
    filled(path, key, 6)
    edit(path, "UPDATE entries SET name = 'evil.test/app' WHERE idx = 4")
    with Ledger.open(path) as ledger, pytest.raises(LedgerError, match="entry 4 does not match"):
        ledger.verify()


def test_edit_with_recomputed_tree_is_caught_by_checkpoint(path: Path, key: PrivateKey) -> None:
    filled(path, key, 6)
    edit(path, "UPDATE entries SET name = 'evil.test/app' WHERE idx = 4")
    rebuild_tree(path)
    with Ledger.open(path) as ledger:
        with pytest.raises(LedgerError, match="checkpoint at size 5 does not match"):
            ledger.verify()
        with pytest.raises(LedgerError, match="does not prove entry 4"):
            ledger.inclusion_proof(4)


def test_deleted_row_is_caught(path: Path, key: PrivateKey) -> None:
    filled(path, key, 8)
    edit(path, "DELETE FROM entries WHERE idx = 3")
    with Ledger.open(path) as ledger, pytest.raises(LedgerError, match="entry 3 is missing"):
        ledger.verify()


def test_deleted_last_row_is_caught(path: Path, key: PrivateKey) -> None:
    filled(path, key, 8)
    edit(path, "DELETE FROM entries WHERE idx = 7")
    rebuild_tree(path)
    with Ledger.open(path) as ledger, pytest.raises(LedgerError, match="size 8 covers entries"):
        ledger.verify()


def test_truncation_with_its_checkpoint_needs_a_known_checkpoint(
    path: Path, key: PrivateKey
) -> None:
    filled(path, key, 8)
    with Ledger.open(path) as ledger:
        saved = ledger.latest_checkpoint()
    assert saved is not None
    edit(path, "DELETE FROM entries WHERE idx >= 6", "DELETE FROM checkpoints WHERE size > 6")
    rebuild_tree(path)
    with Ledger.open(path) as ledger:
        assert ledger.verify().entries == 6  # the documented limit: a clean, shorter log
        with pytest.raises(LedgerError, match="known checkpoint covers 8: entries were deleted"):
            ledger.verify(known_checkpoint=saved)


def test_swapped_rows_are_caught(path: Path, key: PrivateKey) -> None:
    filled(path, key, 8)
    edit(
        path,
        "UPDATE entries SET idx = -1 WHERE idx = 2",
        "UPDATE entries SET idx = 2 WHERE idx = 5",
        "UPDATE entries SET idx = 5 WHERE idx = -1",
    )
    with Ledger.open(path) as ledger, pytest.raises(LedgerError, match="entry 2 does not match"):
        ledger.verify()
    rebuild_tree(path)
    with Ledger.open(path) as ledger, pytest.raises(LedgerError, match="size 3 does not match"):
        ledger.verify()


def test_forged_entry_is_caught(path: Path, key: PrivateKey) -> None:
    filled(path, key, 5)
    forger = generate()
    forged = statement(forger, "forged")
    pem = forger.public_key.pem
    edit(
        path,
        ("INSERT INTO signers (pem, key_id) VALUES (?, ?)", (pem, forger.public_key.key_id)),
        ("INSERT INTO entries VALUES (5, 'sign', ?, ?, ?, ?, ?,"
         " (SELECT id FROM signers WHERE pem = ?), '2024-01-01T00:00:00.000000Z')",
         (forged.subject, forged.name, SIMPLE_SIGNING, forged.payload, forged.signature, pem)),
    )  # fmt: skip
    with Ledger.open(path) as ledger, pytest.raises(LedgerError, match="entry 5 does not match"):
        ledger.verify()
    rebuild_tree(path)
    with Ledger.open(path) as ledger, pytest.raises(LedgerError, match=r"5\.\.5 are not covered"):
        ledger.verify()
    forge_checkpoint(path, 6, forger)
    with Ledger.open(path) as ledger:
        assert ledger.verify().writers == tuple(sorted([key.public_key.key_id,
                                                        forger.public_key.key_id]))  # fmt: skip
        with pytest.raises(LedgerError, match=r"size 6 is signed by key .*not a trusted writer"):
            ledger.verify(trusted_keys=[key.public_key])


def test_forged_checkpoints_are_caught(path: Path, key: PrivateKey) -> None:
    filled(path, key, 5)
    edit(path, ("UPDATE checkpoints SET root = ? WHERE size = 3", (b"\x00" * 32,)))
    with Ledger.open(path) as ledger, pytest.raises(LedgerError, match="size 3 has a signature"):
        ledger.verify()
    filled(path.with_name("b.db"), key, 5)
    edit(path.with_name("b.db"), "UPDATE checkpoints SET signature = "
         "(SELECT signature FROM checkpoints WHERE size = 4) WHERE size = 2")  # fmt: skip
    with (
        Ledger.open(path.with_name("b.db")) as ledger,
        pytest.raises(LedgerError, match="size 2 has a signature that does not verify"),
    ):
        ledger.verify()


def test_history_rewritten_with_another_key_is_caught(path: Path, key: PrivateKey) -> None:
    """Edit entry 2, re-sign it and every later checkpoint with the attacker's own key."""
    filled(path, key, 6)
    with Ledger.open(path) as ledger:
        known = ledger.latest_checkpoint()
    attacker = generate()
    evil = statement(attacker, "evil")
    pem = attacker.public_key.pem
    edit(
        path,
        ("INSERT INTO signers (pem, key_id) VALUES (?, ?)", (pem, attacker.public_key.key_id)),
        ("UPDATE entries SET subject = ?, payload = ?, signature = ?,"
         " signer = (SELECT id FROM signers WHERE pem = ?) WHERE idx = 2",
         (evil.subject, evil.payload, evil.signature, pem)),
    )  # fmt: skip
    rebuild_tree(path)
    for size in range(3, 7):
        forge_checkpoint(path, size, attacker)
    with Ledger.open(path) as ledger:
        assert ledger.verify().entries == 6  # consistent, but vouched for by a new key...
        with pytest.raises(LedgerError, match=r"size 3 is signed by key .*not a trusted writer"):
            ledger.verify(trusted_keys=[key.public_key])
        with pytest.raises(LedgerError, match="does not extend the known checkpoint at size 6"):
            ledger.verify(known_checkpoint=known)


def test_edited_tree_node_is_caught(path: Path, key: PrivateKey) -> None:
    filled(path, key, 8)
    edit(path, ("UPDATE nodes SET hash = ? WHERE level = 2 AND idx = 1", (b"\x01" * 32,)))
    with Ledger.open(path) as ledger:
        with pytest.raises(LedgerError, match=r"tree node \(2, 1\) does not match"):
            ledger.verify()
        with pytest.raises(LedgerError, match="does not prove entry 0"):
            ledger.inclusion_proof(0)


def test_wrongly_typed_column_is_caught(path: Path, key: PrivateKey) -> None:
    filled(path, key, 3)
    edit(path, "UPDATE entries SET subject = x'414243' WHERE idx = 1")
    with Ledger.open(path) as ledger, pytest.raises(LedgerError, match="entry 1 is malformed"):
        ledger.verify()


# ---------------------------------------------------------------- damaged files


def test_random_bytes_are_not_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "random.db"
    path.write_bytes(hashlib.sha512(b"seed").digest() * 200)
    with pytest.raises(LedgerError, match=str(path)) as caught:
        Ledger.open(path)
    assert caught.value.hint and caught.value.exit_code == 3


def test_other_sqlite_database_is_not_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    edit(path, "CREATE TABLE songs (title TEXT)")
    with pytest.raises(LedgerError, match="not a Sealgate ledger"):
        Ledger.open(path)


def test_damaged_pages_are_caught(path: Path, key: PrivateKey) -> None:
    filled(path, key, 300)
    data = bytearray(path.read_bytes())
    assert len(data) > 40_000
    data[20_000:24_000] = hashlib.sha512(b"noise").digest() * 62 + bytes(32)
    path.write_bytes(bytes(data))
    with pytest.raises(LedgerError), Ledger.open(path) as ledger:
        ledger.verify()


# ---------------------------------------------------------------- concurrent writers


def _writer(path: str, start: int, count: int) -> None:
    key = generate()
    with Ledger.open(path) as ledger:
        for n in range(start, start + count):
            add(ledger, key, n)


def test_two_processes_append_concurrently(path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(path), s, 50)) for s in (0, 1000)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    with Ledger.open(path) as ledger:
        report = ledger.verify()
        assert (report.entries, report.checkpoints) == (100, 100)
        assert len(report.writers) == 2
        subjects = {ledger.entry(i).subject for i in range(100)}
    assert subjects == {digest(n) for n in [*range(50), *range(1000, 1050)]}


# ---------------------------------------------------------------- export and import


def test_export_import_round_trip(tmp_path: Path, key: PrivateKey) -> None:
    source = filled(tmp_path / "a.db", key, 9)
    exported = tmp_path / "a.jsonl"
    with Ledger.open(source) as a:
        assert a.export(exported) == 9
        want = a.verify()
        wanted = [a.entry(i) for i in range(9)]
    with Ledger.open(tmp_path / "b.db") as b:
        assert b.import_(exported, trusted_keys=[key.public_key]) == 9
        assert b.verify().root == want.root and b.verify().checkpoints == 9
        assert [b.entry(i) for i in range(9)] == wanted
        assert b.import_(exported) == 0
    with Ledger.open(source) as a:  # the source grows; the copy takes only what is new
        for n in range(9, 12):
            add(a, key, n)
        a.export(exported)
    with Ledger.open(tmp_path / "b.db") as b:
        assert b.import_(exported) == 3
        assert b.verify().entries == 12
        add(b, key, 50)  # the copy may grow on its own, and still accept older exports
        assert b.import_(exported) == 0


def test_import_of_a_fork_is_refused(tmp_path: Path, key: PrivateKey) -> None:
    filled(tmp_path / "a.db", key, 5)
    with Ledger.open(tmp_path / "a.db") as a:
        a.export(tmp_path / "a.jsonl")
    with Ledger.open(tmp_path / "b.db") as b:
        for n in range(100, 103):
            add(b, key, n)
        before = b.verify()
        with pytest.raises(LedgerError, match="would fork history"):
            b.import_(tmp_path / "a.jsonl")
        assert b.verify() == before


def test_import_of_a_tampered_export_is_refused(tmp_path: Path, key: PrivateKey) -> None:
    filled(tmp_path / "a.db", key, 5)
    exported = tmp_path / "a.jsonl"
    with Ledger.open(tmp_path / "a.db") as a:
        a.export(exported)
    lines = exported.read_text().splitlines()

    def attempt(changed: list[str], match: str) -> None:
        bad = tmp_path / "bad.jsonl"
        bad.write_text("\n".join(changed) + "\n")
        with Ledger.open(tmp_path / "b.db") as b:
            with pytest.raises(LedgerError, match=match):
                b.import_(bad)
            assert b.size() == 0

    record = json.loads(lines[3])
    payload = json.loads(base64.b64decode(record["entry"]["payload"]))
    payload["critical"]["image"]["docker-manifest-digest"] = digest("evil")
    record["entry"]["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    attempt([*lines[:3], json.dumps(record), *lines[4:]], "entry 2 has a statement signature")
    record = json.loads(lines[3])
    record["entry"]["name"] = "evil.test/app"
    attempt([*lines[:3], json.dumps(record), *lines[4:]], "size 3 does not match")
    attempt([*lines[:3], *lines[4:]], "entry 2 is missing")
    attempt(lines[:-1], r"entries 4\.\.4 are not covered")
    checkpoint = json.loads(lines[-1])
    checkpoint["checkpoint"]["root"] = "00" * 32
    attempt([*lines[:-1], json.dumps(checkpoint)], "size 5 has a signature that does not verify")
    attempt([lines[0], "{not json", *lines[1:]], "bad.jsonl:2: not a valid ledger export record")
    attempt([*lines, lines[-1]], "checkpoint sizes must be distinct")
    with Ledger.open(tmp_path / "b.db") as b, pytest.raises(LedgerError, match="not a trusted"):
        b.import_(exported, trusted_keys=[generate().public_key])


def test_verify_head_is_remembered_until_anything_writes(tmp_path: Path, key: PrivateKey) -> None:
    """The watchdog asks for every verification; the answer is recomputed only after a write,
    ours or another connection's (a tamperer's included)."""
    path = filled(tmp_path / "head.db", key, 5)
    with Ledger.open(path) as ledger:
        first = ledger.verify_head([key.public_key])
        assert ledger.verify_head([key.public_key]) is first
        db = sqlite3.connect(path)
        with db:
            db.execute("UPDATE entries SET name = 'edited' WHERE idx = 2")
        db.close()
        with pytest.raises(LedgerError, match="do not hash to the signed checkpoint"):
            ledger.verify_head([key.public_key])
