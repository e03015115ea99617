"""The HTML report: escaping of hostile strings, self-containment, order and content.

Parsed with the standard library's HTML parser, so "escaped" means what a
browser's tokenizer sees; tests/integration/test_pages_browser.py opens it in Chromium.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path

from gate.report import OutputFormat, ReportContext, render, write_all
from gate.report._html import signer_text
from gate.result import FailOn, Location, Result, Signer, Status
from tests.unit.test_report import HOSTILE_IMAGE, KEY, make_results


class Page(HTMLParser):
    """Collects tags, attributes, text and the inline script and style of a page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.blocks: dict[str, list[str]] = {"script": [], "style": []}
        self._in: str | None = None
        self.rows: list[dict[str, str | None]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in self.blocks:
            self._in = tag
        if tag == "tr" and "result" in (dict(attrs).get("class") or ""):
            self.rows.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            self.blocks[self._in].append(data)
        else:
            self.text.append(data)


def _ctx() -> ReportContext:
    return ReportContext(
        command="gate",
        policy="policy.yaml",
        run_url="https://github.com/acme/app/actions/runs/42",
        links={"docker.io/library/nginx:latest": "https://hub.docker.com/_/nginx"},
        source_url="https://github.com/acme/app/blob/0123abc",
    )


def _sha(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_hostile_strings_are_text_never_markup() -> None:
    out = render(make_results(), OutputFormat.HTML, _ctx())
    page = Page(out)
    assert [t for t, _ in page.tags].count("script") == 1  # ours; none from the data
    assert not [t for t, _ in page.tags if t in ("img", "iframe", "object", "embed", "link")]
    for _, attrs in page.tags:
        assert not [a for a in attrs if a.startswith("on")]  # no event handler attributes
        for name in ("href", "src", "action"):
            value = attrs.get(name)
            assert value is None or value.startswith("https://"), value
    text = "".join(page.text)
    assert "<script>alert(1)</script>" in text  # shown, as text
    assert "<img src=x onerror=alert(1)>" in text
    assert "\x1b" not in out and "\u202e" not in out and "\\x1b[31mred\\u202e" in text


def test_page_is_self_contained_and_its_csp_allows_only_its_own_blocks() -> None:
    out = render(make_results(), OutputFormat.HTML, _ctx())
    page = Page(out)
    [csp] = [a["content"] for t, a in page.tags if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp is not None and "default-src 'none'" in csp and "connect-src 'none'" in csp
    [script], [style] = page.blocks["script"], page.blocks["style"]
    assert f"script-src '{_sha(script)}'" in csp and f"style-src '{_sha(style)}'" in csp
    assert not re.search(r"(?:src|href)=\"(?!https://)", out.split("<body>")[0])
    assert "@import" not in style and "url(" not in style and "fetch(" not in script


def test_rows_are_failing_first_with_every_source_and_the_counts() -> None:
    results = make_results()
    many = (*results[1].sources, *(Location(f"k8s/app-{i}.yaml", i + 1) for i in range(9)))
    results[1] = replace(results[1], sources=many)
    page = Page(render(results, OutputFormat.HTML, _ctx()))
    statuses = [row["data-status"] for row in page.rows]
    assert statuses == ["UNTRUSTED", "ERROR", "UNKNOWN", "UNSUPPORTED", "TRUSTED"]
    assert [row["class"] for row in page.rows][:3] == [
        f"result s-{s.lower()} failing" for s in statuses[:3]
    ]
    text = "".join(page.text)
    for source in many:
        assert f"{source.file}:{source.line}" in text  # every file:line, no "+N more"
    assert "❌ 3 of 5 images failed: 1 untrusted, 1 error, 1 unknown" in text
    boxes = [a["value"] for t, a in page.tags if t == "input" and a.get("name") == "status"]
    assert boxes == statuses
    assert "5 of 5 shown" in text and "does not fail the run" in text
    assert "1.2 kB" in text and "Size (config + layers)" in text


def test_fail_on_never_and_empty_runs() -> None:
    never = ReportContext(fail_on=FailOn.NEVER)
    passing = [make_results()[1]]
    page = Page(render(passing, OutputFormat.HTML, never))
    assert [r["class"] for r in page.rows] == ["result s-untrusted"]
    assert [a["class"] for t, a in page.tags if t == "h1"] == ["pass"]
    empty = "".join(Page(render([], OutputFormat.HTML)).text)
    assert "No images were checked." in empty and "no images checked" in empty


def test_signer_shows_keyless_identity_else_key_id() -> None:
    @dataclass(frozen=True)
    class Keyless(Signer):
        identity: str | None = None

    assert signer_text(None) == "-"
    assert signer_text(Signer(KEY, "release")) == f"release (key {KEY[:16]})"
    assert signer_text(Signer(KEY)) == f"key {KEY[:16]}"
    who = "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main"
    assert signer_text(Keyless(KEY, "ci", identity=who)) == f"ci ({who})"
    result = Result("ghcr.io/a/b", None, Status.TRUSTED, "ok", signer=Keyless(KEY, identity=who))
    assert who in "".join(Page(render([result], OutputFormat.HTML)).text)


def test_long_references_break_only_after_separators() -> None:
    image = "registry.example.com/" + "/".join(["very-long-team-name"] * 6) + ":v1.2.3"
    out = render([replace(make_results()[2], image=image)], OutputFormat.HTML)
    cell = re.search(r'<td class="image">(.*?)</td>', out, re.S)
    assert cell is not None
    pieces = cell.group(1).strip().split("<wbr>")
    assert "".join(pieces) == image and len(pieces) > 6
    assert all(p.endswith(("/", ":", ".", "@")) for p in pieces[:-1])
    assert pieces.count("very-long-team-name/") == 5  # a name is never split


def test_report_dir_has_report_html(tmp_path: Path) -> None:
    written = write_all(make_results(), tmp_path, _ctx())
    assert written["html"] == tmp_path / "report.html"
    assert written["html"].read_text("utf-8") == render(make_results(), OutputFormat.HTML, _ctx())
    assert HOSTILE_IMAGE not in written["html"].read_text("utf-8")
