"""Results → reports: a terminal table, JSON, markdown, HTML, JUnit XML and SARIF 2.1.0.

Every front end (CLI, Action, GitLab template, watchdog) renders the same
:class:`~gate.result.Result` values through :func:`render`; nothing here
decides anything, it only shows what ``verify`` concluded.

The format modules are imported when a format is asked for, so importing
``gate.report`` stays cheap (jinja2 in particular loads only for markdown and HTML).
The helpers below are shared by those modules.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from gate import __version__
from gate.errors import UsageError
from gate.result import FailOn, Result, Signer, Status, fails

__all__ = [
    "SUMMARY_MAX",
    "OutputFormat",
    "ReportContext",
    "counted",
    "prepare_dir",
    "render",
    "summary_line",
    "write_all",
]

SUMMARY_MAX = 140
"""GitHub's limit for a commit-status description, in characters."""

STATUS_ORDER: tuple[Status, ...] = (
    Status.UNTRUSTED,
    Status.ERROR,
    Status.UNKNOWN,
    Status.UNSUPPORTED,
    Status.TRUSTED,
)
"""Worst first: the order statuses are counted and grouped in."""


class OutputFormat(StrEnum):
    """The report formats (``-o``); the value is what the user types."""

    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"
    HTML = "html"
    JUNIT = "junit"
    SARIF = "sarif"


FILE_NAMES: Mapping[OutputFormat, str] = {
    OutputFormat.TEXT: "report.txt",
    OutputFormat.JSON: "report.json",
    OutputFormat.MARKDOWN: "report.md",
    OutputFormat.HTML: "report.html",
    OutputFormat.JUNIT: "junit.xml",
    OutputFormat.SARIF: "sarif.json",
}
"""What ``--report-dir`` writes, one file per format."""


@dataclass(frozen=True)
class ReportContext:
    """Facts about the run that no single result knows, for headers and links."""

    title: str = "Sealgate"
    command: str = "verify"
    tool_version: str = __version__
    policy: str | None = None
    """Path of the policy file, relative to the repository root when known."""
    run_url: str | None = None
    """The CI run (e.g. a GitHub Actions run page), linked from the markdown."""
    links: Mapping[str, str] = field(default_factory=dict)
    """Image reference or source file path → URL (registry UI, file viewer)."""
    started: datetime | None = None
    fail_on: FailOn = FailOn.UNKNOWN
    source_url: str | None = None
    """Base URL of the checked-out tree (``…/blob/<sha>``): ``file:line`` become links."""


def render(
    results: Sequence[Result],
    fmt: OutputFormat,
    ctx: ReportContext | None = None,
    *,
    color: bool = False,
    width: int | None = None,
) -> str:
    """Render ``results`` in one format; ``color`` and ``width`` only affect TEXT.

    ``width`` defaults to the terminal's (or 120 columns when there is none).
    """
    ctx = ctx or ReportContext()
    fmt = OutputFormat(fmt)
    if fmt is OutputFormat.TEXT:
        from gate.report import _table

        return _table.render_text(results, ctx, color=color, width=width or _terminal_width())
    if fmt is OutputFormat.JSON:
        from gate.report import _json

        return _json.render_json(results)
    if fmt is OutputFormat.MARKDOWN:
        from gate.report import _markdown

        return _markdown.render_markdown(results, ctx)
    if fmt is OutputFormat.HTML:
        from gate.report import _html

        return _html.render_html(results, ctx)
    if fmt is OutputFormat.JUNIT:
        from gate.report import _junit

        return _junit.render_junit(results, ctx)
    from gate.report import _sarif

    return _sarif.render_sarif(results, ctx)


def prepare_dir(directory: Path) -> Path:
    """Create ``directory`` (and its parents) and check a file can be made in it.

    Called before any work, so a bad ``--report-dir`` stops the run before a
    signature is pushed or a registry is asked. Raises UsageError (exit 2), one
    sentence, when it is a file or cannot be created or written.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError as e:
        raise UsageError(f"the report directory {directory} is a file, not a directory") from e
    except NotADirectoryError as e:
        raise UsageError(
            f"cannot create the report directory {directory}: a part of its path is a file"
        ) from e
    except OSError as e:
        raise UsageError(
            f"cannot create the report directory {directory}: {e.strerror or e}"
        ) from e
    try:
        fd, probe = tempfile.mkstemp(prefix=".sealgate-probe.", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UsageError(
            f"cannot write in the report directory {directory}: {e.strerror or e}"
        ) from e
    return directory


def write_all(
    results: Sequence[Result], directory: Path, ctx: ReportContext | None = None
) -> dict[str, Path]:
    """Write every format into ``directory`` (created if missing); return ``{format: path}``.

    Each file is written to a temporary name and renamed, so a reader (or a CI
    artifact upload) never sees half a report.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for fmt, name in FILE_NAMES.items():
        # Files have no terminal: use a fixed, generous width so they read the same everywhere.
        text = render(results, fmt, ctx, color=False, width=160)
        path = directory / name
        _atomic_write(path, text)
        written[fmt.value] = path
    return written


def summary_line(results: Sequence[Result], ctx: ReportContext | None = None) -> str:
    """One line for humans and commit statuses, at most :data:`SUMMARY_MAX` characters.

    E.g. ``✅ 3 of 3 images trusted`` or ``❌ 2 of 5 images failed: 1 untrusted, 1 unknown``.
    """
    ctx = ctx or ReportContext()
    total = len(results)
    if total == 0:
        return "⚠️ no images checked"
    noun = "image" if total == 1 else "images"
    failed = [r for r in results if is_failing(r, ctx)]
    if failed:
        line = f"❌ {len(failed)} of {total} {noun} failed: {_count_statuses(failed)}"
    elif all(r.status is Status.TRUSTED for r in results):
        line = f"✅ {total} of {total} {noun} trusted"
    else:
        line = f"✅ {total} of {total} {noun} passed: {_count_statuses(results)}"
    return clip(line, SUMMARY_MAX)


# --- helpers shared by the format modules ------------------------------------------------


def is_failing(result: Result, ctx: ReportContext) -> bool:
    """Whether this result fails the run under ``ctx.fail_on`` (the exit-code rule)."""
    return fails(result.status, ctx.fail_on, unsupported_denied=result.unsupported_denied)


def grouped(
    results: Sequence[Result], ctx: ReportContext
) -> list[tuple[Status, bool, list[Result]]]:
    """``(status, any_failing, results)`` per status that occurs; failing groups first."""
    groups: dict[Status, list[Result]] = {}
    for result in results:
        groups.setdefault(result.status, []).append(result)
    ordered = [
        (status, any(is_failing(r, ctx) for r in groups[status]), groups[status])
        for status in STATUS_ORDER
        if status in groups
    ]
    return sorted(ordered, key=lambda group: not group[1])  # stable: keeps STATUS_ORDER within


def short_digest(digest: str | None) -> str:
    """``sha256:1234567890ab``: the algorithm and 12 hex digits, as docker prints image IDs."""
    if not digest:
        return "-"
    algorithm, sep, encoded = digest.partition(":")
    return f"{algorithm}:{encoded[:12]}" if sep else digest[:19]


def signer_label(signer: Signer | None) -> str:
    """The signer's policy name, else its keyless identity, else its key ID (12 hex digits)."""
    if signer is None:
        return "-"
    return signer.name or signer.identity or (signer.key_id or "")[:12] or "-"


def signer_detail(signer: Signer) -> str:
    """Who exactly signed: ``key <id>``, or ``<identity> (issuer <url>)`` for keyless."""
    if signer.identity is not None:
        return f"{signer.identity} (issuer {signer.issuer})"
    return f"key {signer.key_id}"


def format_time(moment: datetime | None) -> str:
    """``2024-05-01 12:00Z`` in UTC (naive times are taken as UTC)."""
    if moment is None:
        return "-"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%MZ")


SIZE_LABEL = "(config + layers)"
"""How reports label the size: the config blob plus every layer, as its manifest lists them."""


def human_size(size: int | None) -> str:
    """Bytes in the units `docker images` uses (powers of 1000)."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover - the loop always returns


# Control characters (Unicode category Cc), lone surrogates, the XML-illegal noncharacters,
# and bidirectional overrides/isolates, which reorder what a terminal or browser shows
# ("Trojan Source", CVE-2021-42574): none may reach a report as themselves.
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def printable(text: str) -> str:
    """``text`` safe to show: newlines and tabs become spaces, other controls become escapes.

    Attacker-controlled strings (image references, registry error messages)
    reach terminals, XML and markdown; control characters could move the
    cursor, recolour or reorder output, and most are illegal in XML 1.0.
    """
    if not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in "\r\n\t":
        return " "
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 image``, ``2 images``, ``0 entries``: a count with its noun in agreement."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def clip(text: str, limit: int, marker: str = "…") -> str:
    """``text`` cut to ``limit`` characters, ending in ``marker`` when cut."""
    return text if len(text) <= limit else text[: max(0, limit - len(marker))] + marker


def _count_statuses(results: Sequence[Result]) -> str:
    counts = Counter(r.status for r in results)
    return ", ".join(f"{counts[s]} {s.value.lower()}" for s in STATUS_ORDER if counts[s])


def _terminal_width() -> int:
    import shutil

    return max(60, shutil.get_terminal_size(fallback=(120, 24)).columns)


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory and ``os.replace`` it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; reports are shared as CI artifacts
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
