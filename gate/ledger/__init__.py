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

The package: ``_records`` (the values and offline proof checks, pure),
``_history`` (holding entries to their checkpoints, pure), ``_schema`` (the
SQLite layout), ``_export`` (the JSON Lines export) and ``_store`` (``Ledger``).
"""

from gate.ledger._export import EXPORT_FORMAT
from gate.ledger._records import (
    KINDS,
    ORIGIN,
    Checkpoint,
    Entry,
    SignedStatement,
    VerifyReport,
    verify_inclusion_proof,
)
from gate.ledger._store import LEDGER_ENV, Ledger, default_path

__all__ = [
    "EXPORT_FORMAT",
    "KINDS",
    "LEDGER_ENV",
    "ORIGIN",
    "Checkpoint",
    "Entry",
    "Ledger",
    "SignedStatement",
    "VerifyReport",
    "default_path",
    "verify_inclusion_proof",
]
