"""Pinning: rewrite ``name:tag`` to ``name:tag@sha256:…`` in place, and nothing else.

Edits are made by character offsets of the reference as written (from YAML
node marks or the Dockerfile/list tokenizer), so comments, quoting,
indentation and line endings stay byte-for-byte. Every file is rescanned after
editing and must read the same apart from the new digests; only then is
anything written: every file or none (``_write``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gate import refs
from gate.errors import ManifestError, UnavailableError, UsageError
from gate.manifests._files import STDIN, Source, decode, encode, expand, read_file, scan, sniff
from gate.manifests._model import CANNOT_TELL, Options, PinChange, Site
from gate.manifests._text import line_at, line_starts
from gate.manifests._write import Original, check_writable, replace_all
from gate.refs import Reference
from gate.result import Location

Resolver = Callable[[Reference], str]
"""Returns the digest a tag reference points at now; the registry lookup is the caller's."""


@dataclass(frozen=True)
class _Plan:
    """One file's edits, computed before anything is written."""

    original: Original
    kind: str
    text: str
    sites: list[Site]
    edits: list[tuple[tuple[int, int], Reference]]
    options: Options

    @property
    def name(self) -> str:
        return self.original.name


def pin_files(
    paths: Sequence[str],
    resolve: Resolver,
    *,
    check: bool = False,
    options: Options | None = None,
) -> list[PinChange]:
    """Pin every unpinned reference in ``paths``; return what changed (or would, with ``check``).

    ``resolve`` is called once per distinct normalised reference, before any
    file is touched, so a failing lookup leaves every file as it was. Changes
    with ``in_place=False`` are unpinned references pin cannot rewrite verbatim
    (a variable, a YAML escape, a Compose file outside ``paths``): reported,
    never written. Every file is replaced or none is (``_write``).

    Raises ManifestError as ``find_images`` does, and for a file pin could not
    replace (checked before the registry is asked); UsageError for stdin and
    when no image is found; UnavailableError (exit 3) when an image cannot be
    determined, as the gate would report ERROR for it.
    """
    options = options or Options()
    plans = [_plan(source, options) for source in expand(paths, options) if _is_file(source)]
    if not any(plan.sites for plan in plans):
        raise UsageError(
            "no images found in " + ", ".join(paths), hint="name the files that deploy images"
        )
    _refuse_undetermined(plans)
    by_hand = _by_hand(plans)
    if not check:
        for plan in plans:
            if plan.edits:
                check_writable(plan.original)
    digests: dict[str, str] = {}
    wanted = [ref for plan in plans for _, ref in plan.edits] + [ref for _, ref in by_hand]
    for reference in wanted:
        key = str(reference)
        if key not in digests:
            digests[key] = refs.parse_digest(resolve(reference))
    changes: list[PinChange] = []
    writes: list[tuple[Original, bytes]] = []
    for plan in plans:
        new_text, file_changes = _apply(plan, digests)
        _recheck(plan, new_text, digests)
        changes.extend(file_changes)
        if file_changes:
            writes.append((plan.original, encode(new_text)))
    for site, reference in by_hand:
        new = str(reference.with_digest(digests[str(reference)]))
        changes.append(PinChange(site.finding.location, site.finding.text, new, in_place=False))
    if not check:
        replace_all(writes)
    return changes


def _is_file(source: Source) -> bool:
    if source.path is None:
        raise UsageError(f"cannot pin standard input ({STDIN}): name the files to rewrite")
    return True


def _plan(source: Source, options: Options) -> _Plan:
    assert source.path is not None
    read = read_file(source.name, source.path, follow=options.follow_symlinks)
    text = decode(read.data)
    kind = source.kind or sniff(text)
    sites = scan(text, source.name, kind, source.path, options)
    edits: dict[tuple[int, int], Reference] = {}
    for site in sites:
        reference = site.finding.reference
        if reference is None or reference.pinned or site.span is None:
            continue
        edits.setdefault(site.span, reference)
    original = Original(source.name, source.path, read.data, read.stat)
    return _Plan(original, kind, text, sites, sorted(edits.items()), options)


def _refuse_undetermined(plans: list[_Plan]) -> None:
    """pin --check must not pass a file whose images nobody can tell (the gate's ERROR)."""
    unknown = [s.finding for plan in plans for s in plan.sites if s.finding.reference is None]
    if unknown:
        first = unknown[0]
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise UnavailableError(
            f"{first.location.file}:{first.location.line}: {CANNOT_TELL}: {first.problem}{more}"
        )


def _by_hand(plans: list[_Plan]) -> list[tuple[Site, Reference]]:
    """Unpinned references with no verbatim text to edit here (and no other plan edits them)."""
    planned = {os.path.realpath(plan.original.path) for plan in plans}
    out: dict[tuple[Location, str], tuple[Site, Reference]] = {}
    for plan in plans:
        for site in plan.sites:
            reference = site.finding.reference
            if reference is None or reference.pinned or site.span is not None:
                continue
            if site.origin is not None and site.origin in planned:
                continue  # pinned where it is written, by that file's own plan
            out.setdefault((site.finding.location, str(reference)), (site, reference))
    return list(out.values())


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
        changes.append(PinChange(Location(plan.name, line_at(starts, start)), old, new))
    pieces.append(plan.text[cursor:])
    return "".join(pieces), changes


def _recheck(plan: _Plan, new_text: str, digests: dict[str, str]) -> None:
    """The edited file must read exactly as before, except that edited references gained digests."""
    edited = {span for span, _ in plan.edits}
    try:
        after = scan(new_text, plan.name, plan.kind, plan.original.path, plan.options)
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
        file=plan.name,
    )
