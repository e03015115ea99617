"""``verify-blob``: a file or digest against a bundle file (one bundle or JSON Lines)."""

from __future__ import annotations

import re
from pathlib import Path

from gate.errors import UsageError
from gate.keys import PublicKey
from gate.sigstore._bundle import split_bundles
from gate.sigstore._errors import KeylessError
from gate.sigstore._identity import Identity
from gate.sigstore._trust import TrustedRoot
from gate.sigstore._verified import Verified
from gate.sigstore._verify import verify_bundle

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def read_artifact(target: str) -> bytes | str:
    """The file's bytes, or the digest itself when ``target`` is ``sha256:<hex>`` and no file."""
    path = Path(target)
    if _DIGEST.fullmatch(target) and not path.exists():
        return target
    try:
        return path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {target}: {e.strerror or e}") from e


def verify_blob(
    target: str,
    bundle_path: str,
    *,
    identity: Identity | None,
    key: PublicKey | None,
    roots: TrustedRoot,
    require_tlog: bool = False,
    predicate_type: str | None = None,
) -> list[Verified]:
    """Every bundle in the file that verifies; KeylessError when none does.

    Several bundles (gh's ``.jsonl``) are alternatives, like several
    signatures on an image: one that verifies is enough.
    """
    artifact = read_artifact(target)
    try:
        data = Path(bundle_path).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the bundle {bundle_path}: {e.strerror or e}") from e
    bundles = split_bundles(data)
    passed: list[Verified] = []
    errors: list[KeylessError] = []
    for bundle in bundles:
        try:
            passed.append(
                verify_bundle(
                    bundle,
                    artifact,
                    identity=identity,
                    key=key,
                    roots=roots,
                    require_tlog=require_tlog,
                    predicate_type=predicate_type,
                )
            )
        except KeylessError as e:
            errors.append(e)
    if passed:
        return passed
    if len(bundles) == 1:
        raise errors[0]
    raise KeylessError(f"none of the {len(bundles)} bundles verifies; the first: {errors[0]}")
