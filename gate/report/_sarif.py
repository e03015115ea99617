"""``sarif.json``: SARIF 2.1.0 for GitHub code scanning, one result per bad reference per location.

NOTE: OASIS SARIF 2.1.0 (errata 01) and GitHub's "SARIF support for code
scanning": GitHub needs ``version``, ``runs[].tool.driver.name``,
``results[].message.text``, a ``ruleId``, and for display a location with
``physicalLocation.artifactLocation.uri`` (relative to the checkout, via
``uriBaseId``) and ``region.startLine``. It shows only a result's first
location, so a reference found in three files is three results. Rule
``properties.security-severity`` (0.0-10.0) sets the alert's severity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from gate.report import ReportContext, is_failing, printable
from gate.result import Location, Result, Status

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"
FINGERPRINT_KEY = "sealgate/v1"
"""partialFingerprints key: a hash of rule, image and file, so moving a line keeps the alert."""


def _rule(
    status: str, level: str, severity: str | None, short: str, full: str, help_text: str
) -> dict[str, Any]:
    properties: dict[str, Any] = {"tags": ["security", "supply-chain", "containers"]}
    if severity is not None:
        properties["security-severity"] = severity
    return {
        "id": f"sealgate/{status.lower()}",
        "name": status.title(),
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "help": {"text": help_text, "markdown": help_text},
        "defaultConfiguration": {"level": level},
        "properties": properties,
    }


RULES: Mapping[str, dict[str, Any]] = {
    Status.UNTRUSTED: _rule(
        "UNTRUSTED",
        "error",
        "9.0",
        "Untrusted container image",
        "A signature is invalid or tampered, the signed digest differs, the digest was "
        "revoked, or a policy rule is broken (for example the reference is not pinned).",
        "Do not deploy this image. Rebuild and re-sign it with a trusted key, pin the "
        "reference by digest (`sealgate pin`), or fix the policy rule named in the message.",
    ),
    Status.UNKNOWN: _rule(
        "UNKNOWN",
        "error",
        "7.5",
        "Container image without a trusted signature",
        "No signature by a signer that the policy trusts for this image was found.",
        "Sign the image after it is built (`sealgate sign IMAGE --key KEY`) with a key the "
        "policy lists for it, or use an image that is signed.",
    ),
    Status.UNSUPPORTED: _rule(
        "UNSUPPORTED",
        "warning",
        "4.0",
        "Deprecated container image",
        "The signer marked this image as deprecated (`sealgate unsupport`).",
        "Move to a supported image; the policy decides whether deprecated images fail "
        "(`unsupported: deny`).",
    ),
    Status.ERROR: _rule(
        "ERROR",
        "error",
        None,
        "Container image could not be verified",
        "The registry, Docker engine or signature store could not be read, so the image "
        "could not be checked; the gate fails closed.",
        "Check that the registry or engine is reachable and the credentials are right, "
        "then run the gate again.",
    ),
    "WARNING": _rule(
        "WARNING",
        "note",
        None,
        "Container image warning",
        "Something a person should know that did not change the image's status "
        "(for example a reference that is not pinned under `pinned: warn`).",
        "Read the message; `sealgate pin` pins references by digest.",
    ),
}
_RULE_INDEX = {key: index for index, key in enumerate(RULES)}


def render_sarif(results: Sequence[Result], ctx: ReportContext) -> str:
    """The SARIF log as indented JSON."""
    findings: list[dict[str, Any]] = []
    for result in results:
        if result.status is not Status.TRUSTED:
            level = "error" if is_failing(result, ctx) else "warning"
            message = f"{result.image}: {result.reason}"
            findings += _findings(result, result.status, level, message, ctx)
        for warning in result.warnings:
            findings += _findings(result, "WARNING", "note", f"{result.image}: {warning}", ctx)
    driver: dict[str, Any] = {
        "name": ctx.title or "Sealgate",
        "version": ctx.tool_version,
        "semanticVersion": ctx.tool_version,
        "rules": list(RULES.values()),
    }
    uri = _information_uri()
    if uri:
        driver["informationUri"] = uri
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "originalUriBaseIds": {SRCROOT: {"description": {"text": "The repository root."}}},
        "results": findings,
        "columnKind": "unicodeCodePoints",
    }
    invocation: dict[str, Any] = {"executionSuccessful": True}
    if ctx.started is not None:
        invocation["startTimeUtc"] = ctx.started.isoformat().replace("+00:00", "Z")
    run["invocations"] = [invocation]
    log = {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def _findings(
    result: Result, rule_key: str, level: str, message: str, ctx: ReportContext
) -> list[dict[str, Any]]:
    """One SARIF result per source location (or the policy file, or none)."""
    places: list[Location | None] = [s for s in result.sources if _physical(s) is not None]
    if not places and ctx.policy:
        places = [Location(ctx.policy, 1)]
    if not places:
        places = [None]  # keep the finding; GitHub will not place it on a file
    rule = RULES[rule_key]
    out = []
    seen: dict[str, int] = {}
    for place in places:
        # The same reference twice in one file must not share a fingerprint.
        file = place.file if place else ""
        repeat = seen[file] = seen.get(file, -1) + 1
        finding: dict[str, Any] = {
            "ruleId": rule["id"],
            "ruleIndex": _RULE_INDEX[rule_key],
            "level": level,
            "message": {"text": printable(message)},
            "partialFingerprints": {
                FINGERPRINT_KEY: _fingerprint(rule["id"], result.image, file, message, repeat)
            },
            "properties": {
                "image": result.image,
                "digest": result.digest,
                "status": result.status.value,
            },
        }
        physical = _physical(place) if place else None
        if physical:
            finding["locations"] = [{"physicalLocation": physical}]
        out.append(finding)
    return out


def _physical(place: Location) -> dict[str, Any] | None:
    """A relative path under %SRCROOT%, or a file:// URI for an absolute one; None for stdin."""
    name = place.file.replace("\\", "/")
    if name in ("", "-") or name.startswith("<"):
        return None
    path = PurePosixPath(name)
    if path.is_absolute():
        artifact: dict[str, Any] = {"uri": "file://" + quote(str(path))}
    else:
        parts = [p for p in path.parts if p != "."]
        artifact = {"uri": quote("/".join(parts)), "uriBaseId": SRCROOT}
    return {"artifactLocation": artifact, "region": {"startLine": max(1, place.line)}}


def _fingerprint(rule_id: str, image: str, file: str, message: str, repeat: int) -> str:
    """Stable across runs and line moves: rule, image, file (and the warning text for notes)."""
    parts = [rule_id, image, file]
    if rule_id == RULES["WARNING"]["id"]:
        parts.append(message)
    if repeat:
        parts.append(str(repeat))
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:32]


def _information_uri() -> str | None:
    """The project's home page from the installed package metadata, when it names one."""
    from importlib import metadata

    try:
        meta = metadata.metadata("sealgate")
    except metadata.PackageNotFoundError:
        return None
    urls = [str(e).partition(",")[2].strip() for e in meta.get_all("Project-URL") or []]
    urls += [str(h).strip() for h in meta.get_all("Home-page") or []]
    return next((url for url in urls if url.startswith("https://")), None)
