"""``GET /`` and ``GET /status.json`` beside ``/metrics``: the board as a page and as data.

The page is rendered on each request from :meth:`Board.snapshot` with the
report's jinja2 environment (autoescaped, same filters and script), and
reloads itself; nothing on it can change the watchdog (only GET and HEAD).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from gate.watch._board import Board

REFRESH_SECONDS = 10
"""How often the page reloads itself."""

Page = Callable[[], tuple[str, bytes, Mapping[str, str]]]
"""Content type, body, extra headers."""


def render_status(snapshot: Mapping[str, Any], refresh: int = REFRESH_SECONDS) -> str:
    """The HTML page for one snapshot."""
    from gate.report._html import environment, page_assets

    return (
        environment()
        .get_template("status.html.j2")
        .render(s=snapshot, summary=summary(snapshot), refresh=refresh, **page_assets("status.css"))
    )


def summary(snapshot: Mapping[str, Any]) -> str:
    """E.g. ``❌ 2 of 7 containers failing: 1 untrusted, 1 unknown``."""
    total = len(snapshot["containers"])
    noun = "container" if total == 1 else "containers"
    if total == 0:
        return "no running containers checked yet" if not snapshot["last_sweep"] else f"0 {noun}"
    failing = [c for c in snapshot["containers"] if c["failing"]]
    if not failing:
        return f"✅ {total} of {total} {noun} passing"
    counts: dict[str, int] = {}
    for c in failing:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    detail = ", ".join(f"{n} {s.lower()}" for s, n in counts.items())
    return f"❌ {len(failing)} of {total} {noun} failing: {detail}"


def checked_line(snapshot: Mapping[str, Any]) -> str:
    """``Checked 3 containers: 1 unknown, 2 trusted``: what ``watch`` prints when it ends."""
    total = len(snapshot["containers"])
    noun = "container" if total == 1 else "containers"
    counts = ", ".join(f"{n} {s.lower()}" for s, n in snapshot["counts"].items())
    return f"Checked {total} {noun}" + (f": {counts}" if counts else "")


def pages(board: Board, refresh: int = REFRESH_SECONDS) -> dict[str, Page]:
    """The routes the metrics server adds: ``/`` (HTML) and ``/status.json``."""

    def html_page() -> tuple[str, bytes, Mapping[str, str]]:
        from gate.report._html import page_assets

        csp = page_assets("status.css")["csp"]
        body = render_status(board.snapshot(), refresh).encode("utf-8")
        return "text/html; charset=utf-8", body, {"Content-Security-Policy": csp}

    def json_page() -> tuple[str, bytes, Mapping[str, str]]:
        body = json.dumps(board.snapshot(), indent=2, ensure_ascii=False).encode("utf-8")
        return "application/json; charset=utf-8", body + b"\n", {}

    return {"/": html_page, "/status.json": json_page}
