"""The ledger in one SQLite file: appends, reads, proofs, verification, export and import."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate import merkle
from gate.errors import LedgerError, UsageError
from gate.keys import PrivateKey, PublicKey
from gate.ledger._export import read_export, write_export
from gate.ledger._history import (
    check_extends,
    check_head,
    check_witnessed,
    check_writers,
    replay,
    tree_of,
)
from gate.ledger._records import HINT, Checkpoint, Entry, SignedStatement, VerifyReport, format_time
from gate.ledger._schema import (
    CHECKPOINT_SQL,
    ENTRY_SQL,
    SCHEMA,
    SCHEMA_VERSION,
    TABLES,
    row_checkpoint,
    row_entry,
)
from gate.refs import parse_digest

if TYPE_CHECKING:
    from gate.ledger._witness import Witness

LEDGER_ENV = "SEALGATE_LEDGER"


def default_path() -> Path:
    """``$SEALGATE_LEDGER``, else ``<XDG_DATA_HOME or ~/.local/share>/sealgate/ledger.db``."""
    if os.environ.get(LEDGER_ENV):
        return Path(os.environ[LEDGER_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "sealgate" / "ledger.db"


class Ledger:
    """The log in one SQLite file; safe for several writer processes on one host.

    WAL mode and ``synchronous=NORMAL``: a crash never corrupts the file, a power
    cut may lose the last few appends (their checkpoints vanish with them).
    """

    def __init__(self, path: Path, db: sqlite3.Connection, witness: Witness | None = None) -> None:
        self.path = path
        self._db = db
        self.witness = witness
        """Where the largest checkpoint seen is kept; None: this ledger is not held to one."""
        self._lock = threading.RLock()
        """One connection shared by the verifier's threads: one transaction at a time."""
        self._writes = 0
        """Our own committed writes (SQLite's data_version counts only other connections')."""
        self._head: tuple[tuple[object, ...], Checkpoint | None] | None = None

    @classmethod
    def open(cls, path: Path | str | None = None, *, witness: Witness | None = None) -> Ledger:
        """Open or create the ledger; LedgerError (with the path) if it is not a usable one.

        With a ``witness``, every verification also proves the ledger extends
        the largest checkpoint it saw, and every new checkpoint is recorded there.
        """
        where = Path(path).expanduser() if path is not None else default_path()
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(where, timeout=60.0, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as e:
            raise LedgerError(f"cannot open the ledger {where}: {e}", hint=HINT) from e
        ledger = cls(where, db, witness)
        try:
            ledger._prepare()
        except BaseException:
            db.close()
            raise
        return ledger

    def _prepare(self) -> None:
        self._execute("PRAGMA synchronous=NORMAL")
        with self._transaction() as db:
            found = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = {row[0] for row in found}
        if not tables:
            with self._transaction(write=True) as db:  # a fresh file; another process may race us
                if not db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone():
                    for statement in SCHEMA:
                        db.execute(statement)
                    db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                    db.execute("INSERT INTO tree VALUES (1, 0, x'')")
            tables = set(TABLES)
        if not tables >= TABLES:
            raise LedgerError(f"{self.path} is an SQLite file but not a Sealgate ledger")
        with self._transaction() as db:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            version = db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        if version is None or version[0] != SCHEMA_VERSION:
            raise LedgerError(f"{self.path} has an unsupported ledger schema", hint=HINT)
        if mode != "wal":
            self._execute("PRAGMA journal_mode=WAL")

    def _error(self, e: sqlite3.Error) -> LedgerError:
        return LedgerError(f"the ledger {self.path} cannot be used: {e}", hint=HINT)

    def _execute(self, sql: str) -> None:
        try:
            self._db.execute(sql)
        except sqlite3.Error as e:
            raise self._error(e) from e

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction; IMMEDIATE takes the write lock first, so appends queue, not fail."""
        with self._lock:
            self._execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield self._db
                self._db.execute("COMMIT")
                if write:
                    self._writes += 1
            except BaseException as e:
                if self._db.in_transaction:  # a failed ROLLBACK says less than the original error
                    with suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise self._error(e) from e
                raise

    # ------------------------------------------------------------ writing

    def append(
        self, *, kind: str, subject: str, name: str, payload_type: str, payload: bytes,
        signature: bytes, public_key: PublicKey, writer: PrivateKey,
    ) -> Entry:  # fmt: skip
        """Append one verified statement and a new checkpoint signed by ``writer``, atomically."""
        one = SignedStatement(kind, subject, name, payload_type, payload, signature, public_key)
        return self.append_many([one], writer=writer)[0]

    def append_many(
        self, statements: Sequence[SignedStatement], *, writer: PrivateKey
    ) -> list[Entry]:
        """Append several statements under one checkpoint; UsageError if any does not verify."""
        for statement in statements:
            statement.check()
        if not statements:
            return []
        seen = self._witnessed()
        with self._transaction(write=True) as db:
            compact = self._compact(db)
            if seen is not None:  # never append to a rolled-back ledger: cheap, from stored nodes
                self._check_witnessed(seen, (compact.size, compact.root(), self._getter(db)))
            now = datetime.now(UTC)
            entries, nodes, rows = [], [], []
            for statement in statements:
                s = statement
                entry = Entry(compact.size, s.kind, s.subject, s.name, s.payload_type, s.payload,
                              s.signature, s.public_key.pem, now)  # fmt: skip
                compact, created = compact.append(merkle.leaf_hash(entry.leaf_bytes()))
                nodes.extend(created)
                signer = self._signer(db, entry.public_key, s.public_key.key_id)
                rows.append((entry.index, s.kind, s.subject, s.name, s.payload_type, s.payload,
                             s.signature, signer, format_time(now)))  # fmt: skip
                entries.append(entry)
            db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.executemany("INSERT INTO nodes VALUES (?, ?, ?)", nodes)
            checkpoint = Checkpoint.create(compact.size, compact.root(), now, writer)
            self._advance(db, compact, [checkpoint])
        self._note(checkpoint)
        return entries

    # ------------------------------------------------------------ the witness

    def _witnessed(self) -> Checkpoint | None:
        """Read it before the ledger: it is written only after a commit, so it is never ahead."""
        return self.witness.load() if self.witness is not None else None

    def _check_witnessed(
        self, seen: Checkpoint, tree: tuple[int, bytes, merkle.NodeGetter]
    ) -> None:
        assert self.witness is not None
        check_witnessed(self.path, seen, self.witness.path.parent, tree, self.witness.hint)

    def check_extends_witness(self, witnessed: Checkpoint, where: object, hint: str) -> None:
        """RollbackError unless the entries extend ``witnessed`` (``witness import``)."""
        with self._transaction() as db:
            leaves = [merkle.leaf_hash(e.leaf_bytes()) for e in self._entries(db)]
        check_witnessed(self.path, witnessed, where, tree_of(leaves), hint)

    def _note(self, checkpoint: Checkpoint) -> None:
        """Record a checkpoint already shown to extend the witness (a no-op unless larger)."""
        if self.witness is not None:
            self.witness.record(checkpoint)

    def _compact(self, db: sqlite3.Connection) -> merkle.CompactRange:
        size, frontier = db.execute("SELECT size, frontier FROM tree").fetchone()
        hashes = tuple(frontier[i : i + merkle.HASH_SIZE] for i in range(0, len(frontier), 32))
        try:
            return merkle.CompactRange(size, hashes)
        except ValueError as e:
            raise LedgerError(f"the tree state in {self.path} is damaged", hint=HINT) from e

    def _signer(self, db: sqlite3.Connection, pem: bytes, key_id: str) -> int:
        """The row ID of a signer key, added on first use (keys repeat; entries point to them)."""
        row = db.execute("SELECT id FROM signers WHERE pem = ?", (pem,)).fetchone()
        if row is None:
            cursor = db.execute("INSERT INTO signers (pem, key_id) VALUES (?, ?)", (pem, key_id))
            return int(cursor.lastrowid or 0)
        return int(row[0])

    def _advance(
        self, db: sqlite3.Connection, compact: merkle.CompactRange, checkpoints: list[Checkpoint]
    ) -> None:
        """Record checkpoints and the new frontier (the end of every write transaction)."""
        for c in checkpoints:
            signer = self._signer(db, c.public_key, c.key_id)
            db.execute(
                "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?)",
                (c.size, c.root, format_time(c.timestamp), signer, c.signature),
            )
        frontier = b"".join(compact.hashes)
        db.execute("UPDATE tree SET size = ?, frontier = ?", (compact.size, frontier))

    # ------------------------------------------------------------ reading

    def size(self) -> int:
        with self._transaction() as db:
            return self._compact(db).size

    def entry(self, index: int) -> Entry:
        with self._transaction() as db:
            row = db.execute(f"{ENTRY_SQL} WHERE e.idx = ?", (index,)).fetchone()
        if row is None:
            raise UsageError(f"the ledger {self.path} has no entry {index}")
        return row_entry(row)

    def entries_for(self, subject: str) -> list[Entry]:
        """Every statement about ``subject``, oldest first (indexed lookup)."""
        parse_digest(subject)
        with self._transaction() as db:
            sql = f"{ENTRY_SQL} WHERE e.subject = ? ORDER BY e.idx"
            rows = db.execute(sql, (subject,)).fetchall()
        return [row_entry(row) for row in rows]

    def latest_checkpoint(self) -> Checkpoint | None:
        with self._transaction() as db:
            row = db.execute(f"{CHECKPOINT_SQL} ORDER BY c.size DESC LIMIT 1").fetchone()
        return None if row is None else row_checkpoint(row)

    def _entries(self, db: sqlite3.Connection) -> Iterator[Entry]:
        """Every entry, oldest first, read as the caller consumes them."""
        for row in db.execute(f"{ENTRY_SQL} ORDER BY e.idx"):
            yield row_entry(row)

    def _checkpoints(self, db: sqlite3.Connection) -> list[Checkpoint]:
        return [row_checkpoint(r) for r in db.execute(f"{CHECKPOINT_SQL} ORDER BY c.size")]

    def _getter(self, db: sqlite3.Connection) -> merkle.NodeGetter:
        def get(level: int, index: int) -> bytes:
            sql = "SELECT hash FROM nodes WHERE level = ? AND idx = ?"
            row = db.execute(sql, (level, index)).fetchone()
            if row is None:
                raise LedgerError(f"tree node ({level}, {index}) is missing", hint=HINT)
            return bytes(row[0])

        return get

    # ------------------------------------------------------------ proofs

    def inclusion_proof(self, subject_or_index: str | int) -> dict[str, Any]:
        """A JSON-able proof that an entry (the newest for a digest) is in the latest checkpoint."""
        with self._transaction() as db:
            index = subject_or_index
            if isinstance(index, str):
                sql = "SELECT MAX(idx) FROM entries WHERE subject = ?"
                index = db.execute(sql, (parse_digest(index),)).fetchone()[0]
                if index is None:
                    raise UsageError(f"the ledger {self.path} has no entry for {subject_or_index}")
            entry_row = db.execute(f"{ENTRY_SQL} WHERE e.idx = ?", (index,)).fetchone()
            cp_row = db.execute(f"{CHECKPOINT_SQL} ORDER BY c.size DESC LIMIT 1").fetchone()
            if entry_row is None or cp_row is None or index >= cp_row[0]:
                raise UsageError(f"the ledger {self.path} has no checkpointed entry {index}")
            checkpoint, entry = row_checkpoint(cp_row), row_entry(entry_row)
            hashes = merkle.inclusion_path(index, checkpoint.size, self._getter(db))
        leaf = merkle.leaf_hash(entry.leaf_bytes())
        if not merkle.verify_inclusion(index, checkpoint.size, leaf, hashes, checkpoint.root):
            raise LedgerError(f"the stored tree does not prove entry {index}", hint=HINT)
        return {
            "entry": entry.to_dict(),
            "leaf_index": index,
            "tree_size": checkpoint.size,
            "leaf_hash": leaf.hex(),
            "hashes": [h.hex() for h in hashes],
            "checkpoint": checkpoint.to_dict(),
        }

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """RFC 9162 §2.1.4 proof that the tree at ``new_size`` extends the one at ``old_size``."""
        with self._transaction() as db:
            size = self._compact(db).size
            if not 0 <= old_size <= new_size <= size:
                raise UsageError(f"no consistency proof from {old_size} to {new_size} of {size}")
            return merkle.consistency_path(old_size, new_size, self._getter(db))

    # ------------------------------------------------------------ verification

    def verify(
        self,
        trusted_keys: Sequence[PublicKey] | None = None,
        known_checkpoint: Checkpoint | None = None,
    ) -> VerifyReport:
        """Recompute everything from the entry rows; LedgerError names the first problem.

        Checks index contiguity, each statement signature, each leaf, every
        checkpoint (signature, trusted writer, root at its size, consistency with
        the one before), every stored node and the tree state; and, when given,
        that the history extends ``known_checkpoint`` and the witness (the only
        ways to notice that the newest entries were cut off together with their
        checkpoints). Who signed the checkpoints is asked last, so a wrong
        ``trusted_keys`` is UntrustedWriterError, never a corrupt-ledger error.
        """
        seen = self._witnessed()
        with self._transaction() as db:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise LedgerError(f"{self.path} fails SQLite's integrity check", hint=HINT)
            checkpoints = self._checkpoints(db)
            rows = db.execute(
                ENTRY_SQL.replace(" e.created ", " e.created, COALESCE(n.hash, x'') ")
                + " LEFT JOIN nodes n ON n.level = 0 AND n.idx = e.idx ORDER BY e.idx"
            )
            pairs = ((row_entry(r), bytes(r[9])) for r in rows)
            leaves = replay(pairs, checkpoints, None)
            tree = merkle.levels(leaves)
            stored = db.execute("SELECT level, idx, hash FROM nodes ORDER BY level, idx")
            expected = ((lv, i, h) for lv, hashes in enumerate(tree) for i, h in enumerate(hashes))
            for want, got in zip(expected, stored, strict=False):
                if want != (got[0], got[1], bytes(got[2])):
                    raise LedgerError(f"tree node ({got[0]}, {got[1]}) does not match the entries")
            count = db.execute("SELECT COUNT(*) FROM nodes").fetchone()[0]
            if count != sum(len(level) for level in tree):
                raise LedgerError(f"the ledger holds {count} tree nodes, not what its entries make")
            compact = self._compact(db)
            if compact != merkle.CompactRange.at(len(leaves), merkle.getter(tree)):
                raise LedgerError("the stored tree state does not match the entries", hint=HINT)
        root = compact.root()
        if seen is not None:
            self._check_witnessed(seen, (len(leaves), root, merkle.getter(tree)))
        if known_checkpoint is not None:
            check_extends(known_checkpoint, len(leaves), root, merkle.getter(tree), trusted_keys)
        latest = checkpoints[-1] if checkpoints else None
        if latest is not None:
            self._note(latest)
        check_writers(checkpoints, trusted_keys, f"the ledger {self.path}")
        writers = tuple(sorted({c.key_id for c in checkpoints}))
        return VerifyReport(len(leaves), len(checkpoints), root.hex(), writers, latest)

    def verify_head(self, trusted_keys: Sequence[PublicKey] | None = None) -> Checkpoint | None:
        """The cheap check every verification runs before trusting an entry.

        Recomputes every leaf from the entry rows and checks the root against
        the newest checkpoint signed by a trusted writer (any valid writer when
        ``trusted_keys`` is None). An edited, deleted, reordered or inserted row
        changes that root, and a matching checkpoint cannot be forged without a
        writer key. Entries after that checkpoint may exist (other writers on
        this host), but none of them may be signed by a trusted key: every
        trusted append writes a trusted checkpoint, so an uncovered trusted
        entry means checkpoints were removed. With a witness, the whole tree must
        extend the largest checkpoint it saw (RollbackError), and a larger head
        is recorded there. Skips what ``verify()`` adds: each statement
        signature, older checkpoints and the stored nodes.
        """
        trusted = (
            tuple(sorted(k.key_id for k in trusted_keys)) if trusted_keys is not None else None
        )
        seen = self._witnessed()
        witnessed = (seen.size, seen.root) if seen is not None else None
        with self._transaction() as db:
            # NOTE: data_version changes when any other connection (another process, or
            # someone editing the file) commits; our own writes are counted in _writes.
            version = int(db.execute("PRAGMA data_version").fetchone()[0])
            key = (version, self._writes, trusted, witnessed)
            if self._head is not None and self._head[0] == key:
                return self._head[1]
            checkpoints = self._checkpoints(db)
            entries = list(self._entries(db))
        leaves = [merkle.leaf_hash(e.leaf_bytes()) for e in entries]
        head = check_head(self.path, entries, checkpoints, trusted_keys, leaves)
        if seen is not None:
            self._check_witnessed(seen, tree_of(leaves))
        if head is not None:
            self._note(head)
        self._head = (key, head)
        return head

    # ------------------------------------------------------------ export and import

    def export(self, path: Path | str) -> int:
        """Write all entries and checkpoints as JSON Lines; return the number of entries."""
        target = Path(path)
        with self._transaction() as db:
            checkpoints = self._checkpoints(db)
            size = self._compact(db).size
            write_export(target, size, self._entries(db), checkpoints)
        return size

    def import_(self, path: Path | str, *, trusted_keys: Sequence[PublicKey] | None = None) -> int:
        """Append the entries of an export that extends this ledger; return how many were new.

        Every signature and the whole tree are checked first; a history that
        differs from ours in any shared entry is refused ("would fork history").
        All or nothing: one transaction.
        """
        entries, checkpoints = read_export(Path(path))
        leaves = replay(((e, None) for e in entries), checkpoints, None)
        check_writers(checkpoints, trusted_keys, f"the export {path}")
        theirs = merkle.getter(merkle.levels(leaves))
        their_root = merkle.CompactRange.at(len(leaves), theirs).root()
        seen = self._witnessed()
        with self._transaction(write=True) as db:
            compact = self._compact(db)
            shared = min(compact.size, len(leaves))
            ours = compact.root() if shared == compact.size else merkle.CompactRange.at(
                shared, self._getter(db)).root()  # fmt: skip
            proof = merkle.consistency_path(shared, len(leaves), theirs)
            if not merkle.verify_consistency(shared, len(leaves), ours, their_root, proof):
                raise LedgerError(
                    f"importing {path} would fork history: its first {shared} entries differ "
                    f"from those in {self.path}", hint="import only exports of this ledger",
                )  # fmt: skip
            new = entries[compact.size :]
            if new and seen is not None:  # restoring a rolled-back ledger passes; a fork does not
                self._check_witnessed(seen, (len(leaves), their_root, theirs))
            for entry in new:
                signer = self._signer(db, entry.public_key, entry.key_id)
                db.execute(
                    "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (entry.index, entry.kind, entry.subject, entry.name, entry.payload_type,
                     entry.payload, entry.signature, signer, format_time(entry.created)),
                )  # fmt: skip
                compact, created = compact.append(leaves[entry.index])
                db.executemany("INSERT INTO nodes VALUES (?, ?, ?)", created)
            if new:
                self._advance(db, compact, [c for c in checkpoints if c.size > new[0].index])
        if new:
            self._note(max(checkpoints, key=lambda c: c.size))
        return len(new)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
