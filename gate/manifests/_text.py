"""Line bookkeeping shared by the line-oriented finders and pin."""

from __future__ import annotations

import bisect
import re

_LINES = re.compile(r"[^\n]*\n|[^\n]+")


def split_lines(text: str) -> list[str]:
    """Lines with their endings; only LF ends a line (a CR stays with its line, as in Docker)."""
    return _LINES.findall(text)


def line_starts(text: str) -> list[int]:
    """Offset of the first character of each line, for offset -> line lookups."""
    starts = [0]
    for line in split_lines(text)[:-1]:
        starts.append(starts[-1] + len(line))
    return starts


def line_at(starts: list[int], offset: int) -> int:
    """The 1-based line holding character ``offset``."""
    return bisect.bisect_right(starts, offset)
