"""The ledger's values, pure: signed statements, entries, checkpoints, and offline proof checks.

Nothing here touches SQLite or the file system; ``_store`` keeps these values
in one file and ``_history`` holds a sequence of them to its checkpoints.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from gate import merkle
from gate.errors import LedgerError, SealgateError, UsageError
from gate.keys import PrivateKey, PublicKey, load_public_key
from gate.refs import parse_digest

KINDS = ("sign", "untrust", "unsupport", "attest")
ORIGIN = "sealgate/ledger/v1"
"""First line of every checkpoint body, naming what the signature is over (C2SP tlog-checkpoint)."""
HINT = "restore the ledger from an export ('sealgate ledger import') or move the file aside"


class RollbackError(LedgerError):
    """The ledger no longer extends its witness: rolled back, replaced or deleted."""


class UntrustedWriterError(LedgerError):
    """An intact ledger whose checkpoints are signed by keys the caller did not name.

    Not corruption: the file is healthy and must not be moved aside, so the
    message and hint say "not these keys", never "restore or move it".
    """


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(text, validate=True)


def format_time(moment: datetime) -> str:
    """One spelling per instant, since it is hashed: UTC, microseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError("expected an RFC 3339 time")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time '{text}' has no time zone")
    return moment.astimezone(UTC)


def expect_str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected text")
    return value


def expect_uint(value: object) -> int:
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
            "created": format_time(self.created),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entry:
        """Strict inverse of to_dict(): an unknown field would ride along unhashed, so refuse it."""
        if set(data) != set(_ENTRY_FIELDS):
            raise ValueError(f"entry fields must be exactly {', '.join(_ENTRY_FIELDS)}")
        return cls(
            expect_uint(data["index"]),
            expect_str(data["kind"]),
            expect_str(data["subject"]),
            expect_str(data["name"]),
            expect_str(data["payload_type"]),
            _unb64(data["payload"]),
            _unb64(data["signature"]),
            _unb64(data["public_key"]),
            parse_time(data["created"]),
        )

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
        root, moment = _b64(self.root), format_time(self.timestamp)
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
            "timestamp": format_time(self.timestamp),
            "key_id": self.key_id,
            "signature": _b64(self.signature),
            "public_key": self.public_key.decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        return cls(
            expect_uint(data["size"]),
            bytes.fromhex(expect_str(data["root"])),
            parse_time(data["timestamp"]),
            expect_str(data["key_id"]),
            _unb64(data["signature"]),
            expect_str(data["public_key"]).encode("ascii"),
        )


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
        index, size = expect_uint(proof["leaf_index"]), expect_uint(proof["tree_size"])
        if (checkpoint.key_id, checkpoint.size, entry.index) != (public_key.key_id, size, index):
            return False
        if not public_key.verify(checkpoint.signature, checkpoint.body()) or entry.problem():
            return False
        leaf = merkle.leaf_hash(entry.leaf_bytes())
        return merkle.verify_inclusion(index, size, leaf, hashes, checkpoint.root)
    except (KeyError, TypeError, ValueError, AttributeError, SealgateError):
        return False
