"""``junit.xml``: one testcase per image reference, so GitLab's MR widget and CI show the gate.

The shape follows what CI consumers read (GitLab's ``artifacts:reports:junit``,
Jenkins, junitparser): ``<testsuites>`` holding one ``<testsuite name="sealgate">``
with tests/failures/errors/skipped counts. A result that fails the run is a
``<failure>`` (``<error>`` for ERROR: we could not tell); a non-trusted result
that does not fail the run (UNSUPPORTED by default, or anything under
``--fail-on never``) is ``<skipped>`` with its reason, so it is still visible.
Built with ElementTree so every attribute and text node is escaped for us.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC

from gate.report import (
    ReportContext,
    format_time,
    is_failing,
    printable,
    signer_detail,
    signer_label,
)
from gate.result import Result, Status

SUITE_NAME = "sealgate"
DEFAULT_CLASSNAME = "images"
"""The classname of references given on the command line (no source file)."""


def render_junit(results: Sequence[Result], ctx: ReportContext) -> str:
    """The XML document, UTF-8, with an XML declaration."""
    counts = {"tests": len(results), "failures": 0, "errors": 0, "skipped": 0}
    suite = ET.Element("testsuite", name=SUITE_NAME)
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("tool", f"{ctx.title} {ctx.tool_version}"),
        ("command", ctx.command),
        ("policy", ctx.policy),
        ("fail-on", ctx.fail_on.value),
        ("run-url", ctx.run_url),
    ):
        if value:
            ET.SubElement(properties, "property", name=name, value=_text(value))
    for result in results:
        kind = _add_case(suite, result, ctx)
        if kind:
            counts[kind] += 1

    attributes = {key: str(value) for key, value in counts.items()}
    suite.attrib.update({**attributes, "time": "0"})
    if ctx.started is not None:
        # NOTE: the JUnit XSD's timestamp has no zone designator; we write UTC.
        started = ctx.started.astimezone(UTC) if ctx.started.tzinfo else ctx.started
        suite.set("timestamp", started.strftime("%Y-%m-%dT%H:%M:%S"))
    root = ET.Element("testsuites", {"name": _text(ctx.title), **attributes, "time": "0"})
    root.append(suite)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def _add_case(suite: ET.Element, result: Result, ctx: ReportContext) -> str | None:
    """Append one testcase; return the counter it adds to (failures/errors/skipped) or None."""
    classname = result.sources[0].file if result.sources else DEFAULT_CLASSNAME
    case = ET.SubElement(
        suite, "testcase", classname=_text(classname), name=_text(result.image), time="0"
    )
    if result.sources:
        case.set("file", _text(result.sources[0].file))
        case.set("line", str(result.sources[0].line))
    kind: str | None = None
    if is_failing(result, ctx):
        kind = "errors" if result.status is Status.ERROR else "failures"
        tag = "error" if result.status is Status.ERROR else "failure"
        outcome = ET.SubElement(case, tag, message=_text(result.reason), type=result.status.value)
        outcome.text = _details(result)
    elif result.status is not Status.TRUSTED:
        kind = "skipped"
        message = f"{result.status.value} (does not fail the run): {result.reason}"
        ET.SubElement(case, "skipped", message=_text(message)).text = _details(result)
    if kind is None:  # passed: the facts still belong in the log (who signed, when)
        ET.SubElement(case, "system-out").text = _details(result)
    return kind


def _details(result: Result) -> str:
    """Every field of the result as ``key: value`` lines, for the failure body and logs."""
    lines = [
        f"image: {result.image}",
        f"status: {result.status.value}",
        f"reason: {result.reason}",
        f"digest: {result.digest or '-'}",
        f"signer: {signer_label(result.signer)}"
        + (f" ({signer_detail(result.signer)})" if result.signer else ""),
        f"signed at: {format_time(result.signed_at)}",
        f"level: {'-' if result.level is None else result.level}",
    ]
    if result.attestations:
        lines.append("attestations: " + ", ".join(result.attestations))
    lines += [f"found at: {s.file}:{s.line}" for s in result.sources]
    lines += [f"warning: {w}" for w in result.warnings]
    for child in result.children:
        platform = child.extra.get("platform", child.image)
        digest = child.digest or "-"
        lines.append(f"platform {platform}: {child.status.value} {digest}: {child.reason}")
    return "\n".join(_text(line) for line in lines)


def _text(value: str) -> str:
    """Text legal in XML 1.0: control characters (and bidi overrides) shown as escapes."""
    return printable(str(value))
