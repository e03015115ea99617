"""How the ledger's values are laid out in SQLite: the tables, the two queries, row readers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gate.errors import LedgerError
from gate.ledger._records import HINT, Checkpoint, Entry, expect_str, expect_uint, parse_time

SCHEMA_VERSION = "1"
SCHEMA = (
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
TABLES = {"meta", "signers", "entries", "nodes", "checkpoints", "tree"}
ENTRY_SQL = (
    "SELECT e.idx, e.kind, e.subject, e.name, e.payload_type, e.payload, e.signature,"
    " COALESCE(s.pem, x''), e.created FROM entries e LEFT JOIN signers s ON s.id = e.signer"
)
CHECKPOINT_SQL = (
    "SELECT c.size, c.root, c.timestamp, COALESCE(s.key_id, ''), c.signature, COALESCE(s.pem, x'')"
    " FROM checkpoints c LEFT JOIN signers s ON s.id = c.signer"
)


def row_entry(row: Sequence[Any]) -> Entry:
    try:
        blobs = [row[i] for i in (5, 6, 7)]
        if not all(isinstance(b, bytes) for b in blobs):
            raise ValueError("a binary column holds text")
        payload, signature, pem = blobs
        kind, subject, name, payload_type = (expect_str(row[i]) for i in (1, 2, 3, 4))
        return Entry(
            expect_uint(row[0]),
            kind,
            subject,
            name,
            payload_type,
            payload,
            signature,
            pem,
            parse_time(row[8]),
        )
    except (ValueError, TypeError) as e:
        raise LedgerError(f"ledger entry {row[0]} is malformed ({e})", hint=HINT) from e


def row_checkpoint(row: Sequence[Any]) -> Checkpoint:
    try:
        if not isinstance(row[5], bytes):
            raise ValueError("the writer key is not binary")
        root, signature = bytes(row[1]), bytes(row[4])
        return Checkpoint(row[0], root, parse_time(row[2]), expect_str(row[3]), signature, row[5])
    except (ValueError, TypeError) as e:
        raise LedgerError(f"checkpoint at size {row[0]} is malformed: the file was edited") from e
