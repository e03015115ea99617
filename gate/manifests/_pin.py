"""Pinning: rewrite ``name:tag`` to ``name:tag@sha256:…`` in place, and nothing else.

Edits are made by character offsets of the reference as written (from YAML
node marks or the Dockerfile/list tokenizer), so comments, quoting,
indentation and line endings stay byte-for-byte. Every file is rescanned after
editing and must read the same apart from the new digests; only then is
anything written, each file atomically (temp file + rename).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gate import refs
from gate.errors import ManifestError, UsageError
from gate.manifests._files import STDIN, Source, decode, encode, expand, read_bytes, scan, sniff
from gate.manifests._model import PinChange, Site
from gate.manifests._text import line_at, line_starts
from gate.refs import Reference
from gate.result import Location

Resolver = Callable[[Reference], str]
"""Returns the digest a tag reference points at now; the registry lookup is the caller's."""


@dataclass(frozen=True)
class _Plan:
    """One file's edits, computed before anything is written."""

    source: Source
    kind: str
    text: str
    sites: list[Site]
    edits: list[tuple[tuple[int, int], Reference]]


def pin_files(paths: Sequence[str], resolve: Resolver, *, check: bool = False) -> list[PinChange]:
    """Pin every unpinned reference in ``paths``; return what changed (or would, with ``check``).

    ``resolve`` is called once per distinct normalised reference, before any
    file is touched, so a failing lookup leaves every file as it was. References
    that use variables or templates, and ones not written verbatim (YAML escapes
    or line folding), are left alone. Raises ManifestError as ``find_images``
    does, and UsageError for stdin (there is nothing to write back to).
    """
    plans = [_plan(source) for source in expand(paths) if _is_file(source)]
    digests: dict[str, str] = {}
    for plan in plans:
        for _, reference in plan.edits:
            key = str(reference)
            if key not in digests:
                digests[key] = refs.parse_digest(resolve(reference))
    changes: list[PinChange] = []
    writes: list[tuple[Source, str]] = []
    for plan in plans:
        new_text, file_changes = _apply(plan, digests)
        _recheck(plan, new_text, digests)
        changes.extend(file_changes)
        if file_changes:
            writes.append((plan.source, new_text))
    if not check:
        for source, text in writes:
            _write_atomically(source, encode(text))
    return changes


def _is_file(source: Source) -> bool:
    if source.path is None:
        raise UsageError(f"cannot pin standard input ({STDIN}): name the files to rewrite")
    return True


def _plan(source: Source) -> _Plan:
    assert source.path is not None
    text = decode(read_bytes(source.name, source.path))
    kind = source.kind or sniff(text)
    sites = scan(text, source.name, kind)
    edits: dict[tuple[int, int], Reference] = {}
    for site in sites:
        reference = site.finding.reference
        if reference is None or reference.pinned or site.span is None:
            continue
        edits.setdefault(site.span, reference)
    return _Plan(source, kind, text, sites, sorted(edits.items()))


def _pinned_text(written: str, digest: str) -> str:
    """``written`` plus the digest; a tagless name gets ``:latest`` so the tag stays on record."""
    has_tag = written.rfind(":") > written.rfind("/")
    return f"{written}{'' if has_tag else ':latest'}@{digest}"


def _apply(plan: _Plan, digests: dict[str, str]) -> tuple[str, list[PinChange]]:
    starts = line_starts(plan.text)
    pieces: list[str] = []
    changes: list[PinChange] = []
    cursor = 0
    for (start, end), reference in plan.edits:
        old = plan.text[start:end]
        new = _pinned_text(old, digests[str(reference)])
        pieces += [plan.text[cursor:start], new]
        cursor = end
        changes.append(PinChange(Location(plan.source.name, line_at(starts, start)), old, new))
    pieces.append(plan.text[cursor:])
    return "".join(pieces), changes


def _recheck(plan: _Plan, new_text: str, digests: dict[str, str]) -> None:
    """The edited file must read exactly as before, except that edited references gained digests."""
    edited = {span for span, _ in plan.edits}
    try:
        after = scan(new_text, plan.source.name, plan.kind)
    except ManifestError:
        after = []
    if len(after) == len(plan.sites):
        for old, new in zip(plan.sites, after, strict=True):
            expected = old.finding.reference
            if expected is not None and old.span in edited:
                expected = expected.with_digest(digests[str(expected)])
            if (new.finding.reference, new.finding.location, new.finding.context) != (
                expected,
                old.finding.location,
                old.finding.context,
            ):
                break
        else:
            return
    raise ManifestError(
        "pinning would change how this file reads (a value used in more than one way?); "
        "pin its references by hand",
        file=plan.source.name,
    )


def _write_atomically(source: Source, data: bytes) -> None:
    """Replace the file (a symlink's target, not the link) with no moment of partial content."""
    assert source.path is not None
    target = os.path.realpath(source.path)
    directory, base = os.path.split(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
        handle, temp = tempfile.mkstemp(prefix=f".{base}.", suffix=".sealgate-pin", dir=directory)
    except OSError as e:
        raise ManifestError(f"cannot write: {e.strerror or e}", file=source.name) from e
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise ManifestError(f"cannot write: {e.strerror or e}", file=source.name) from e
