"""``-o markdown``: GitHub-flavoured markdown for job summaries, rendered with jinja2 templates.

Image references and reasons can come from an attacker (a manifest in a pull
request, a registry's error text), and the summary is shown on GitHub: every
value is escaped so it cannot end a table cell, open a link or an image, or
inject HTML. GitHub rejects a step summary over 1 MiB, so rows and details are
measured and the page is cut, with a note, well under that.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from gate.report import (
    SIZE_LABEL,
    ReportContext,
    format_time,
    grouped,
    human_size,
    printable,
    short_digest,
    signer_label,
    summary_line,
)
from gate.result import Result, Status

if TYPE_CHECKING:
    import jinja2

MAX_BYTES = 512 * 1024
"""Cap for the whole page: half of GitHub's 1 MiB step-summary limit, leaving room for others."""

_RESERVE = 4 * 1024
"""Slack for the truncation notes, whose numbers are only known at the end."""

WHERE_LIMIT = 5
"""Source locations listed in a table cell before "+N more"."""

EMOJI: Mapping[Status, str] = {
    Status.TRUSTED: "✅",
    Status.UNTRUSTED: "❌",
    Status.UNKNOWN: "❔",
    Status.UNSUPPORTED: "⚠️",
    Status.ERROR: "🛑",
}

# ASCII punctuation that means something to GFM inline parsing or tables (CommonMark allows
# a backslash before any of it); "$" opens GitHub's math. "<", ">", "&" become entities.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~!$])")
_SAFE_CODE = re.compile(r"[A-Za-z0-9:._/@+=-]+")
_URL_SAFE = ":/?#@!$&'*+,;=%~-._"


def render_markdown(results: Sequence[Result], ctx: ReportContext) -> str:
    """The page, with rows and details left out (and counted in a note) past :data:`MAX_BYTES`."""
    env = _environment(ctx)
    macros: Any = env.get_template("macros.md.j2").module  # exposes the template's macros
    groups = grouped(results, ctx)
    ordered = [r for _, _, members in groups for r in members]

    def page(shown_rows: int, shown_details: int) -> str:
        views, left = [], shown_rows
        for status, failing, members in groups:
            shown = members[: max(0, left)]
            left -= len(shown)
            views.append(
                {
                    "status": status,
                    "failing": failing,
                    "total": len(members),
                    "shown": shown,
                    "hidden": len(members) - len(shown),
                }
            )
        return env.get_template("report.md.j2").render(
            summary=summary_line(results, ctx),
            groups=views,
            details=ordered[:shown_details],
            details_hidden=len(ordered) - shown_details,
            total=len(ordered),
            run_link=_safe_url(ctx.run_url),
            cap="1 MiB",
        )

    full = page(len(ordered), len(ordered))
    if _size(full) <= MAX_BYTES:
        return full
    # Too big: keep table rows first (failing groups lead), then as many details as still fit.
    budget = MAX_BYTES - _size(page(0, 0)) - _RESERVE
    row_sizes = [_size(str(macros.row(r))) for r in ordered]
    rows = _fit(row_sizes, budget)
    budget -= sum(row_sizes[:rows])
    details = _fit([_size(str(macros.detail(r))) for r in ordered], budget)
    return page(rows, details)


def md(value: Any) -> str:
    """Escape text for a GFM table cell or paragraph: one line, no markup, no HTML."""
    if value is None:
        return "-"
    if isinstance(value, list | tuple | set | frozenset):
        value = ", ".join(str(v) for v in value)
    text = html.escape(printable(str(value)), quote=False)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def code(value: Any) -> str:
    """A code span for digests and paths; anything with unusual characters is escaped text."""
    text = "-" if value is None else str(value)
    if text == "-":
        return text
    return f"`{text}`" if _SAFE_CODE.fullmatch(text) else md(text)


def link(text: str, url: str | None) -> str:
    """``[text](url)`` for an http(s) URL; otherwise just the (already escaped) text."""
    safe = _safe_url(url)
    return f"[{text}]({safe})" if safe else text


def _safe_url(url: str | None) -> str | None:
    """Only http(s); percent-encode anything that could end the link or break the line."""
    if not url or urlsplit(url).scheme.lower() not in ("http", "https"):
        return None
    return quote(url, safe=_URL_SAFE)


def _environment(ctx: ReportContext) -> jinja2.Environment:
    import jinja2  # here, not at module top: `gate.report` must import fast (see __init__)

    def where_cell(result: Result, limit: int | None = WHERE_LIMIT, sep: str = "<br>") -> str:
        """``file:line`` per source, linked to the file viewer when a base URL is known."""
        if not result.sources:
            return "-"
        shown = result.sources if limit is None else result.sources[:limit]
        cells = [link(md(f"{s.file}:{s.line}"), _file_url(ctx, s.file, s.line)) for s in shown]
        if len(result.sources) > len(shown):
            cells.append(f"+{len(result.sources) - len(shown)} more")
        return sep.join(cells)

    def image_cell(result: Result) -> str:
        return link(md(result.image), ctx.links.get(result.image))

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_source),
        autoescape=False,  # markdown, not HTML: values are escaped by the |md and |code filters
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(md=md, code=code)
    env.globals.update(
        ctx=ctx,
        emoji=EMOJI,
        where_cell=where_cell,
        image_cell=image_cell,
        child_label=_child_label,
        short_digest=short_digest,
        signer_label=signer_label,
        format_time=format_time,
        human_size=human_size,
        size_label=SIZE_LABEL,
    )
    return env


def _template_source(name: str) -> str:
    """Templates ship as package files (STYLE.md #13), read through importlib.resources."""
    return resources.files("gate.report").joinpath("templates", name).read_text("utf-8")


def _file_url(ctx: ReportContext, file: str, line: int) -> str | None:
    """A link to ``file`` at ``line``: an explicit link, or one under ``ctx.source_url``."""
    if file in ctx.links:
        return f"{ctx.links[file]}#L{line}"
    path = PurePosixPath(file.replace("\\", "/"))
    if not ctx.source_url or path.is_absolute() or file == "-" or ".." in path.parts:
        return None
    return f"{ctx.source_url.rstrip('/')}/{quote(str(path))}#L{line}"


def _child_label(child: Result) -> str:
    platform = child.extra.get("platform")
    return platform if isinstance(platform, str) and platform else child.image


def _fit(sizes: list[int], budget: int) -> int:
    """How many leading items fit in ``budget`` bytes."""
    used = 0
    for count, size in enumerate(sizes):
        used += size
        if used > budget:
            return count
    return len(sizes)


def _size(text: str) -> int:
    return len(text.encode("utf-8"))
