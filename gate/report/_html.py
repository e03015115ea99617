"""``-o html`` and ``report.html``: one self-contained page to read a gate's outcome.

The page is opened from CI artifacts and air-gapped hosts, so it carries its
own style and script and asks the network for nothing; a Content-Security-Policy
that allows only those exact inline blocks (by hash) backs that up, so even a
value that slipped past escaping could not run a script or load anything.
Image references, reasons and file names come from manifests and registries:
jinja2's autoescape turns them into text, and :func:`~gate.report.printable`
removes control and bidi characters first.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from gate.report import (
    SIZE_LABEL,
    STATUS_ORDER,
    ReportContext,
    format_time,
    grouped,
    human_size,
    is_failing,
    printable,
    short_digest,
    summary_line,
)
from gate.report._markdown import EMOJI, _file_url, _safe_url
from gate.result import Result, Signer, Status

if TYPE_CHECKING:
    import jinja2
    from markupsafe import Markup

_BREAK_AFTER = re.compile(r"([/:@])")
"""Where a long reference may wrap: after a separator (/ : @), never inside a name."""
_HEX_RUN = re.compile(r"[0-9a-f]{32,}")
"""A long hex run (a pinned digest, not a name) may also wrap every 16 digits."""


def render_html(results: Sequence[Result], ctx: ReportContext) -> str:
    """The page: summary, counts by status, filters, one row per image (failing first)."""
    env = environment()
    ordered = [r for _, _, members in grouped(results, ctx) for r in members]
    counts = Counter(r.status for r in results)
    return env.get_template("report.html.j2").render(
        ctx=ctx,
        summary=summary_line(results, ctx),
        failing=any(is_failing(r, ctx) for r in results),
        counts=[(s, counts[s]) for s in STATUS_ORDER if counts[s]],
        rows=[(r, is_failing(r, ctx)) for r in ordered],
        run_link=_safe_url(ctx.run_url),
        image_link=lambda r: _safe_url(ctx.links.get(r.image)),
        file_link=lambda s: _safe_url(_file_url(ctx, s.file, s.line)),
        **page_assets(),
    )


def signer_text(signer: Signer | None) -> str:
    """Who signed, as a reviewer knows them: policy name, then keyless identity or key ID."""
    if signer is None:
        return "-"
    identity = getattr(signer, "identity", None)  # keyless signers carry an OIDC identity
    who = str(identity) if identity else f"key {(signer.key_id or '-')[:16]}"
    return f"{signer.name} ({who})" if signer.name else who


def search_text(result: Result) -> str:
    """Everything a search should find in a row, lower-cased (the script compares lower-case)."""
    parts = [result.image, result.digest or "", result.status.value, result.reason]
    parts.append(signer_text(result.signer))
    if result.signer is not None:
        parts.append(result.signer.key_id or "")  # a keyless signer may have none
        parts.append(str(getattr(result.signer, "issuer", None) or ""))
    parts += [f"{s.file}:{s.line}" for s in result.sources]
    parts += [c.image for c in result.children] + list(result.warnings)
    return printable(" ".join(parts)).lower()


def page_assets(extra_css: str | None = None) -> dict[str, str]:
    """``style``, ``script`` and the ``csp`` that allows exactly them (and nothing else).

    Both pages (this report and the watchdog's status page) share the look and
    the filter script; ``extra_css`` names a stylesheet the other page adds.
    """
    style = _asset("report.css") + (_asset(extra_css) if extra_css else "")
    script = _asset("report.js")
    return {"style": style, "script": script, "csp": content_security_policy(style, script)}


def content_security_policy(style: str, script: str) -> str:
    """Deny everything but these inline blocks: no fetch, image, font or frame can load."""
    return (
        "default-src 'none'; "
        f"style-src '{_sha256(style)}'; script-src '{_sha256(script)}'; "
        "img-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'"
    )


def environment() -> jinja2.Environment:
    """HTML-autoescaping environment with the helpers both pages share."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template_source),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(t=_text, wrap=wrap)
    env.globals.update(
        emoji=EMOJI,
        short_digest=short_digest,
        signer_text=signer_text,
        search_text=search_text,
        format_time=format_time,
        human_size=human_size,
        size_label=SIZE_LABEL,
        child_label=_child_label,
        Status=Status,
    )
    return env


def wrap(value: Any) -> Markup:
    """Escaped text with ``<wbr>`` after separators, so a long reference wraps between names."""
    from markupsafe import Markup, escape

    text = _BREAK_AFTER.sub(r"\1<wbr>", str(escape(_text(value))))
    return Markup(_HEX_RUN.sub(_hex_breaks, text))


def _hex_breaks(match: re.Match[str]) -> str:
    run = match.group()
    return "<wbr>".join(run[i : i + 16] for i in range(0, len(run), 16))


def _text(value: Any) -> str:
    return "-" if value is None else printable(str(value))


def _child_label(child: Result) -> str:
    platform = child.extra.get("platform")
    return platform if isinstance(platform, str) and platform else child.image


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()


def _asset(name: str) -> str:
    return _template_source(name)


def _template_source(name: str) -> str:
    return resources.files("gate.report").joinpath("templates", name).read_text("utf-8")
