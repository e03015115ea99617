"""Whether the command line may colour and decorate what it prints.

``--color always|never`` decides; ``auto`` (the default) colours only a
terminal, and never when ``NO_COLOR`` is set to anything non-empty
(https://no-color.org). Output that is not coloured carries no emoji either:
a log file or a pipe gets plain words.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TextIO

CHOICES = ("auto", "always", "never")

_LEADING_EMOJI = re.compile(r"^(?:[\u2600-\u27bf\U0001f300-\U0001faff]\ufe0f?\s*)+")


def use_color(choice: str, stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """``--color`` resolved against ``stream`` and ``NO_COLOR``."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def plain(line: str) -> str:
    """``line`` without the emoji it starts with (``✅ 3 of 3 …`` → ``3 of 3 …``)."""
    return _LEADING_EMOJI.sub("", line)
