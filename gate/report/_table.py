"""``-o text``: a table sized to the terminal, or a vcn-style ``key: value`` block for one image.

Widths follow the content; when the terminal is too narrow, IMAGE and REASON
wrap (they are the columns a person must read whole) and SIGNER is shortened.
Colour is opt-in because the caller knows whether stdout is a terminal.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from gate.report import (
    SIZE_LABEL,
    ReportContext,
    format_time,
    human_size,
    is_failing,
    printable,
    short_digest,
    signer_label,
    summary_line,
)
from gate.result import Result, Status

HEADERS = ("IMAGE", "DIGEST", "STATUS", "SIGNER", "SIGNED AT", "LEVEL", "REASON")
_IMAGE, _STATUS, _REASON = 0, 2, 6
_DROP_ORDER = (4, 5)  # SIGNED AT, then LEVEL: the JSON and markdown reports still have them
_GAP = "  "
_SIGNER_MAX = 24
_FLEX_MIN = 16
_FLOOR = 8  # below this a column is unreadable: overflow the terminal instead
_CHILD_PREFIX = "  └ "
_BREAKS = re.compile(r"(\s+|(?<=/)|(?=@))")

_SGR: Mapping[Status, str] = {
    Status.TRUSTED: "32",
    Status.UNTRUSTED: "1;31",
    Status.UNKNOWN: "33",
    Status.UNSUPPORTED: "35",
    Status.ERROR: "31",
}


class _Paint:
    """ANSI SGR colouring that is a no-op when colour is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, sgr: str) -> str:
        return f"\x1b[{sgr}m{text}\x1b[0m" if self.enabled and text else text

    def status(self, text: str, status: Status) -> str:
        return self(text, _SGR[status])


def render_text(results: Sequence[Result], ctx: ReportContext, *, color: bool, width: int) -> str:
    """The whole text report: table (or block), warnings, then the summary line."""
    paint = _Paint(color)
    if not results:
        lines = ["No images checked."]
    elif len(results) == 1:
        lines = _block(results[0], paint, width)
    else:
        lines = _table(results, paint, width)
    lines += _warnings(results, width)
    failing = any(is_failing(r, ctx) for r in results) or not results
    summary = summary_line(results, ctx)
    if not color:  # a pipe or a file: no emoji either (gate._cli_style)
        from gate._cli_style import plain

        summary = plain(summary)
    lines += ["", paint(summary, "1;31" if failing else "1;32")]
    return "\n".join(lines) + "\n"


# --- the table ---------------------------------------------------------------------------


def _table(results: Sequence[Result], paint: _Paint, width: int) -> list[str]:
    rows: list[tuple[list[str], Status]] = []
    for result in results:
        rows.append((_cells(result, _short_pin(printable(result.image))), result.status))
        for child in result.children:
            rows.append((_cells(child, _CHILD_PREFIX + _child_label(child)), child.status))
    natural = [
        max(_cell_width(cells[i]) for cells in [list(HEADERS), *(r for r, _ in rows)])
        for i in range(len(HEADERS))
    ]
    widths = _layout(natural, width)
    lines = [paint(_join(list(HEADERS), widths), "1")]
    for cells, status in rows:
        lines.extend(_row_lines(cells, status, widths, paint))
    return lines


_PIN = re.compile(r"@(sha256:[0-9a-f]{12})[0-9a-f]{52}\b")


def _short_pin(image: str) -> str:
    """``name:tag@sha256:<12 hex>…`` in the table: the DIGEST column and -o json carry it whole."""
    return _PIN.sub(r"@\1…", image)


def _cells(result: Result, image: str) -> list[str]:
    signer = printable(signer_label(result.signer))
    return [
        image,
        short_digest(printable(result.digest) if result.digest else None),
        result.status.value,
        _truncate(signer, _SIGNER_MAX),
        format_time(result.signed_at),
        "-" if result.level is None else str(result.level),
        printable(result.reason) or "-",
    ]


def _layout(natural: list[int], width: int) -> list[int]:
    """Column widths (0 = not shown): natural when they fit; else IMAGE and REASON share
    what is left, after dropping SIGNED AT and then LEVEL on narrow terminals."""
    widths = list(natural)
    flex = (_IMAGE, _REASON)

    def spare() -> int:
        shown = [i for i, w in enumerate(widths) if w]
        gaps = len(_GAP) * (len(shown) - 1)
        return width - gaps - sum(w for i, w in enumerate(widths) if i not in flex)

    for column in _DROP_ORDER:
        if spare() >= 2 * _FLEX_MIN:
            break
        widths[column] = 0
    room = spare()
    image, reason = natural[_IMAGE], natural[_REASON]
    if image + reason <= room:
        return widths
    half = room // 2
    if image <= half:
        reason = room - image
    elif reason <= half:
        image = room - reason
    else:
        image, reason = half, room - half
    widths[_IMAGE] = max(_FLOOR, min(image, natural[_IMAGE]))
    widths[_REASON] = max(_FLOOR, min(reason, natural[_REASON]))
    return widths


def _row_lines(cells: list[str], status: Status, widths: list[int], paint: _Paint) -> list[str]:
    """One row, wrapped onto as many lines as its tallest cell; STATUS is coloured."""
    wrapped = [_wrap(cell, w) if w else [] for cell, w in zip(cells, widths, strict=True)]
    height = max(len(parts) for parts in wrapped)
    lines = []
    for n in range(height):
        parts = [parts[n] if n < len(parts) else "" for parts in wrapped]
        lines.append(_join(parts, widths, status=status, paint=paint))
    return lines


def _join(
    cells: list[str],
    widths: list[int],
    *,
    status: Status | None = None,
    paint: _Paint | None = None,
) -> str:
    out = []
    for i, (cell, w) in enumerate(zip(cells, widths, strict=True)):
        if not w:
            continue
        padded = cell + " " * max(0, w - _cell_width(cell))
        if i == _STATUS and status is not None and paint is not None:
            padded = paint.status(cell, status) + padded[len(cell) :]
        out.append(padded)
    return _GAP.join(out).rstrip()


# --- one image: key: value ------------------------------------------------------------------


def _block(result: Result, paint: _Paint, width: int) -> list[str]:
    """vcn's ``verify`` layout (Asset, Hash, Date, Key, Name, Size, Level, Status) plus the rest."""
    signer = result.signer
    fields: list[tuple[str, str | None]] = [
        ("Asset", result.image),
        ("Hash", result.digest),
        ("Date", format_time(result.signed_at) if result.signed_at else None),
        ("Key", signer.key_id if signer else None),
        ("Identity", signer.identity if signer else None),
        ("Issuer", signer.issuer if signer else None),
        ("Name", signer.name if signer else None),
        ("Size", None if result.size is None else f"{human_size(result.size)} {SIZE_LABEL}"),
        ("Level", None if result.level is None else str(result.level)),
        ("Status", result.status.value),
        ("Reason", result.reason),
        ("Attestations", ", ".join(result.attestations) or None),
        ("Sources", ", ".join(f"{s.file}:{s.line}" for s in result.sources) or None),
    ]
    fields += [(str(key), _extra_value(value)) for key, value in result.extra.items()]
    shown = [(key, printable(value)) for key, value in fields if value is not None]
    label_width = max(len(key) for key, _ in shown) + 2
    lines = []
    for key, value in shown:
        parts = _wrap(value, max(_FLEX_MIN, width - label_width))
        if key == "Status":
            parts = [paint.status(value, result.status)]
        lines.append(f"{key + ':':<{label_width}}{parts[0]}".rstrip())
        lines.extend(" " * label_width + part for part in parts[1:])
    if result.children:
        lines.append("Platforms:")
        for child in result.children:
            status = paint.status(child.status.value, child.status)
            reason = printable(child.reason)
            digest = short_digest(child.digest)
            lines.append(f"  {_child_label(child)}  {digest}  {status}  {reason}".rstrip())
    return lines


def _extra_value(value: Any) -> str | None:
    """Source-specific facts as one line: lists joined by commas, mappings as k=v."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(v) for v in value)
    return str(value)


# --- shared ---------------------------------------------------------------------------------


def _warnings(results: Sequence[Result], width: int) -> list[str]:
    items: list[str] = []
    for result in results:
        items += [f"{result.image}: {w}" for w in result.warnings]
        for child in result.children:
            label = f"{result.image} ({_child_label(child)})"
            items += [f"{label}: {w}" for w in child.warnings]
    if not items:
        return []
    lines = ["", "Warnings:"]
    for item in items:
        parts = _wrap(printable(item), max(_FLEX_MIN, width - 4))
        lines.append("  - " + parts[0])
        lines.extend("    " + part for part in parts[1:])
    return lines


def _child_label(child: Result) -> str:
    """A per-platform result is named by its platform when verify recorded one."""
    platform = child.extra.get("platform")
    return printable(platform if isinstance(platform, str) and platform else child.image)


def _cell_width(text: str) -> int:
    """Terminal columns: wide East Asian characters and emoji take two, combining marks none."""
    total = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        total += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return total


def _truncate(text: str, width: int) -> str:
    if _cell_width(text) <= width:
        return text
    while text and _cell_width(text) > width - 1:
        text = text[:-1]
    return text + "…"


def _wrap(text: str, width: int) -> list[str]:
    """Wrap to ``width`` columns at spaces, after ``/`` and before ``@`` (references have no
    spaces), splitting a piece that is still too long."""
    if _cell_width(text) <= width:
        return [text]
    lines: list[str] = []
    line = ""
    for token in _BREAKS.split(text):
        if not token:
            continue
        if token.isspace():
            line = line + " " if line else line
            continue
        if _cell_width(line + token) <= width:
            line += token
            continue
        if line.strip():
            lines.append(line.rstrip())
        line = token
        while _cell_width(line) > width:
            cut = len(line)
            while cut > 1 and _cell_width(line[:cut]) > width:
                cut -= 1
            lines.append(line[:cut])
            line = line[cut:]
    if line.strip():
        lines.append(line.rstrip())
    return lines or [""]
