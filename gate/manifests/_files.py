"""Which files to read, how to read them safely, and which finder reads each."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import AnyStr, TextIO

from gate.errors import ManifestError
from gate.manifests import _compose, _dockerfile, _kubernetes, _lists
from gate.manifests._model import Site
from gate.manifests._yaml import compose_all

MAX_FILE_BYTES = 32 * 1024 * 1024
"""Far beyond any deploy manifest; bigger input is refused rather than read into memory."""
STDIN = "-"
_CHUNK = 1 << 20

_SKIP_DIRS = {"node_modules"}
_YAML_SUFFIXES = (".yaml", ".yml", ".json")
_FROM_LINE = re.compile(r"^[ \t\ufeff]*FROM[ \t]+\S", re.IGNORECASE | re.MULTILINE)
_FIRST_INSTRUCTION = re.compile(r"^[ \t\ufeff]*(?:FROM|ARG)[ \t]", re.IGNORECASE)


@dataclass(frozen=True)
class Source:
    """A file to read: the name to report and the path to open (None for stdin)."""

    name: str
    path: str | None
    kind: str | None
    """``yaml``, ``dockerfile`` or ``list`` when the name says so; None to sniff the content."""


def expand(paths: Sequence[str]) -> list[Source]:
    """Files named or found under the named directories, each once, in a stable order."""
    out: list[Source] = []
    seen: set[str] = set()
    for given in paths:
        if given == STDIN:
            if STDIN in seen:
                raise ManifestError("standard input is named twice", file=STDIN)
            seen.add(STDIN)
            out.append(Source(STDIN, None, None))
        elif os.path.isdir(given):
            for path in _walk(given):
                kind = kind_by_name(os.path.basename(path), walked=True)
                if kind is not None and _first(path, seen):
                    out.append(Source(path, path, kind))
        elif os.path.exists(given):
            if _first(given, seen):
                out.append(
                    Source(given, given, kind_by_name(os.path.basename(given), walked=False))
                )
        else:
            raise ManifestError("no such file or directory", file=given)
    return out


def _first(path: str, seen: set[str]) -> bool:
    real = os.path.realpath(path)
    if real in seen:
        return False
    seen.add(real)
    return True


def _walk(top: str) -> Iterator[str]:
    """Files under ``top`` (prefixed as the user wrote it), sorted, hidden entries skipped.

    Symlinked directories are not followed, so a link loop cannot trap the walk.
    """

    def fail(error: OSError) -> None:
        raise ManifestError(f"cannot read directory: {error.strerror}", file=error.filename)

    for root, dirs, files in os.walk(top, onerror=fail):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        for file in sorted(files):
            if not file.startswith("."):
                yield os.path.join(root, file)


def kind_by_name(name: str, *, walked: bool) -> str | None:
    """The finder a file name implies; None means sniff (named) or skip (walked).

    In a walked directory only ``*.txt`` files with "image" in their name are
    lists, so ``requirements.txt`` and friends are not misread as image lists.
    """
    lower = name.lower()
    if lower.endswith(_YAML_SUFFIXES):
        return "yaml"
    if lower.endswith(".dockerignore"):
        return None
    if "dockerfile" in lower or "containerfile" in lower:
        return "dockerfile"
    if lower.endswith(".txt") and (not walked or "image" in lower):
        return "list"
    return None


def read(source: Source, stdin: TextIO | None) -> str:
    """The text of ``source``, refusing anything over MAX_FILE_BYTES."""
    if source.path is None:
        if stdin is None:
            raise ManifestError("standard input was named but none was given", file=STDIN)
        return "".join(_chunks(stdin.read, STDIN))
    return decode(read_bytes(source.name, source.path))


def read_bytes(name: str, path: str) -> bytes:
    """The bytes of ``path``, capped at MAX_FILE_BYTES; OSError becomes ManifestError."""
    try:
        with open(path, "rb") as handle:
            return b"".join(_chunks(handle.read, name))
    except OSError as e:
        raise ManifestError(f"cannot read: {e.strerror or e}", file=name) from e


def _chunks(read: Callable[[int], AnyStr], name: str) -> Iterator[AnyStr]:
    """Read in pieces, so the cap is enforced without allocating it up front."""
    total = 0
    while chunk := read(_CHUNK):
        total += len(chunk)
        if total > MAX_FILE_BYTES:
            raise ManifestError(f"larger than {MAX_FILE_BYTES / 2**20:g} MiB", file=name)
        yield chunk


def decode(data: bytes) -> str:
    """UTF-8 text; stray bytes survive a round trip (surrogateescape), so pin keeps them."""
    return data.decode("utf-8", errors="surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def sniff(text: str) -> str:
    """Guess a file's kind from its content: a Dockerfile, a plain list, or YAML."""
    first = next((line for line in text.splitlines() if _significant(line)), "")
    if _FIRST_INSTRUCTION.match(first) and _FROM_LINE.search(text):
        return "dockerfile"
    lines = [_lists.uncomment(line).strip() for line in text.splitlines() if _significant(line)]
    if lines and all(_looks_like_reference(line) for line in lines):
        return "list"
    return "yaml"


def _significant(line: str) -> bool:
    body = line.strip(" \t\ufeff")
    return bool(body) and not body.startswith("#")


def _looks_like_reference(line: str) -> bool:
    return (
        bool(line)
        and len(line.split()) == 1
        and not line.endswith(":")
        and line[0] not in "-[{\"'&*!|>%@`"
    )


def scan(text: str, name: str, kind: str) -> list[Site]:
    """Run the finder for ``kind`` over ``text``."""
    if kind == "dockerfile":
        return _dockerfile.find(text, name)
    if kind == "list":
        return _lists.find(text, name)
    sites: list[Site] = []
    for document in compose_all(text, name):
        if _compose.is_compose(document):
            sites.extend(_compose.find(document, text, name))
        elif _kubernetes.is_kubernetes(document):
            sites.extend(_kubernetes.find(document, text, name))
    return sites
