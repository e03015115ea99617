"""What the finders return: findings for the gate, sites (findings plus where to edit) for pin."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from gate import refs
from gate.errors import InvalidReferenceError, ManifestError
from gate.refs import Reference
from gate.result import Location

_VARIABLE = re.compile(r"\$(?:\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*|.?)")
TOKEN_QUOTE_MAX = 24
"""Errors quote at most this much of a file: enough to find a token, too little to leak a secret."""
CANNOT_TELL = "cannot tell which image this pulls"


def clip(text: str, limit: int = TOKEN_QUOTE_MAX) -> str:
    """``text`` shortened for a message: a file may hold a secret where we expected a name."""
    text = text.replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Options:
    """How deploy files are read: which links to follow, and Compose's variables."""

    follow_symlinks: bool = False
    """Read (never write) through symbolic links; off by default so a link cannot leak a file."""
    environ: Mapping[str, str] | None = None
    """The shell environment Compose interpolates from; None means ``os.environ``."""
    env_files: tuple[str, ...] | None = None
    """``--env-file`` values; None means the ``.env`` next to each Compose file, as Compose does."""


@dataclass(frozen=True)
class Finding:
    """One image reference in a deploy file, where it was written and what it means."""

    text: str
    """The reference exactly as written in the file."""
    reference: Reference | None
    """Parsed and normalised; None when the text could not be resolved (see ``problem``)."""
    location: Location
    """File (as the user named it, ``-`` for stdin) and 1-based line."""
    kind: str
    """``compose``, ``kubernetes``, ``dockerfile`` or ``list``."""
    context: str
    """A label a person recognises: compose service, ``Deployment/web container app``, stage."""
    problem: str | None = None
    """Why ``reference`` is None: reported to the user, not fatal."""


@dataclass(frozen=True)
class PinChange:
    """One reference that pin rewrote (or, with ``check``, would rewrite)."""

    location: Location
    """Where the edit is: the line of the text that changes."""
    old: str
    new: str
    in_place: bool = True
    """False when pin cannot rewrite the text verbatim (a variable, an escape, another file)."""


@dataclass(frozen=True)
class Site:
    """A finding plus the character span that holds its text, so pin can edit it in place."""

    finding: Finding
    span: tuple[int, int] | None
    """Offsets of the reference text to rewrite; None when it cannot be rewritten verbatim."""
    origin: str | None = None
    """Real path of the file holding the text when it is another file (Compose extends/include)."""


def unresolved_problem(text: str) -> str | None:
    """Why ``text`` cannot be checked as written: a variable or a template, or None."""
    if "{{" in text or "{%" in text:
        return "is a template expression; render it first (helm template, kustomize build)"
    match = _VARIABLE.search(text)
    if match:
        return f"uses variable {clip(match.group(0))}; render it first"
    return None


_parse = functools.lru_cache(maxsize=4096)(refs.parse)
"""refs.parse remembered: a pure function returning a frozen Reference (errors are not kept).

An admission webhook parses the same few hundred image strings over and over.
"""


def parse_reference(text: str, *, file: str, line: int) -> Reference:
    """Parse ``text`` or raise ManifestError at ``file:line`` saying why it is not a reference.

    The message quotes the token shortened, and gives refs' detail only when the
    whole token fits: that detail repeats parts of it (a tag, a path component).
    """
    try:
        return _parse(text)
    except InvalidReferenceError as e:
        short = clip(text)
        why = f": {_why(text, e.message)}" if short == text else ""
        raise ManifestError(
            f"'{short}' is not an image reference{why}", file=file, line=line
        ) from e


def _why(text: str, message: str) -> str:
    """The reason from refs' message, without repeating the text it names."""
    quoted = f"'{text}' "
    if message.startswith(quoted + "is not an image reference: "):
        return message[len(quoted + "is not an image reference: ") :]
    if message.startswith(quoted):
        return "it " + message[len(quoted) :]
    return message


def finding(
    text: str, *, file: str, line: int, kind: str, context: str, resolved: str | None = None
) -> Finding:
    """A finding for ``text``; ``resolved`` is its value after substitution, when that differs.

    Unresolvable text (variables, templates) gives a finding with a problem;
    text that resolves to something that is not a reference raises ManifestError.
    """
    value = text if resolved is None else resolved
    problem = unresolved_problem(value)
    if problem is not None:
        return Finding(text, None, Location(file, line), kind, context, problem)
    if value != text:
        try:
            reference = refs.parse(value)
        except InvalidReferenceError as e:
            # Quote what the file says, never what a variable made of it.
            raise ManifestError(
                f"'{clip(text)}' is not an image reference once its variables are substituted",
                file=file,
                line=line,
            ) from e
        return Finding(text, reference, Location(file, line), kind, context)
    return Finding(
        text, parse_reference(value, file=file, line=line), Location(file, line), kind, context
    )
