"""The ledger's witness on real files: rollbacks, replacements and deletions are caught.

Each attack is what someone with write access to the ledger file (and not to
the state directory) can do: cut off the newest entries with their checkpoints
and recompute the stored tree, put another ledger or an empty file in its
place, or delete it. Without the witness every one of these passes verify().
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gate import commands
from gate.errors import LedgerError
from gate.keys import PrivateKey, generate
from gate.ledger import (
    Ledger,
    RollbackError,
    UntrustedWriterError,
    Witness,
    default_path,
    state_dir,
)
from gate.verify._stores import LedgerStore, MissingLedgerStore
from tests.unit.test_ledger import add, digest, edit, filled, rebuild_tree


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return generate()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger" / "ledger.db"


@pytest.fixture
def witness(tmp_path: Path, path: Path) -> Witness:
    return Witness.for_ledger(path, tmp_path / "state")


def grow(path: Path, witness: Witness, key: PrivateKey, count: int, start: int = 0) -> None:
    with Ledger.open(path, witness=witness) as ledger:
        for n in range(start, start + count):
            add(ledger, key, n)


def roll_back(path: Path, keep: int) -> None:
    """Cut the newest entries and their checkpoints, then recompute the tree: a clean log."""
    edit(
        path,
        ("DELETE FROM entries WHERE idx >= ?", (keep,)),
        ("DELETE FROM checkpoints WHERE size > ?", (keep,)),
    )
    rebuild_tree(path)


def test_every_append_raises_the_witness_and_it_never_goes_back(
    path: Path, witness: Witness, key: PrivateKey
) -> None:
    assert witness.load() is None
    grow(path, witness, key, 3)
    seen = witness.load()
    assert seen is not None and seen.size == 3
    document = json.loads(witness.path.read_text())
    assert (document["size"], document["root"]) == (3, seen.root.hex())
    assert document["ledger"] == str(path)
    assert document["note"].startswith("sealgate/ledger/v1\n3\n")
    with Ledger.open(path) as ledger:
        older = ledger.verify().latest
    grow(path, witness, key, 2, start=3)
    assert older is not None and not witness.record(older)
    assert witness.load() == Ledger.open(path).latest_checkpoint()


def test_a_ledger_written_before_the_witness_is_witnessed_on_open(
    path: Path, witness: Witness, key: PrivateKey
) -> None:
    filled(path, key, 4)
    assert witness.load() is None
    with Ledger.open(path, witness=witness) as ledger:
        assert ledger.verify_head() is not None
    seen = witness.load()
    assert seen is not None and seen.size == 4


def test_rolled_back_ledger_is_caught_by_every_open(
    path: Path, witness: Witness, key: PrivateKey
) -> None:
    grow(path, witness, key, 5)
    roll_back(path, 3)
    with Ledger.open(path) as ledger:  # the attack works without a witness: a clean, shorter log
        assert ledger.verify().entries == 3
    rolled = r"has 3 entries but the witness in .*state saw 5: it was rolled back or replaced"
    with Ledger.open(path, witness=witness) as ledger:
        with pytest.raises(RollbackError, match=rolled) as caught:
            ledger.verify_head()
        assert "witness import" in (caught.value.hint or "")
        with pytest.raises(RollbackError, match=rolled):
            ledger.verify()
        with pytest.raises(RollbackError, match=rolled):
            add(ledger, key, 99)  # appending would paper over the gap
        assert ledger.size() == 3
        store = LedgerStore(ledger)
        with pytest.raises(RollbackError, match=rolled):
            store.lookup(digest(1), attestations=False)


def test_rolled_back_and_regrown_ledger_is_caught(
    path: Path, witness: Witness, key: PrivateKey
) -> None:
    """Cut two entries, then append two others: the size is back, the history is not."""
    grow(path, witness, key, 5)
    roll_back(path, 3)
    with Ledger.open(path) as ledger:
        add(ledger, key, "a")
        add(ledger, key, "b")
    with (
        Ledger.open(path, witness=witness) as ledger,
        pytest.raises(RollbackError, match="does not extend the 5 entries the witness in"),
    ):
        ledger.verify_head()


def test_replaced_ledger_is_caught(
    tmp_path: Path, path: Path, witness: Witness, key: PrivateKey
) -> None:
    grow(path, witness, key, 2)
    other = tmp_path / "other.db"
    filled(other, key, 6)
    path.unlink()
    shutil.copy(other, path)
    with (
        Ledger.open(path, witness=witness) as ledger,
        pytest.raises(RollbackError, match="does not extend the 2 entries"),
    ):
        ledger.verify()
    path.unlink()
    path.write_bytes(b"")
    with (
        Ledger.open(path, witness=witness) as ledger,
        pytest.raises(RollbackError, match=r"has 0 entries but the witness .* saw 2"),
    ):
        ledger.verify_head()


def test_restoring_from_an_export_passes_again(
    tmp_path: Path, path: Path, witness: Witness, key: PrivateKey
) -> None:
    grow(path, witness, key, 5)
    with Ledger.open(path) as ledger:
        ledger.export(tmp_path / "backup.jsonl")
    roll_back(path, 2)
    with Ledger.open(path, witness=witness) as ledger:
        assert ledger.import_(tmp_path / "backup.jsonl") == 3
        assert ledger.verify().entries == 5
        add(ledger, key, 5)
    seen = witness.load()
    assert seen is not None and seen.size == 6


def test_importing_a_fork_past_the_witness_is_refused(
    tmp_path: Path, path: Path, witness: Witness, key: PrivateKey
) -> None:
    """A rolled-back ledger grown from an export of another history stays caught."""
    grow(path, witness, key, 4)
    roll_back(path, 2)
    fork = tmp_path / "fork.db"
    shutil.copy(path, fork)
    with Ledger.open(fork) as ledger:
        for n in ("x", "y", "z"):
            add(ledger, key, n)
        ledger.export(tmp_path / "fork.jsonl")
    with (
        Ledger.open(path, witness=witness) as ledger,
        pytest.raises(RollbackError, match="does not extend the 4 entries"),
    ):
        ledger.import_(tmp_path / "fork.jsonl")
    with Ledger.open(path) as ledger:
        assert ledger.size() == 2


def test_missing_ledger_with_a_witness_is_an_error_for_every_lookup(
    tmp_path: Path, path: Path, key: PrivateKey
) -> None:
    ctx = commands.Context(ledger_path=str(path), state_dir=str(tmp_path / "state"))
    assert ctx.ledger(create=False) is None
    assert [s.name for s in ctx.stores()] == ["registry"]  # no ledger, no witness: nothing to say
    ledger = ctx.ledger(create=True)
    assert ledger is not None
    add(ledger, key, 1)
    ledger.close()
    path.unlink()
    later = commands.Context(ledger_path=str(path), state_dir=str(tmp_path / "state"))
    stores = later.stores()
    assert isinstance(stores[-1], MissingLedgerStore)
    gone = r"the ledger .*ledger\.db is missing but the witness in .*state saw 1 entries"
    with pytest.raises(RollbackError, match=gone):
        [read] = stores[-1].reads((None, digest(1)), attestations=True)
        read()
    with pytest.raises(RollbackError, match=gone):
        later.ledger(create=True)
    assert not path.exists()


def test_an_unreadable_or_forged_witness_fails_closed(
    path: Path, witness: Witness, key: PrivateKey
) -> None:
    grow(path, witness, key, 2)
    good = witness.path.read_text()
    for bad, problem in (
        ("{", "not a valid ledger witness"),
        ("[]", "not a valid ledger witness"),
        ("[" * 60_000, "not a valid ledger witness"),
        ("x" * 70_000, "larger than"),
        (good.replace('"size": 2', '"size": 1', 1), "size or root differ"),
    ):
        witness.path.write_text(bad)
        with pytest.raises(LedgerError, match=problem), Ledger.open(path, witness=witness) as led:
            led.verify_head()
    document = json.loads(good)
    document["checkpoint"]["timestamp"] = "2020-01-01T00:00:00.000000Z"
    witness.path.write_text(json.dumps(document))
    with (
        Ledger.open(path, witness=witness) as ledger,
        pytest.raises(LedgerError, match="signature that does not verify"),
    ):
        ledger.verify_head()


def test_an_unwritable_state_directory_costs_protection_not_the_verification(
    tmp_path: Path, path: Path, key: PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the state directory should be")
    with Ledger.open(path, witness=Witness.for_ledger(path, blocked)) as ledger:
        add(ledger, key, 1)
        assert ledger.verify_head() is not None
    assert "could not update the ledger witness" in caplog.text


def test_wrong_writer_key_is_not_called_corruption(path: Path, key: PrivateKey) -> None:
    filled(path, key, 3)
    stranger = generate()
    with Ledger.open(path) as ledger:
        with pytest.raises(UntrustedWriterError, match="is intact, but all 3 of its") as caught:
            ledger.verify(trusted_keys=[stranger.public_key])
        assert "move" not in (caught.value.hint or "") and "--key" in (caught.value.hint or "")
        assert ledger.verify(trusted_keys=[key.public_key]).entries == 3


def test_state_dir_is_the_watchdogs_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALGATE_LEDGER", str(tmp_path / "data" / "ledger.db"))
    monkeypatch.delenv("SEALGATE_STATE_DIR", raising=False)
    assert state_dir() == default_path().parent / "watch" == tmp_path / "data" / "watch"
    monkeypatch.setenv("SEALGATE_STATE_DIR", str(tmp_path / "state"))
    assert state_dir() == tmp_path / "state"
    one = Witness.for_ledger(tmp_path / "a.db")
    assert one.path.parent == tmp_path / "state"
    assert Witness.for_ledger(tmp_path / "b.db").path != one.path
