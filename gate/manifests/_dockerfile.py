"""Dockerfiles: the images a build pulls (``FROM``, ``COPY --from``, ``RUN --mount=from=``).

NOTE: https://docs.docker.com/reference/dockerfile/ -- instructions are
case-insensitive, lines continue with the escape character (``\\`` or the one
set by ``# escape=``), comment and blank lines inside a continuation are
dropped, heredocs (``RUN <<EOF``) carry text that is not instructions, and only
``ARG``s declared before the first ``FROM`` can be used in ``FROM``. A ``FROM``
naming an earlier stage, ``FROM scratch`` and ``--from=<stage or index>`` pull
nothing. ``ARG`` defaults are substituted (that is what a plain ``docker build``
uses); a variable with no default is reported as unresolved (the gate's ERROR).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gate.manifests._model import Finding, Site, clip, finding
from gate.manifests._text import line_at, line_starts, split_lines
from gate.result import Location

KIND = "dockerfile"

_DIRECTIVE = re.compile(r"#\s*([A-Za-z]+)\s*=\s*(\S+)\s*")
_HEREDOC = re.compile(r"(?<!<)<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_.-]*)\2")
_VARIABLE = re.compile(
    r"\\\$|\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)
_BLANK = " \t\ufeff"
_BARE_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class _Token:
    text: str
    """The token as written, quotes included."""
    start: int
    """Index into the instruction's text."""


@dataclass(frozen=True)
class _Instruction:
    keyword: str
    """Upper-case instruction name."""
    text: str
    """The instruction with continuations joined (escape and line breaks removed)."""
    offsets: tuple[int, ...]
    """File offset of each character of ``text``."""

    def tokens(self) -> list[_Token]:
        """Whitespace-separated words after the keyword; quotes group words."""
        out: list[_Token] = []
        i, n = len(self.keyword), len(self.text)
        while i < n:
            if self.text[i] in " \t":
                i += 1
                continue
            start, quote = i, ""
            while i < n and (quote or self.text[i] not in " \t"):
                ch = self.text[i]
                if quote and ch == quote:
                    quote = ""
                elif not quote and ch in "\"'":
                    quote = ch
                i += 1
            out.append(_Token(self.text[start:i], start))
        return out

    def span(self, start: int, end: int) -> tuple[int, int] | None:
        """File offsets of ``text[start:end]``, or None if a line break falls inside it."""
        if start >= end or self.offsets[end - 1] - self.offsets[start] != end - 1 - start:
            return None
        return self.offsets[start], self.offsets[end - 1] + 1


@dataclass(frozen=True)
class _Arg:
    value: str | None
    """The default, or None when the ARG is declared without one."""
    span: tuple[int, int] | None
    """File offsets of the default as written (inside quotes), for pin."""


def find(text: str, file: str) -> list[Site]:
    """Every image a build of this Dockerfile pulls, in file order."""
    instructions = _instructions(text)
    # NOTE: BuildKit resolves --from=<name> against every stage in the file.
    every_stage = {alias.lower() for ins in instructions if (alias := _alias(ins))}
    scan = _Scan(text, file)
    for ins in instructions:
        if ins.keyword == "ARG" and scan.count == 0:
            scan.args.update(_args(ins))
        elif ins.keyword == "FROM":
            scan.stage_from(ins)
        elif ins.keyword in ("COPY", "RUN"):
            for token in ins.tokens():
                if not token.text.startswith("--"):
                    break
                for offset, value in _from_flags(token.text):
                    if not value.isdigit() and value.lower() not in every_stage:
                        flag = "--from" if ins.keyword == "COPY" else "--mount from"
                        where = f"stage {scan.stage} {ins.keyword} {flag}"
                        scan.add(ins, value, token.start + offset, where)
    return scan.sites


def _alias(ins: _Instruction) -> str | None:
    """The ``AS name`` of a FROM instruction."""
    if ins.keyword != "FROM":
        return None
    words = [t.text for t in ins.tokens() if not t.text.startswith("--")]
    return words[2] if len(words) >= 3 and words[1].lower() == "as" else None


class _Scan:
    """State while reading one Dockerfile: global ARGs, stages so far, and what was found."""

    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.starts = line_starts(text)
        self.args: dict[str, _Arg] = {}
        self.stages: set[str] = {"scratch"}
        self.stage = ""
        self.count = 0
        self.sites: list[Site] = []

    def stage_from(self, ins: _Instruction) -> None:
        words = [t for t in ins.tokens() if not t.text.startswith("--")]
        if not words:
            return
        alias = _alias(ins)
        self.stage = alias or str(self.count)
        self.count += 1
        image = words[0]
        resolved, _ = _expand(image.text, self.args)
        if (resolved or image.text).lower() not in self.stages:
            self.add(ins, image.text, image.start, f"stage {self.stage}")
        if alias:
            self.stages.add(alias.lower())

    def add(self, ins: _Instruction, token: str, start: int, context: str) -> None:
        """Record ``token`` (at ``start`` in ``ins``); pin edits it, or the ARG default it names."""
        line = line_at(self.starts, ins.offsets[start])
        resolved, missing = _expand(token, self.args)
        if resolved is None:
            problem = f"build arg ${{{clip(missing)}}} has no default; give it one"
            found = Finding(token, None, Location(self.file, line), KIND, context, problem)
            self.sites.append(Site(found, None))
            return
        found = finding(
            token, file=self.file, line=line, kind=KIND, context=context, resolved=resolved
        )
        span = ins.span(start, start + len(token))
        bare = _BARE_VARIABLE.fullmatch(token)
        if bare:
            arg = self.args.get(bare.group(1) or bare.group(2))
            span = arg.span if arg else None
        elif "$" in token:
            span = None  # part literal, part variable: no single place to write the digest
        self.sites.append(Site(found, span))


def _from_flags(flag: str) -> list[tuple[int, str]]:
    """``--from=X`` (COPY) and ``--mount=...,from=X,...`` (RUN): (offset in flag, X)."""
    if flag.startswith("--from="):
        return [(len("--from="), flag[len("--from=") :])]
    if not flag.startswith("--mount="):
        return []
    out, offset = [], len("--mount=")
    for part in flag[offset:].split(","):
        if part.startswith("from="):
            out.append((offset + len("from="), part[len("from=") :]))
        offset += len(part) + 1
    return out


def _args(ins: _Instruction) -> dict[str, _Arg]:
    out: dict[str, _Arg] = {}
    for token in ins.tokens():
        name, eq, raw = token.text.partition("=")
        if not eq:
            out[name] = _Arg(None, None)
            continue
        start = token.start + len(name) + 1
        end = start + len(raw)
        if len(raw) >= 2 and raw[0] in "\"'" and raw[-1] == raw[0]:
            raw, start, end = raw[1:-1], start + 1, end - 1
        out[name] = _Arg(raw, ins.span(start, end))
    return out


def _expand(text: str, args: dict[str, _Arg]) -> tuple[str | None, str]:
    """``text`` with ``$NAME``/``${NAME}``/``${NAME:-word}`` substituted; (None, name) if unset."""
    missing: list[str] = []

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "\\$":
            return "$"
        name = match.group(1) or match.group(4)
        arg = args.get(name)
        value = arg.value if arg else None
        op, word = match.group(2), match.group(3) or ""
        if op in (":-", "-"):
            return value if value or (op == "-" and value is not None) else word
        if op in (":+", "+"):
            return word if value or (op == "+" and value is not None) else ""
        if value is None:
            missing.append(name)
            return ""
        return value

    result = _VARIABLE.sub(one, text)
    return (None, missing[0]) if missing else (result, "")


def _instructions(text: str) -> list[_Instruction]:
    """Logical instructions: continuations joined, comments, blanks and heredoc bodies dropped."""
    lines = split_lines(text)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    escape = "\\"
    i = 0
    while i < len(lines):  # parser directives: only at the very top
        directive = _DIRECTIVE.fullmatch(lines[i].strip(_BLANK))
        if not directive:
            break
        if directive.group(1).lower() == "escape" and directive.group(2) in ("\\", "`"):
            escape = directive.group(2)
        i += 1
    out: list[_Instruction] = []
    while i < len(lines):
        if _skippable(lines[i]):
            i += 1
            continue
        chars: list[str] = []
        offsets: list[int] = []
        while True:
            body = lines[i].rstrip("\r\n")
            trimmed = body.rstrip()
            continued = trimmed.endswith(escape)
            piece = trimmed[:-1] if continued else body
            lead = 0 if chars else len(piece) - len(piece.lstrip(_BLANK))
            chars.append(piece[lead:])
            offsets.extend(range(starts[i] + lead, starts[i] + len(piece)))
            i += 1
            if not continued:
                break
            while i < len(lines) and _skippable(lines[i]):
                i += 1
            if i >= len(lines):
                break
        joined = "".join(chars)
        words = joined.split(None, 1)
        keyword = words[0].upper() if words else ""
        out.append(_Instruction(keyword, joined, tuple(offsets)))
        if keyword in ("RUN", "COPY", "ADD"):
            for heredoc in _HEREDOC.finditer(joined):
                strip_tabs, word = heredoc.group(1) == "-", heredoc.group(3)
                while i < len(lines):
                    line = lines[i].rstrip("\r\n")
                    i += 1
                    if (line.lstrip("\t") if strip_tabs else line) == word:
                        break
    return out


def _skippable(line: str) -> bool:
    body = line.strip(_BLANK + "\r\n")
    return not body or body.startswith("#")
