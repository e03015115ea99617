"""Plain image lists: one reference a line; ``#`` starts a comment; blank lines are ignored."""

from __future__ import annotations

from gate.errors import ManifestError
from gate.manifests._model import Site, finding
from gate.manifests._text import split_lines

KIND = "list"


def find(text: str, file: str) -> list[Site]:
    """Every reference in a list, in file order."""
    sites: list[Site] = []
    offset = 0
    for number, line in enumerate(split_lines(text), start=1):
        body = uncomment(line).replace("\ufeff", " ")
        words = body.split()
        if len(words) > 1:
            raise ManifestError(
                f"expected one image reference per line, found {len(words)} words",
                file=file,
                line=number,
            )
        if words:
            start = offset + body.index(words[0])
            found = finding(words[0], file=file, line=number, kind=KIND, context="list")
            sites.append(Site(found, (start, start + len(words[0]))))
        offset += len(line)
    return sites


def uncomment(line: str) -> str:
    """The line before a ``#`` that starts a comment (at the start or after whitespace)."""
    for i, ch in enumerate(line):
        if ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line
