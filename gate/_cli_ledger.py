"""``sealgate ledger …``: verify, prove, export and import the ledger and its witness.

Thin handlers like the rest of the command line (``gate._cli_handlers``): they
open the ledger through the same ``commands.Context`` as sign and verify, and
print one line of outcome.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gate.errors import UsageError

if TYPE_CHECKING:
    from gate import commands
    from gate.keys import PublicKey
    from gate.ledger import Ledger


def _count(n: int, noun: str, plural: str | None = None) -> str:
    from gate.report import counted

    return counted(n, noun, plural)


def _ledger_context(args: argparse.Namespace) -> commands.Context:
    from gate import commands

    return commands.Context(ledger_path=args.ledger, state_dir=args.global_state_dir)


def _open_ledger(args: argparse.Namespace, create: bool = False) -> Ledger:
    ctx = _ledger_context(args)
    ledger = ctx.ledger(create=create)
    if ledger is None:
        witness = ctx.witness()
        gone = witness.missing()
        if gone is not None:
            raise gone
        raise UsageError(
            f"there is no ledger at {witness.ledger}; sign something first or pass --ledger PATH"
        )
    return ledger


def _writer_keys(args: argparse.Namespace) -> list[PublicKey] | None:
    """The checkpoint writers ``--key`` names; None (any writer) when it names none."""
    from gate import keys

    return [keys.load_public_key(k) for k in args.key] or None


def ledger_verify(args: argparse.Namespace) -> int:
    trusted = _writer_keys(args)
    with _open_ledger(args) as ledger:
        report = ledger.verify(trusted)
        witness = ledger.witness
        seen = witness.load() if witness is not None else None
    print(
        f"{ledger.path}: OK: {_count(report.entries, 'entry', 'entries')}, "
        f"{_count(report.checkpoints, 'checkpoint')}, "
        f"root {report.root}"
    )
    print(f"checkpoint writers: {', '.join(k[:16] for k in report.writers) or 'none'}")
    if witness is not None and seen is not None:
        print(f"witness: extends the {seen.size} entries witnessed in {witness.path}")
    return 0


def ledger_proof(args: argparse.Namespace) -> int:
    import json

    from gate import refs

    with _open_ledger(args) as ledger:
        proof = ledger.inclusion_proof(refs.parse_digest(args.digest))
    print(json.dumps(proof, indent=2))
    return 0


def ledger_check_proof(args: argparse.Namespace) -> int:
    """A third party's check: the proof and the writer's public key, nothing else."""
    import json

    from gate import keys
    from gate.ledger import verify_inclusion_proof

    key = keys.load_public_key(args.key)
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        proof = json.loads(text)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read a proof from {args.file}: {e}") from e
    if not isinstance(proof, dict) or not verify_inclusion_proof(proof, key):
        print(
            f"{args.file}: INVALID: not an inclusion proof that verifies under key {key.short_id}"
        )
        return 1
    entry, checkpoint = proof["entry"], proof["checkpoint"]
    print(
        f"{args.file}: OK: entry {proof['leaf_index']} ({entry.get('kind')} "
        f"{entry.get('subject')}) is in the log of {proof['tree_size']} entries "
        f"whose checkpoint key {key.short_id} signed at {checkpoint.get('timestamp')}"
    )
    return 0


def ledger_export(args: argparse.Namespace) -> int:
    with _open_ledger(args) as ledger:
        count = ledger.export(args.file)
    print(f"Exported {_count(count, 'entry', 'entries')} to {args.file}")
    return 0


def ledger_import(args: argparse.Namespace) -> int:
    from gate.ledger import Ledger

    trusted = _writer_keys(args)
    witness = _ledger_context(args).witness()
    # Not Context.ledger(): importing is how a lost ledger is restored, so it may start a
    # new file where the witness saw one; import_() holds what it brings to the witness.
    with Ledger.open(witness.ledger, witness=witness) as ledger:
        count = ledger.import_(args.file, trusted_keys=trusted)
    print(f"Imported {count} new entries from {args.file}")
    return 0


def ledger_witness_export(args: argparse.Namespace) -> int:
    from gate.ledger import export_witness

    ctx = _ledger_context(args)
    witness, ledger = ctx.witness(), ctx.ledger(create=False)
    try:
        seen = export_witness(witness, ledger, Path(args.file))
    finally:
        if ledger is not None:
            ledger.close()
    print(f"Exported the witness of {seen.size} entries of {witness.ledger} to {args.file}")
    return 0


def ledger_witness_import(args: argparse.Namespace) -> int:
    from gate.ledger import import_witness

    trusted = _writer_keys(args)
    ctx = _ledger_context(args)
    witness, ledger = ctx.witness(), ctx.ledger(create=False)
    try:
        kept, new = import_witness(witness, ledger, Path(args.file), trusted)
    finally:
        if ledger is not None:
            ledger.close()
    if new:
        print(
            f"The ledger {witness.ledger} is now held to the {kept.size} entries "
            f"witnessed in {args.file} (kept in {witness.path})"
        )
    else:
        print(
            f"Kept the witness in {witness.path}: it covers {kept.size} entries, "
            f"which extend those in {args.file}"
        )
    return 0
