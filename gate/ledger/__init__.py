"""The embedded tamper-evident ledger: an append-only log of signed statements in one SQLite file.

Every sign / untrust / unsupport / attest statement is a leaf of an RFC 6962
Merkle tree (``gate.merkle``); every append writes a checkpoint (tree size,
root, time) signed by the appending command's key, in the same transaction.

Tamper evidence, and its limit: whoever can edit the file can also recompute a
stored tree, so ``verify()`` trusts nothing derived: it recomputes every leaf
from the entry columns and holds each signed checkpoint to it. Rewriting
history therefore needs a writer's private key. Deleting the newest entries
*together with* their checkpoints leaves a shorter, self-consistent log; only a
checkpoint saved elsewhere reveals that: the *witness* (``_witness``), kept in
the state directory and checked on every open, or one carried further
(``sealgate ledger witness export``, a proof, ``known_checkpoint``). Without
``trusted_keys`` a checkpoint signed by any key it names is accepted, so
verify() then proves consistency, not authorship.

The package: ``_records`` (the values and offline proof checks, pure),
``_history`` (holding entries to their checkpoints, pure), ``_schema`` (the
SQLite layout), ``_export`` (the JSON Lines export), ``_store`` (``Ledger``)
and ``_witness`` (the largest checkpoint seen, apart from the ledger).
"""

from gate.ledger._export import EXPORT_FORMAT
from gate.ledger._records import (
    KINDS,
    ORIGIN,
    Checkpoint,
    Entry,
    RollbackError,
    SignedStatement,
    UntrustedWriterError,
    VerifyReport,
    verify_inclusion_proof,
)
from gate.ledger._store import LEDGER_ENV, Ledger, default_path
from gate.ledger._witness import STATE_ENV, Witness, export_witness, import_witness, state_dir

__all__ = [
    "EXPORT_FORMAT",
    "KINDS",
    "LEDGER_ENV",
    "ORIGIN",
    "STATE_ENV",
    "Checkpoint",
    "Entry",
    "Ledger",
    "RollbackError",
    "SignedStatement",
    "UntrustedWriterError",
    "VerifyReport",
    "Witness",
    "default_path",
    "export_witness",
    "import_witness",
    "state_dir",
    "verify_inclusion_proof",
]
