"""The witness: the largest checkpoint ever seen for one ledger, kept apart from the ledger file.

Deleting the newest entries together with their checkpoints leaves a shorter
log that is consistent in itself, and replacing or deleting the file leaves
nothing to check at all (see the package docstring). The witness remembers the
largest signed checkpoint seen (tree size, root, the signed note) in the state
directory, so every open can prove the ledger still extends it (RFC 9162
§2.1.4). It protects against whoever can change the ledger file but not the
state directory; ``sealgate ledger witness export|import`` carry it further
(another host, a repository), which is what protects against whoever can
change both.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate.errors import LedgerError, UsageError
from gate.keys import PublicKey
from gate.ledger._records import Checkpoint, RollbackError
from gate.ledger._store import default_path

if TYPE_CHECKING:
    from gate.ledger._store import Ledger

STATE_ENV = "SEALGATE_STATE_DIR"
WITNESS_FORMAT = "sealgate-ledger-witness"
MAX_WITNESS_BYTES = 64 * 1024
"""A witness is one checkpoint (well under 4 KiB); anything larger is not one."""

log = logging.getLogger("sealgate")


def state_dir() -> Path:
    """Every command's state directory: ``$SEALGATE_STATE_DIR``, else ``watch/`` by the ledger.

    The watchdog chose this first (its spools live there); the witness reuses
    the choice so that ``watch``, ``verify``, ``gate`` and ``ledger`` agree.
    """
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]).expanduser()
    return default_path().parent / "watch"


def to_document(checkpoint: Checkpoint, ledger: Path) -> dict[str, Any]:
    """The witness file's JSON: the checkpoint, its size and root spelled out, and its note."""
    return {
        "format": WITNESS_FORMAT,
        "version": 1,
        "ledger": str(ledger),
        "size": checkpoint.size,
        "root": checkpoint.root.hex(),
        "checkpoint": checkpoint.to_dict(),
        "note": checkpoint.note(),
    }


def parse_document(data: bytes, source: str, trusted: Sequence[PublicKey] | None) -> Checkpoint:
    """The checkpoint in a witness file; LedgerError when it is not a valid, signed one."""
    try:
        if len(data) > MAX_WITNESS_BYTES:
            raise ValueError(f"larger than {MAX_WITNESS_BYTES} bytes")
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != WITNESS_FORMAT:
            raise ValueError(f"not a {WITNESS_FORMAT} document")
        if doc.get("version") != 1:
            raise ValueError("an unsupported version")
        if not isinstance(doc.get("checkpoint"), dict):
            raise ValueError("no checkpoint")
        checkpoint = Checkpoint.from_dict(doc["checkpoint"])
        if (doc.get("size"), doc.get("root")) != (checkpoint.size, checkpoint.root.hex()):
            raise ValueError("size or root differ from the signed checkpoint's")
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
        raise LedgerError(f"{source} is not a valid ledger witness ({e})") from e
    if checkpoint.size < 1:
        raise LedgerError(f"{source} is not a valid ledger witness (it covers no entries)")
    problem = checkpoint.problem(trusted)
    if problem:
        raise LedgerError(f"the checkpoint in the ledger witness {source} {problem}")
    return checkpoint


def read_capped(path: Path) -> bytes:
    """At most one byte over the cap, so a huge or endless file is refused, not read."""
    with path.open("rb") as f:
        return f.read(MAX_WITNESS_BYTES + 1)


def write_atomically(target: Path, text: str) -> None:
    """Write a sibling temporary file, flush it to disk, then rename it over ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise
    with contextlib.suppress(OSError):
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class Witness:
    """The witness file for one ledger path, in the state directory.

    Named after the ledger's absolute path (symbolic links not followed), so
    several ledgers can share a state directory and a file swapped in at the
    same path is still held to what was seen there.
    """

    def __init__(self, path: Path, ledger: Path) -> None:
        self.path = path
        self.ledger = ledger

    @classmethod
    def for_ledger(cls, ledger: Path, directory: Path | None = None) -> Witness:
        where = Path(os.path.abspath(ledger.expanduser()))
        name = hashlib.sha256(os.fsencode(where)).hexdigest()[:16]
        return cls((directory or state_dir()) / f"ledger-witness-{name}.json", where)

    @property
    def hint(self) -> str:
        return (
            "restore the ledger from a backup or an export (`sealgate ledger import`); if the "
            "change is intended, run `sealgate ledger witness import` with a witness of the "
            f"ledger now in place, or delete {self.path}"
        )

    def load(self) -> Checkpoint | None:
        """The witnessed checkpoint, None before any; LedgerError when the file is unusable.

        A witness that cannot be read fails closed: a forged or truncated one
        must not quietly switch the check off.
        """
        try:
            data = read_capped(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return None  # nothing witnessed there (yet); writing it will say why, if it cannot
        except OSError as e:
            raise LedgerError(
                f"cannot read the ledger witness {self.path}: {e.strerror or e}"
            ) from e
        return parse_document(data, str(self.path), None)

    def missing(self) -> RollbackError | None:
        """The error to raise when the ledger file is gone but this witness saw entries in it."""
        seen = self.load()
        if seen is None:
            return None
        return RollbackError(
            f"the ledger {self.ledger} is missing but the witness in {self.path.parent} saw "
            f"{seen.size} entries in it: it was deleted or moved",
            hint=self.hint,
        )

    def record(self, checkpoint: Checkpoint) -> bool:
        """Keep ``checkpoint`` if it is larger than the one witnessed; whether it was written.

        The caller has checked that it is consistent with what was witnessed.
        A state directory that cannot be written only costs protection, so it
        is logged, not raised: the verification that got here stands.
        """
        try:
            with self._locked():
                current = self.load()
                if current is not None and current.size >= checkpoint.size:
                    return False
                self._write(checkpoint)
                return True
        except (OSError, LedgerError) as e:
            log.warning("could not update the ledger witness %s: %s", self.path, e)
            return False

    def replace(self, checkpoint: Checkpoint) -> None:
        """Make ``checkpoint`` the witness whatever was there (``witness import``)."""
        try:
            with self._locked():
                self._write(checkpoint)
        except OSError as e:
            raise UsageError(
                f"cannot write the ledger witness {self.path}: {e.strerror or e}"
            ) from e

    def _write(self, checkpoint: Checkpoint) -> None:
        write_atomically(self.path, json.dumps(to_document(checkpoint, self.ledger), indent=2))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers (each compares before it writes) with flock on the directory."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def export_witness(witness: Witness, ledger: Ledger | None, target: Path) -> Checkpoint:
    """Bring the witness up to date with ``ledger`` (if there is one), then copy it to ``target``.

    RollbackError when the ledger no longer extends it; UsageError when there
    is nothing witnessed yet or ``target`` cannot be written.
    """
    if ledger is not None:
        ledger.verify_head()
    seen = witness.load()
    if seen is None:
        raise UsageError(
            f"the ledger {witness.ledger} has no witness in {witness.path.parent} yet",
            hint="append to the ledger or run `sealgate ledger verify` first",
        )
    try:
        write_atomically(target, json.dumps(to_document(seen, witness.ledger), indent=2))
    except OSError as e:
        raise UsageError(f"cannot write {target}: {e.strerror or e}") from e
    return seen


def import_witness(
    witness: Witness, ledger: Ledger | None, source: Path, trusted: Sequence[PublicKey] | None
) -> tuple[Checkpoint, bool]:
    """Hold ``ledger`` to the witness in ``source``; return the witness kept and whether it is new.

    Refuses (RollbackError) a witness the ledger does not extend: a stale or
    different ledger must not be blessed. Replaces whatever witness was kept,
    which is how an intended replacement is accepted, unless the ledger
    extends a larger one already kept.
    """
    try:
        data = read_capped(source)
    except FileNotFoundError as e:
        raise UsageError(f"the witness file {source} does not exist") from e
    except OSError as e:
        raise UsageError(f"cannot read {source}: {e.strerror or e}") from e
    imported = parse_document(data, str(source), trusted)
    if ledger is not None:
        hint = "import a witness exported from this ledger, not from another"
        ledger.check_extends_witness(imported, source, hint)
        current = None
        with contextlib.suppress(LedgerError):
            current = witness.load()
        if current is not None and current.size > imported.size:
            with contextlib.suppress(RollbackError):
                ledger.check_extends_witness(current, witness.path.parent, hint)
                return current, False
    witness.replace(imported)
    return imported, True
