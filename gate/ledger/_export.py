"""The ledger's export file: JSON Lines, a header then one entry or checkpoint per line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from gate.errors import LedgerError, UsageError
from gate.ledger._records import Checkpoint, Entry

EXPORT_FORMAT = "sealgate-ledger-export"


def write_export(
    target: Path, size: int, entries: Iterable[Entry], checkpoints: Sequence[Checkpoint]
) -> None:
    """Write through ``<target>.partial``, then rename; UsageError when it cannot be written."""
    header = {"format": EXPORT_FORMAT, "version": 1, "size": size}
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("w", encoding="ascii") as out:
            out.write(json.dumps(header) + "\n")
            for entry in entries:
                out.write(json.dumps({"entry": entry.to_dict()}) + "\n")
            for c in checkpoints:
                out.write(json.dumps({"checkpoint": c.to_dict()}) + "\n")
        partial.replace(target)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise UsageError(f"cannot write {target}: {e.strerror or e}") from e


def read_export(path: Path) -> tuple[list[Entry], list[Checkpoint]]:
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
