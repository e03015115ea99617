"""Holding a ledger's history to its signed checkpoints, pure: values in, LedgerError out.

``replay`` is the full check (every statement signature, every checkpoint,
consistency between them); ``check_head`` the cheap one every verification
runs; ``check_extends`` and ``check_witnessed`` compare with a checkpoint kept
elsewhere; ``check_writers`` asks who signed, apart from whether it is intact.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path

from gate import merkle
from gate.errors import LedgerError
from gate.keys import PublicKey
from gate.ledger._records import HINT, Checkpoint, Entry, RollbackError, UntrustedWriterError


def replay(
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
        raise LedgerError("checkpoint sizes must be distinct and positive", hint=HINT)
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
            raise LedgerError(f"ledger entry {index} {problem}", hint=HINT)
        leaf = merkle.leaf_hash(entry.leaf_bytes())
        if stored is not None and stored != leaf:
            raise LedgerError(f"ledger entry {index} does not match its tree leaf: edited or moved")
        leaves.append(leaf)
        compact, _ = compact.append(leaf)
        while checkpoint is not None and checkpoint.size <= compact.size:
            problem = checkpoint.problem(None)  # who wrote it is asked last, once all is intact
            if problem:
                raise LedgerError(f"the checkpoint at size {checkpoint.size} {problem}", hint=HINT)
            if checkpoint.size != compact.size or checkpoint.root != compact.root():
                raise LedgerError(
                    f"the checkpoint at size {checkpoint.size} does not match ledger entries "
                    f"0..{checkpoint.size - 1}: an entry was edited, removed or reordered",
                    hint=HINT,
                )  # fmt: skip
            checkpoint = next(pending, None)
    if checkpoint is not None:
        raise LedgerError(
            f"the checkpoint at size {checkpoint.size} covers entries that are missing "
            f"(there are {len(leaves)}): entries were deleted", hint=HINT,
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
    check_writers(ordered, trusted, "the ledger")
    return leaves


def check_writers(
    checkpoints: Sequence[Checkpoint], trusted: Sequence[PublicKey] | None, where: object
) -> None:
    """UntrustedWriterError when a (valid) checkpoint is signed by a key not in ``trusted``."""
    if trusted is None:
        return
    given = {k.key_id for k in trusted}
    foreign = [c for c in checkpoints if c.key_id not in given]
    if not foreign:
        return
    writers = ", ".join(sorted({c.key_id[:16] for c in foreign}))
    yours = ", ".join(sorted(k.short_id for k in trusted))
    if len(foreign) == len(checkpoints):
        what = (
            f"all {len(checkpoints)} of its checkpoints are signed by key {writers}, which is "
            f"not a trusted writer (you gave {yours})"
        )
    else:
        first, more = foreign[0], len(foreign) - 1
        what = (
            f"the checkpoint at size {first.size} is signed by key {first.key_id[:16]}, which is "
            f"not a trusted writer (you gave {yours})" + (f", nor are {more} more" if more else "")
        )
    raise UntrustedWriterError(
        f"{where} is intact, but {what}",
        hint="give the public key of every writer with --key; "
        "`sealgate ledger verify` without --key names them",
    )


def tree_of(leaves: Sequence[bytes]) -> tuple[int, bytes, merkle.NodeGetter]:
    """Size, root and node getter of the tree over ``leaves``, as ``check_witnessed`` takes."""
    get = merkle.getter(merkle.levels(leaves))
    return len(leaves), merkle.CompactRange.at(len(leaves), get).root(), get


def check_witnessed(
    path: Path,
    witnessed: Checkpoint,
    where: object,
    tree: tuple[int, bytes, merkle.NodeGetter],
    hint: str,
) -> None:
    """RollbackError unless the tree (size, root, nodes) extends the witnessed checkpoint.

    NOTE: RFC 9162 §2.1.4: a consistency proof from the witnessed size to the
    current one, checked against the witnessed root and the current root.
    """
    size, now, get = tree
    if witnessed.size > size:
        raise RollbackError(
            f"the ledger {path} has {size} entries but the witness in {where} saw "
            f"{witnessed.size}: it was rolled back or replaced", hint=hint,
        )  # fmt: skip
    proof = merkle.consistency_path(witnessed.size, size, get)
    if not merkle.verify_consistency(witnessed.size, size, witnessed.root, now, proof):
        raise RollbackError(
            f"the ledger {path} does not extend the {witnessed.size} entries the witness in "
            f"{where} saw: it was replaced or its history rewritten", hint=hint,
        )  # fmt: skip


def check_head(
    path: Path,
    entries: Sequence[Entry],
    checkpoints: Sequence[Checkpoint],
    trusted_keys: Sequence[PublicKey] | None,
    leaves: Sequence[bytes] | None = None,
) -> Checkpoint | None:
    """The checks behind ``Ledger.verify_head()``, over the rows it read from ``path``.

    ``leaves`` are the entries' leaf hashes when the caller has them already.
    """
    if [e.index for e in entries] != list(range(len(entries))):
        raise LedgerError(
            f"{path}: entry indexes are not contiguous (a row was deleted or moved)",
            hint=HINT,
        )
    if trusted_keys is None:
        chosen = checkpoints[-1] if checkpoints else None
        problem = chosen.problem(None) if chosen else None
        if problem:
            raise LedgerError(f"{path}: the latest checkpoint {problem}", hint=HINT)
        if (chosen.size if chosen else 0) != len(entries):
            raise LedgerError(
                f"{path}: the latest checkpoint does not cover the {len(entries)} stored entries",
                hint=HINT,
            )
    else:
        chosen = next((c for c in reversed(checkpoints) if c.problem(trusted_keys) is None), None)
    size = chosen.size if chosen else 0
    if size > len(entries):
        raise LedgerError(
            f"{path}: a trusted checkpoint covers {size} entries but only "
            f"{len(entries)} are stored (rows were deleted)",
            hint=HINT,
        )
    trusted_pems = {k.pem for k in trusted_keys or ()}
    for entry in entries[size:]:
        if entry.public_key in trusted_pems:
            raise LedgerError(
                f"{path}: entry {entry.index} is by a trusted signer but no checkpoint "
                "by a trusted writer covers it (checkpoints were removed)",
                hint=HINT,
            )
    if chosen is not None:
        if leaves is None:
            leaves = [merkle.leaf_hash(e.leaf_bytes()) for e in entries[:size]]
        if merkle.root(leaves[:size]) != chosen.root:
            raise LedgerError(
                f"{path}: the entries do not hash to the signed checkpoint "
                "(an entry was edited, deleted, reordered or inserted)",
                hint=HINT,
            )
    return chosen


def check_extends(
    known: Checkpoint,
    size: int,
    root: bytes,
    get: merkle.NodeGetter,
    trusted: Sequence[PublicKey] | None,
) -> None:
    """LedgerError unless the tree of ``size`` leaves and ``root`` extends ``known``."""
    problem = known.problem(trusted)
    if problem:
        raise LedgerError(f"the known checkpoint at size {known.size} {problem}")
    if known.size > size:
        raise LedgerError(
            f"the ledger has {size} entries but a known checkpoint covers {known.size}: "
            "entries were deleted", hint=HINT,
        )  # fmt: skip
    proof = merkle.consistency_path(known.size, size, get)
    if not merkle.verify_consistency(known.size, size, known.root, root, proof):
        raise LedgerError(
            f"the ledger does not extend the known checkpoint at size {known.size}: "
            "its history was rewritten", hint=HINT,
        )  # fmt: skip
