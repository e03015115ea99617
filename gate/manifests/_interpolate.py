"""Compose variable interpolation and ``.env`` files, as Docker Compose reads them.

NOTE: https://github.com/compose-spec/compose-spec/blob/main/12-interpolation.md --
``$VAR``, ``${VAR}``, ``${VAR:-default}`` / ``${VAR-default}`` (unset or empty /
unset), ``${VAR:?err}`` / ``${VAR?err}``, ``${VAR:+alt}`` / ``${VAR+alt}``,
``$$`` for a literal ``$``; defaults may nest further substitutions. Where
Compose would substitute an empty string for an unset variable (and warn), we
report that the value cannot be determined instead: a deploy would pull a
different image than anyone can read off the file.

NOTE: https://docs.docker.com/compose/how-tos/environment-variables/variable-interpolation/#env-file-syntax
for ``.env``: ``KEY=VALUE`` lines, ``export`` prefix, ``#`` comments, single
quotes literal, double quotes with escapes, values interpolated from the lines
above. Errors in ``.env`` never quote it: it holds secrets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from gate.errors import ManifestError
from gate.manifests._model import clip
from gate.manifests._text import split_lines

MAX_NESTING = 20
"""Defaults inside defaults; real files use one or two levels."""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")
_DOTENV_LINE = re.compile(r"[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*(.*)")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "$"}


@dataclass(frozen=True)
class Interpolated:
    """A value with its variables substituted, or why that cannot be done."""

    value: str | None
    problem: str | None = None


class _CannotTellError(Exception):
    """Internal: a variable that leaves the value undetermined (caught in ``interpolate``)."""


def interpolate(text: str, env: Mapping[str, str]) -> Interpolated:
    """``text`` with Compose substitution applied; ``value`` is None when it is undetermined."""
    try:
        value, end = _Template(text, env).run(0, 0, stop=None)
    except _CannotTellError as e:
        return Interpolated(None, str(e))
    assert end == len(text)
    return Interpolated(value)


class _Template:
    def __init__(self, text: str, env: Mapping[str, str]) -> None:
        self.text = text
        self.env = env

    def run(self, i: int, depth: int, *, stop: str | None) -> tuple[str, int]:
        """Substitute from ``i`` until ``stop`` (a closing brace) or the end; (value, index)."""
        if depth > MAX_NESTING:
            raise _CannotTellError(f"substitutions nest more than {MAX_NESTING} deep")
        out: list[str] = []
        text, n = self.text, len(self.text)
        while i < n:
            ch = text[i]
            if stop is not None and ch == stop:
                return "".join(out), i
            if ch != "$":
                out.append(ch)
                i += 1
                continue
            nxt = text[i + 1 : i + 2]
            if nxt == "$":
                out.append("$")
                i += 2
            elif nxt == "{":
                value, i = self._braced(i + 2, depth)
                out.append(value)
            elif match := _NAME.match(text, i + 1):
                out.append(self._plain(match.group(0), f"${match.group(0)}"))
                i = match.end()
            else:
                raise _CannotTellError(
                    f"'{clip(text[i : i + 2])}' is not a valid substitution (write $$ for a $)"
                )
        if stop is not None:
            raise _CannotTellError("a ${ has no closing }")
        return "".join(out), i

    def _plain(self, name: str, written: str) -> str:
        value = self.env.get(name)
        if value is None:
            raise _CannotTellError(f"{clip(written)} is not set and has no default")
        return value

    def _braced(self, i: int, depth: int) -> tuple[str, int]:
        """After ``${``: the substituted value and the index after the closing brace."""
        match = _NAME.match(self.text, i)
        if match is None:
            raise _CannotTellError("'${' is not followed by a variable name")
        name, i = match.group(0), match.end()
        if self.text.startswith("}", i):
            return self._plain(name, f"${{{name}}}"), i + 1
        if i >= len(self.text):
            raise _CannotTellError("a ${ has no closing }")
        operator = next((op for op in _OPERATORS if self.text.startswith(op, i)), None)
        if operator is None:
            raise _CannotTellError(f"${{{clip(name)}...}} is not a valid substitution")
        word, i = self.run(i + len(operator), depth + 1, stop="}")
        value = self.env.get(name)
        unset = value is None or (operator.startswith(":") and value == "")
        if operator in (":-", "-"):
            result = word if unset else value
        elif operator in (":+", "+"):
            result = "" if unset else word
        elif unset:
            said = f": {clip(word, 60)}" if word else ""
            raise _CannotTellError(f"${{{clip(name)}}} is required and not set{said}")
        else:
            result = value
        assert result is not None
        return result, i + 1


def parse_dotenv(text: str, file: str, env: Mapping[str, str]) -> dict[str, str]:
    """The variables an ``.env`` file defines; values may use ``env`` and earlier lines.

    Raises ManifestError at the line that is not ``KEY=VALUE`` (never quoting it).
    """
    out: dict[str, str] = {}
    for number, line in enumerate(split_lines(text), start=1):
        body = line.strip(" \t\r\n\ufeff")
        if not body or body.startswith("#"):
            continue
        match = _DOTENV_LINE.fullmatch(body)
        if match is None:
            raise ManifestError("expected KEY=VALUE", file=file, line=number)
        name, raw = match.groups()
        scope = {**env, **out}
        out[name] = _dotenv_value(raw, scope, file, number)
    return out


def _dotenv_value(raw: str, scope: Mapping[str, str], file: str, line: int) -> str:
    if raw.startswith("'"):
        end = raw.find("'", 1)
        if end < 0:
            raise ManifestError("a single-quoted value has no closing quote", file=file, line=line)
        return raw[1:end]
    if raw.startswith('"'):
        chars: list[str] = []
        i = 1
        while i < len(raw) and raw[i] != '"':
            if raw[i] == "\\" and i + 1 < len(raw):
                chars.append(_ESCAPES.get(raw[i + 1], "\\" + raw[i + 1]))
                i += 2
                continue
            chars.append(raw[i])
            i += 1
        if i >= len(raw):
            raise ManifestError("a double-quoted value has no closing quote", file=file, line=line)
        value = "".join(chars)
    else:
        comment = re.search(r"[ \t]#", raw)
        value = (raw[: comment.start()] if comment else raw).strip()
    expanded = interpolate(value, scope)
    # An unresolvable reference inside .env stays as written, as Compose leaves it.
    return expanded.value if expanded.value is not None else value
