"""Rekor entries: the signed entry timestamp (SET), inclusion proofs and checkpoints.

A legacy cosign signature carries only a SET (a promise of inclusion, signed
by the log); a bundle v0.2+ carries an inclusion proof up to a checkpoint the
log signed (a C2SP signed note). Either proves the entry's body was logged;
``_entries`` then checks that body names this signature.

NOTE: cosign specs/SIGNATURE_SPEC.md §bundle and FORMATS.md §1.6 (SET over the
canonical JSON); protobuf-specs sigstore_rekor.proto (TransparencyLogEntry);
C2SP signed-note.md and tlog-checkpoint.md; RFC 6962 leaf hashing via
gate.merkle.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gate import merkle, strict_json
from gate.sigstore._errors import KeylessError
from gate.sigstore._trust import LogKey


@dataclass(frozen=True)
class InclusionProof:
    log_index: int
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str


@dataclass(frozen=True)
class LogEntry:
    """A transparency-log entry as a bundle or a cosign annotation carries it."""

    log_index: int
    log_id: bytes
    kind: str
    version: str
    body: bytes
    """The canonicalized entry body: the exact bytes the log hashed."""
    integrated_time: int | None
    """Seconds since the epoch; None for Rekor v2, which has no integrated time."""
    set: bytes | None
    proof: InclusionProof | None

    @property
    def time(self) -> datetime | None:
        if self.integrated_time is None:
            return None
        return datetime.fromtimestamp(self.integrated_time, UTC)

    def body_json(self) -> Any:
        return strict_json.loads(self.body, "the log entry body", KeylessError)


def entry_from_bundle(doc: Any) -> LogEntry:
    """Parse one ``tlogEntries[]`` element (protojson: int64 as strings, bytes as base64)."""
    try:
        kv = doc["kindVersion"]
        promise = doc.get("inclusionPromise")
        proof_doc = doc.get("inclusionProof")
        proof = None
        if proof_doc:
            proof = InclusionProof(
                _int(proof_doc.get("logIndex", 0)),
                _int(proof_doc["treeSize"]),
                _b64(proof_doc["rootHash"]),
                tuple(_b64(h) for h in proof_doc.get("hashes") or []),
                str((proof_doc.get("checkpoint") or {}).get("envelope", "")),
            )
        integrated = _int(doc.get("integratedTime", 0))
        # NOTE: protobuf JSON leaves out fields at their default: the first entry of a log
        # (index 0) has no "logIndex" at all in a bundle cosign v3 writes.
        entry = LogEntry(
            log_index=_int(doc.get("logIndex", 0)),
            log_id=_b64(doc["logId"]["keyId"]),
            kind=str(kv["kind"]),
            version=str(kv["version"]),
            body=_b64(doc["canonicalizedBody"]),
            integrated_time=integrated or None,
            set=_b64(promise["signedEntryTimestamp"]) if promise else None,
            proof=proof,
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise KeylessError(f"a transparency-log entry in the bundle is malformed ({e})") from e
    if entry.log_index < 0 or (proof and (proof.log_index < 0 or proof.tree_size <= 0)):
        raise KeylessError("a transparency-log entry has a negative log index")
    return entry


def entry_from_cosign(rekor_bundle: bytes) -> LogEntry:
    """Parse cosign's ``dev.sigstore.cosign/bundle`` annotation (SET + payload)."""
    try:
        doc = strict_json.loads(rekor_bundle, "the Rekor bundle annotation", KeylessError)
        payload = doc["Payload"]
        entry = LogEntry(
            log_index=int(payload["logIndex"]),
            log_id=bytes.fromhex(payload["logID"]),
            kind="",
            version="",
            body=base64.b64decode(payload["body"], validate=True),
            integrated_time=int(payload["integratedTime"]),
            set=base64.b64decode(doc["SignedEntryTimestamp"], validate=True),
            proof=None,
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error) as e:
        raise KeylessError(f"the Rekor bundle annotation is malformed ({e})") from e
    body = entry.body_json()
    kind = body.get("kind", "") if isinstance(body, dict) else ""
    version = body.get("apiVersion", "") if isinstance(body, dict) else ""
    return LogEntry(**{**entry.__dict__, "kind": str(kind), "version": str(version)})


def verify_set(entry: LogEntry, log: LogKey) -> None:
    """The SET is the log's signature over the canonical JSON of the entry."""
    if entry.set is None or entry.integrated_time is None:
        raise KeylessError("the log entry has no signed entry timestamp")
    canonical = json.dumps(
        {
            "body": base64.b64encode(entry.body).decode("ascii"),
            "integratedTime": entry.integrated_time,
            "logID": entry.log_id.hex(),
            "logIndex": entry.log_index,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    if not log.key.verify(entry.set, canonical):
        raise KeylessError("the signed entry timestamp (SET) does not verify with the log's key")


def verify_inclusion(entry: LogEntry, log: LogKey) -> None:
    """The entry is in the tree the checkpoint commits to, and the log signed that checkpoint."""
    proof = entry.proof
    if proof is None:
        raise KeylessError("the log entry has no inclusion proof")
    leaf = merkle.leaf_hash(entry.body)
    if not merkle.verify_inclusion(
        proof.log_index, proof.tree_size, leaf, proof.hashes, proof.root_hash
    ):
        raise KeylessError("the inclusion proof does not reach the root hash it claims")
    size, root = verify_checkpoint(proof.checkpoint, log)
    if size != proof.tree_size or root != proof.root_hash:
        raise KeylessError("the inclusion proof does not reach the checkpoint's root hash")


def verify_checkpoint(envelope: str, log: LogKey) -> tuple[int, bytes]:
    """(tree size, root hash) of a signed note; one signature line must be the log's.

    Lines signed by keys we do not know (witness cosignatures) are ignored.
    NOTE: C2SP signed-note.md: the key hint is the first 4 bytes of the key ID.
    """
    text, sep, sigs = envelope.partition("\n\n")
    if not sep:
        raise KeylessError("the checkpoint is not a signed note (no signature block)")
    lines = text.split("\n")
    if len(lines) < 3 or not lines[0] or not lines[1].isdigit():
        raise KeylessError("the checkpoint lacks its origin, tree size or root hash")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        raise KeylessError("the checkpoint's root hash is not base64") from None
    if len(root) != merkle.HASH_SIZE:
        raise KeylessError("the checkpoint lacks its origin, tree size or root hash")
    signed = (text + "\n").encode()
    for line in sigs.split("\n"):
        if not line.startswith("\u2014 "):
            continue
        _, _, b64 = line[2:].rpartition(" ")
        try:
            raw = base64.b64decode(b64, validate=True)
        except ValueError:
            continue
        if len(raw) > 4 and raw[:4] == log.log_id[:4] and log.key.verify(raw[4:], signed):
            return int(lines[1]), root
    raise KeylessError(f"the checkpoint is not signed by the log {log.host}")


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not an integer")
    return int(value)


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not base64 text")
    return base64.b64decode(value, validate=True)
