"""The embedded tamper-evident ledger: an append-only log of signed statements in one SQLite file.

Every sign / untrust / unsupport / attest statement is a leaf of an RFC 6962
Merkle tree (``gate.merkle``); every append writes a checkpoint (tree size,
root, time) signed by the appending command's key, in the same transaction.

Tamper evidence, and its limit: whoever can edit the file can also recompute a
stored tree, so ``verify()`` trusts nothing derived: it recomputes every leaf
from the entry columns and holds each signed checkpoint to it. Rewriting
history therefore needs a writer's private key. Deleting the newest entries
*together with* their checkpoints leaves a shorter, self-consistent log; only a
checkpoint saved elsewhere (``export``, a proof, ``known_checkpoint``) reveals
that. Without ``trusted_keys`` a checkpoint signed by any key it names is
accepted, so verify() then proves consistency, not authorship.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from gate import merkle
from gate.errors import LedgerError, SealgateError, UsageError
from gate.keys import PrivateKey, PublicKey, load_public_key
from gate.refs import parse_digest

KINDS = ("sign", "untrust", "unsupport", "attest")
ORIGIN = "sealgate/ledger/v1"
"""First line of every checkpoint body, naming what the signature is over (C2SP tlog-checkpoint)."""
LEDGER_ENV = "SEALGATE_LEDGER"
EXPORT_FORMAT = "sealgate-ledger-export"
_SCHEMA_VERSION = "1"
_HINT = "restore the ledger from an export ('sealgate ledger import') or move the file aside"
_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE signers (id INTEGER PRIMARY KEY, pem BLOB NOT NULL UNIQUE, key_id TEXT NOT NULL)",
    "CREATE TABLE entries (idx INTEGER PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL,"
    " name TEXT NOT NULL, payload_type TEXT NOT NULL, payload BLOB NOT NULL,"
    " signature BLOB NOT NULL, signer INTEGER NOT NULL, created TEXT NOT NULL)",
    "CREATE INDEX entries_subject ON entries (subject)",
    "CREATE TABLE nodes (level INTEGER, idx INTEGER, hash BLOB NOT NULL,"
    " PRIMARY KEY (level, idx)) WITHOUT ROWID",
    "CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL,"
    " timestamp TEXT NOT NULL, signer INTEGER NOT NULL, signature BLOB NOT NULL)",
    "CREATE TABLE tree (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL,"
    " frontier BLOB NOT NULL)",
)
_TABLES = {"meta", "signers", "entries", "nodes", "checkpoints", "tree"}
_ENTRY_SQL = (
    "SELECT e.idx, e.kind, e.subject, e.name, e.payload_type, e.payload, e.signature,"
    " COALESCE(s.pem, x''), e.created FROM entries e LEFT JOIN signers s ON s.id = e.signer"
)
_CHECKPOINT_SQL = (
    "SELECT c.size, c.root, c.timestamp, COALESCE(s.key_id, ''), c.signature, COALESCE(s.pem, x'')"
    " FROM checkpoints c LEFT JOIN signers s ON s.id = c.signer"
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(text, validate=True)


def _time(moment: datetime) -> str:
    """One spelling per instant, since it is hashed: UTC, microseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError("expected an RFC 3339 time")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time '{text}' has no time zone")
    return moment.astimezone(UTC)


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected text")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("expected a non-negative integer")
    return value


@lru_cache(maxsize=512)
def _public_key(pem: bytes) -> PublicKey:
    """Parse a stored PEM once; verify() meets the same few keys thousands of times."""
    return load_public_key(pem.decode("ascii"))


@dataclass(frozen=True)
class SignedStatement:
    """What a caller asks to append: statement bytes, their signature, and the signer's key."""

    kind: str
    subject: str
    name: str
    payload_type: str
    payload: bytes
    signature: bytes
    public_key: PublicKey

    def check(self) -> None:
        """Refuse a statement the ledger would later report as tampered (UsageError)."""
        if self.kind not in KINDS:
            kinds = ", ".join(KINDS)
            raise UsageError(f"unknown ledger entry kind '{self.kind}'; use one of {kinds}")
        parse_digest(self.subject)
        if not self.public_key.verify(self.signature, self.payload):
            raise UsageError(
                f"the {self.kind} statement for {self.subject} is not signed by key "
                f"{self.public_key.short_id}; nothing was written to the ledger"
            )


@dataclass(frozen=True)
class Entry:
    """One signed statement in the log; its Merkle leaf is ``leaf_bytes()``."""

    index: int
    kind: str
    """``sign``, ``untrust``, ``unsupport`` or ``attest``."""
    subject: str
    """The image digest the statement is about, ``sha256:<hex>``."""
    name: str
    """The image name as given; informational (not signed by the statement, but in the leaf)."""
    payload_type: str
    payload: bytes
    """The exact signed statement bytes, never re-serialised (STYLE.md 7)."""
    signature: bytes
    public_key: bytes
    """The statement signer's PEM public key, byte for byte as stored."""
    created: datetime

    @property
    def key_id(self) -> str:
        return _public_key(self.public_key).key_id

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; bytes are base64 so the leaf serialisation has one spelling."""
        return {
            "index": self.index,
            "kind": self.kind,
            "subject": self.subject,
            "name": self.name,
            "payload_type": self.payload_type,
            "payload": _b64(self.payload),
            "signature": _b64(self.signature),
            "public_key": _b64(self.public_key),
            "created": _time(self.created),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        """Strict inverse of to_dict(): an unknown field would ride along unhashed, so refuse it."""
        if set(data) != set(_ENTRY_FIELDS):
            raise ValueError(f"entry fields must be exactly {', '.join(_ENTRY_FIELDS)}")
        return cls(
            _int(data["index"]), _str(data["kind"]), _str(data["subject"]), _str(data["name"]),
            _str(data["payload_type"]), _unb64(data["payload"]), _unb64(data["signature"]),
            _unb64(data["public_key"]), _parse_time(data["created"]),
        )  # fmt: skip

    def leaf_bytes(self) -> bytes:
        """Canonical serialisation hashed into the tree: sorted-key compact ASCII JSON."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode("ascii")

    def problem(self) -> str | None:
        """Why this entry is not a valid signed statement, or None."""
        if self.kind not in KINDS:
            return f"has unknown kind '{self.kind}'"
        try:
            parse_digest(self.subject)
            key = _public_key(self.public_key)
        except (SealgateError, UnicodeDecodeError):
            return "has a malformed subject digest or signer key"
        if not key.verify(self.signature, self.payload):
            return "has a statement signature that does not verify: payload or signature changed"
        return None


_ENTRY_FIELDS = tuple(Entry.__dataclass_fields__)


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: size, root and time, signed by the writer (a C2SP-style signed note)."""

    size: int
    root: bytes
    timestamp: datetime
    key_id: str
    signature: bytes
    public_key: bytes
    """The writer's PEM public key, so checkpoints by different writers can be checked."""

    @classmethod
    def create(cls, size: int, root: bytes, timestamp: datetime, writer: PrivateKey) -> Checkpoint:
        key = writer.public_key
        pem = key.pem
        unsigned = cls(size, root, timestamp, key.key_id, b"", pem)
        return cls(size, root, timestamp, key.key_id, writer.sign(unsigned.body()), pem)

    def body(self) -> bytes:
        """The signed text. NOTE: C2SP tlog-checkpoint: origin, size, base64 root, extensions."""
        root, moment = _b64(self.root), _time(self.timestamp)
        return f"{ORIGIN}\n{self.size}\n{root}\ntimestamp {moment}\n".encode()

    def note(self) -> str:
        """The body and a signature line, as a signed note is shown."""
        signature = _b64(bytes.fromhex(self.key_id)[:4] + self.signature)
        return f"{self.body().decode()}\n\u2014 {ORIGIN} {signature}\n"

    def problem(self, trusted: Sequence[PublicKey] | None = None) -> str | None:
        """Why this checkpoint cannot be believed, or None."""
        try:
            key = _public_key(self.public_key)
        except (SealgateError, UnicodeDecodeError):
            return "has an unreadable writer key"
        if key.key_id != self.key_id:
            return "names a key ID that is not its writer key's"
        if not key.verify(self.signature, self.body()):
            return "has a signature that does not verify: it was edited or forged"
        if trusted is not None and key.key_id not in {k.key_id for k in trusted}:
            return f"is signed by key {key.short_id}, which is not a trusted writer"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "root": self.root.hex(),
            "timestamp": _time(self.timestamp),
            "key_id": self.key_id,
            "signature": _b64(self.signature),
            "public_key": self.public_key.decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        return cls(
            _int(data["size"]), bytes.fromhex(_str(data["root"])), _parse_time(data["timestamp"]),
            _str(data["key_id"]), _unb64(data["signature"]),
            _str(data["public_key"]).encode("ascii"),
        )  # fmt: skip


@dataclass(frozen=True)
class VerifyReport:
    """What a clean verify() checked."""

    entries: int
    checkpoints: int
    root: str
    """Hex root of the whole tree."""
    writers: tuple[str, ...]
    """Key IDs that signed checkpoints, so a caller can see who vouches for the history."""
    latest: Checkpoint | None


def default_path() -> Path:
    """``$SEALGATE_LEDGER``, else ``<XDG_DATA_HOME or ~/.local/share>/sealgate/ledger.db``."""
    if os.environ.get(LEDGER_ENV):
        return Path(os.environ[LEDGER_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "sealgate" / "ledger.db"


def _row_entry(row: Sequence[Any]) -> Entry:
    try:
        blobs = [row[i] for i in (5, 6, 7)]
        if not all(isinstance(b, bytes) for b in blobs):
            raise ValueError("a binary column holds text")
        payload, signature, pem = blobs
        kind, subject, name, payload_type = (_str(row[i]) for i in (1, 2, 3, 4))
        return Entry(_int(row[0]), kind, subject, name, payload_type, payload, signature, pem,
                     _parse_time(row[8]))  # fmt: skip
    except (ValueError, TypeError) as e:
        raise LedgerError(f"ledger entry {row[0]} is malformed ({e})", hint=_HINT) from e


def _row_checkpoint(row: Sequence[Any]) -> Checkpoint:
    try:
        if not isinstance(row[5], bytes):
            raise ValueError("the writer key is not binary")
        root, signature = bytes(row[1]), bytes(row[4])
        return Checkpoint(row[0], root, _parse_time(row[2]), _str(row[3]), signature, row[5])
    except (ValueError, TypeError) as e:
        raise LedgerError(f"checkpoint at size {row[0]} is malformed: the file was edited") from e


def _replay(
    rows: Iterable[tuple[Entry, bytes | None]],
    checkpoints: Sequence[Checkpoint],
    trusted: Sequence[PublicKey] | None,
) -> list[bytes]:
    """Recompute the tree from entries and hold every checkpoint to it; return the leaf hashes.

    ``rows`` pairs each entry with its stored leaf hash (None: nothing to compare).
    Raises LedgerError naming the first entry or checkpoint that is wrong.
    """
    ordered = sorted(checkpoints, key=lambda c: c.size)
    sizes = [c.size for c in ordered]
    if len(set(sizes)) != len(sizes) or (sizes and sizes[0] < 1):
        raise LedgerError("checkpoint sizes must be distinct and positive", hint=_HINT)
    pending = iter(ordered)
    checkpoint = next(pending, None)
    leaves: list[bytes] = []
    compact = merkle.CompactRange()
    for entry, stored in rows:
        index = len(leaves)
        if entry.index != index:
            raise LedgerError(f"ledger entry {index} is missing (the next entry is {entry.index})")
        problem = entry.problem()
        if problem:
            raise LedgerError(f"ledger entry {index} {problem}", hint=_HINT)
        leaf = merkle.leaf_hash(entry.leaf_bytes())
        if stored is not None and stored != leaf:
            raise LedgerError(f"ledger entry {index} does not match its tree leaf: edited or moved")
        leaves.append(leaf)
        compact, _ = compact.append(leaf)
        while checkpoint is not None and checkpoint.size <= compact.size:
            problem = checkpoint.problem(trusted)
            if problem:
                raise LedgerError(f"the checkpoint at size {checkpoint.size} {problem}", hint=_HINT)
            if checkpoint.size != compact.size or checkpoint.root != compact.root():
                raise LedgerError(
                    f"the checkpoint at size {checkpoint.size} does not match ledger entries "
                    f"0..{checkpoint.size - 1}: an entry was edited, removed or reordered",
                    hint=_HINT,
                )  # fmt: skip
            checkpoint = next(pending, None)
    if checkpoint is not None:
        raise LedgerError(
            f"the checkpoint at size {checkpoint.size} covers entries that are missing "
            f"(there are {len(leaves)}): entries were deleted", hint=_HINT,
        )  # fmt: skip
    latest = ordered[-1].size if ordered else 0
    if latest < len(leaves):
        raise LedgerError(
            f"ledger entries {latest}..{len(leaves) - 1} are not covered by a signed checkpoint"
        )
    # Each root matched its prefix, so consistency holds; proving it between successive
    # checkpoints also exercises the proof code a third party relies on (RFC 9162 §2.1.4).
    get = merkle.getter(merkle.levels(leaves))
    for older, newer in itertools.pairwise(ordered):
        proof = merkle.consistency_path(older.size, newer.size, get)
        if not merkle.verify_consistency(older.size, newer.size, older.root, newer.root, proof):
            raise LedgerError(f"checkpoints at sizes {older.size}, {newer.size} are inconsistent")
    return leaves


class Ledger:
    """The log in one SQLite file; safe for several writer processes on one host.

    WAL mode and ``synchronous=NORMAL``: a crash never corrupts the file, a power
    cut may lose the last few appends (their checkpoints vanish with them).
    """

    def __init__(self, path: Path, db: sqlite3.Connection) -> None:
        self.path = path
        self._db = db
        self._lock = threading.RLock()
        """One connection shared by the verifier's threads: one transaction at a time."""

    @classmethod
    def open(cls, path: Path | str | None = None) -> Ledger:
        """Open or create the ledger; LedgerError (with the path) if it is not a usable one."""
        where = Path(path).expanduser() if path is not None else default_path()
        try:
            where.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(where, timeout=60.0, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as e:
            raise LedgerError(f"cannot open the ledger {where}: {e}", hint=_HINT) from e
        ledger = cls(where, db)
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
                    for statement in _SCHEMA:
                        db.execute(statement)
                    db.execute("INSERT INTO meta VALUES ('schema', ?)", (_SCHEMA_VERSION,))
                    db.execute("INSERT INTO tree VALUES (1, 0, x'')")
            tables = set(_TABLES)
        if not tables >= _TABLES:
            raise LedgerError(f"{self.path} is an SQLite file but not a Sealgate ledger")
        with self._transaction() as db:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            version = db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        if version is None or version[0] != _SCHEMA_VERSION:
            raise LedgerError(f"{self.path} has an unsupported ledger schema", hint=_HINT)
        if mode != "wal":
            self._execute("PRAGMA journal_mode=WAL")

    def _error(self, e: sqlite3.Error) -> LedgerError:
        return LedgerError(f"the ledger {self.path} cannot be used: {e}", hint=_HINT)

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
        with self._transaction(write=True) as db:
            compact = self._compact(db)
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
                             s.signature, signer, _time(now)))  # fmt: skip
                entries.append(entry)
            db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            db.executemany("INSERT INTO nodes VALUES (?, ?, ?)", nodes)
            checkpoint = Checkpoint.create(compact.size, compact.root(), now, writer)
            self._advance(db, compact, [checkpoint])
        return entries

    def _compact(self, db: sqlite3.Connection) -> merkle.CompactRange:
        size, frontier = db.execute("SELECT size, frontier FROM tree").fetchone()
        hashes = tuple(frontier[i : i + merkle.HASH_SIZE] for i in range(0, len(frontier), 32))
        try:
            return merkle.CompactRange(size, hashes)
        except ValueError as e:
            raise LedgerError(f"the tree state in {self.path} is damaged", hint=_HINT) from e

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
                (c.size, c.root, _time(c.timestamp), signer, c.signature),
            )
        frontier = b"".join(compact.hashes)
        db.execute("UPDATE tree SET size = ?, frontier = ?", (compact.size, frontier))

    # ------------------------------------------------------------ reading

    def size(self) -> int:
        with self._transaction() as db:
            return self._compact(db).size

    def entry(self, index: int) -> Entry:
        with self._transaction() as db:
            row = db.execute(f"{_ENTRY_SQL} WHERE e.idx = ?", (index,)).fetchone()
        if row is None:
            raise UsageError(f"the ledger {self.path} has no entry {index}")
        return _row_entry(row)

    def entries_for(self, subject: str) -> list[Entry]:
        """Every statement about ``subject``, oldest first (indexed lookup)."""
        parse_digest(subject)
        with self._transaction() as db:
            sql = f"{_ENTRY_SQL} WHERE e.subject = ? ORDER BY e.idx"
            rows = db.execute(sql, (subject,)).fetchall()
        return [_row_entry(row) for row in rows]

    def latest_checkpoint(self) -> Checkpoint | None:
        with self._transaction() as db:
            row = db.execute(f"{_CHECKPOINT_SQL} ORDER BY c.size DESC LIMIT 1").fetchone()
        return None if row is None else _row_checkpoint(row)

    def _checkpoints(self, db: sqlite3.Connection) -> list[Checkpoint]:
        return [_row_checkpoint(r) for r in db.execute(f"{_CHECKPOINT_SQL} ORDER BY c.size")]

    def _getter(self, db: sqlite3.Connection) -> merkle.NodeGetter:
        def get(level: int, index: int) -> bytes:
            sql = "SELECT hash FROM nodes WHERE level = ? AND idx = ?"
            row = db.execute(sql, (level, index)).fetchone()
            if row is None:
                raise LedgerError(f"tree node ({level}, {index}) is missing", hint=_HINT)
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
            entry_row = db.execute(f"{_ENTRY_SQL} WHERE e.idx = ?", (index,)).fetchone()
            cp_row = db.execute(f"{_CHECKPOINT_SQL} ORDER BY c.size DESC LIMIT 1").fetchone()
            if entry_row is None or cp_row is None or index >= cp_row[0]:
                raise UsageError(f"the ledger {self.path} has no checkpointed entry {index}")
            checkpoint, entry = _row_checkpoint(cp_row), _row_entry(entry_row)
            hashes = merkle.inclusion_path(index, checkpoint.size, self._getter(db))
        leaf = merkle.leaf_hash(entry.leaf_bytes())
        if not merkle.verify_inclusion(index, checkpoint.size, leaf, hashes, checkpoint.root):
            raise LedgerError(f"the stored tree does not prove entry {index}", hint=_HINT)
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
        that the history extends ``known_checkpoint`` (the only way to notice
        that the newest entries were cut off together with their checkpoints).
        """
        with self._transaction() as db:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise LedgerError(f"{self.path} fails SQLite's integrity check", hint=_HINT)
            checkpoints = self._checkpoints(db)
            rows = db.execute(
                _ENTRY_SQL.replace(" e.created ", " e.created, COALESCE(n.hash, x'') ")
                + " LEFT JOIN nodes n ON n.level = 0 AND n.idx = e.idx ORDER BY e.idx"
            )
            pairs = ((_row_entry(r), bytes(r[9])) for r in rows)
            leaves = _replay(pairs, checkpoints, trusted_keys)
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
                raise LedgerError("the stored tree state does not match the entries", hint=_HINT)
        root = compact.root()
        if known_checkpoint is not None:
            self._extends(known_checkpoint, len(leaves), root, merkle.getter(tree), trusted_keys)
        writers = tuple(sorted({c.key_id for c in checkpoints}))
        latest = checkpoints[-1] if checkpoints else None
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
        entry means checkpoints were removed. Skips what ``verify()`` adds:
        each statement signature, older checkpoints and the stored nodes.
        """
        with self._transaction() as db:
            checkpoints = self._checkpoints(db)
            entries = [_row_entry(row) for row in db.execute(f"{_ENTRY_SQL} ORDER BY e.idx")]
        if [e.index for e in entries] != list(range(len(entries))):
            raise LedgerError(f"{self.path}: entry indexes are not contiguous (a row was deleted or moved)",
                              hint=_HINT)
        if trusted_keys is None:
            chosen = checkpoints[-1] if checkpoints else None
            problem = chosen.problem(None) if chosen else None
            if problem:
                raise LedgerError(f"{self.path}: the latest checkpoint {problem}", hint=_HINT)
            if (chosen.size if chosen else 0) != len(entries):
                raise LedgerError(f"{self.path}: the latest checkpoint does not cover the {len(entries)} "
                                  "stored entries", hint=_HINT)
        else:
            chosen = next((c for c in reversed(checkpoints) if c.problem(trusted_keys) is None), None)
        size = chosen.size if chosen else 0
        if size > len(entries):
            raise LedgerError(f"{self.path}: a trusted checkpoint covers {size} entries but only "
                              f"{len(entries)} are stored (rows were deleted)", hint=_HINT)
        trusted_pems = {k.pem for k in trusted_keys or ()}
        for entry in entries[size:]:
            if entry.public_key in trusted_pems:
                raise LedgerError(f"{self.path}: entry {entry.index} is by a trusted signer but no checkpoint "
                                  "by a trusted writer covers it (checkpoints were removed)", hint=_HINT)
        if chosen is not None:
            leaves = [merkle.leaf_hash(e.leaf_bytes()) for e in entries[:size]]
            if merkle.root(leaves) != chosen.root:
                raise LedgerError(f"{self.path}: the entries do not hash to the signed checkpoint "
                                  "(an entry was edited, deleted, reordered or inserted)", hint=_HINT)
        return chosen

    def _extends(
        self, known: Checkpoint, size: int, root: bytes, get: merkle.NodeGetter,
        trusted: Sequence[PublicKey] | None,
    ) -> None:  # fmt: skip
        problem = known.problem(trusted)
        if problem:
            raise LedgerError(f"the known checkpoint at size {known.size} {problem}")
        if known.size > size:
            raise LedgerError(
                f"the ledger has {size} entries but a known checkpoint covers {known.size}: "
                "entries were deleted", hint=_HINT,
            )  # fmt: skip
        proof = merkle.consistency_path(known.size, size, get)
        if not merkle.verify_consistency(known.size, size, known.root, root, proof):
            raise LedgerError(
                f"the ledger does not extend the known checkpoint at size {known.size}: "
                "its history was rewritten", hint=_HINT,
            )  # fmt: skip

    # ------------------------------------------------------------ export and import

    def export(self, path: Path | str) -> int:
        """Write all entries and checkpoints as JSON Lines; return the number of entries."""
        target = Path(path)
        with self._transaction() as db:
            checkpoints = self._checkpoints(db)
            size = self._compact(db).size
            header = {"format": EXPORT_FORMAT, "version": 1, "size": size}
            partial = target.with_name(target.name + ".partial")
            try:
                with partial.open("w", encoding="ascii") as out:
                    out.write(json.dumps(header) + "\n")
                    for row in db.execute(f"{_ENTRY_SQL} ORDER BY e.idx"):
                        out.write(json.dumps({"entry": _row_entry(row).to_dict()}) + "\n")
                    for c in checkpoints:
                        out.write(json.dumps({"checkpoint": c.to_dict()}) + "\n")
                partial.replace(target)
            except OSError as e:
                partial.unlink(missing_ok=True)
                raise UsageError(f"cannot write {target}: {e.strerror or e}") from e
        return size

    def import_(self, path: Path | str, *, trusted_keys: Sequence[PublicKey] | None = None) -> int:
        """Append the entries of an export that extends this ledger; return how many were new.

        Every signature and the whole tree are checked first; a history that
        differs from ours in any shared entry is refused ("would fork history").
        All or nothing: one transaction.
        """
        entries, checkpoints = _read_export(Path(path))
        leaves = _replay(((e, None) for e in entries), checkpoints, trusted_keys)
        theirs = merkle.getter(merkle.levels(leaves))
        their_root = merkle.CompactRange.at(len(leaves), theirs).root()
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
            for entry in new:
                signer = self._signer(db, entry.public_key, entry.key_id)
                db.execute(
                    "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (entry.index, entry.kind, entry.subject, entry.name, entry.payload_type,
                     entry.payload, entry.signature, signer, _time(entry.created)),
                )  # fmt: skip
                compact, created = compact.append(leaves[entry.index])
                db.executemany("INSERT INTO nodes VALUES (?, ?, ?)", created)
            if new:
                self._advance(db, compact, [c for c in checkpoints if c.size > new[0].index])
        return len(new)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _read_export(path: Path) -> tuple[list[Entry], list[Checkpoint]]:
    """Parse an export file; LedgerError names the line that is not a valid record."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except FileNotFoundError as e:
        raise UsageError(f"the ledger export {path} does not exist") from e
    except (OSError, UnicodeDecodeError) as e:
        raise LedgerError(f"cannot read the ledger export {path}: {e}") from e
    entries: list[Entry] = []
    checkpoints: list[Checkpoint] = []
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            if number == 1:
                if record.get("format") != EXPORT_FORMAT or record.get("version") != 1:
                    raise ValueError(f"not a {EXPORT_FORMAT} v1 file")
            elif set(record) == {"entry"}:
                entries.append(Entry.from_dict(record["entry"]))
            elif set(record) == {"checkpoint"}:
                checkpoints.append(Checkpoint.from_dict(record["checkpoint"]))
            else:
                raise ValueError("expected an 'entry' or 'checkpoint' record")
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise LedgerError(f"{path}:{number}: not a valid ledger export record ({e})") from e
    if not lines:
        raise LedgerError(f"{path} is empty, not a ledger export")
    return entries, checkpoints


def verify_inclusion_proof(proof: Mapping[str, Any], public_key: PublicKey) -> bool:
    """Check a proof from inclusion_proof() with only the proof and the writer's public key.

    True when the checkpoint is signed by ``public_key``, the entry's statement
    signature holds, and the entry is the leaf at ``leaf_index`` under the
    checkpoint's root (RFC 9162 §2.1.3.2). Malformed input is False, never raised.
    """
    try:
        entry = Entry.from_dict(proof["entry"])
        checkpoint = Checkpoint.from_dict(proof["checkpoint"])
        hashes = [bytes.fromhex(h) for h in proof["hashes"]]
        index, size = _int(proof["leaf_index"]), _int(proof["tree_size"])
        if (checkpoint.key_id, checkpoint.size, entry.index) != (public_key.key_id, size, index):
            return False
        if not public_key.verify(checkpoint.signature, checkpoint.body()) or entry.problem():
            return False
        leaf = merkle.leaf_hash(entry.leaf_bytes())
        return merkle.verify_inclusion(index, size, leaf, hashes, checkpoint.root)
    except (KeyError, TypeError, ValueError, AttributeError, SealgateError):
        return False
