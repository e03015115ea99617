"""``sealgate policy init --from-github OWNER/REPO[/WORKFLOW]``: trust one workflow's signatures.

What a GitHub Actions keyless certificate says is fixed by Fulcio: the SAN
is ``https://github.com/OWNER/REPO/.github/workflows/FILE@REF`` (the
``job_workflow_ref`` claim) and the issuer is
``https://token.actions.githubusercontent.com``. Writing that by hand means
reading Fulcio's OID table; this writes it, with anchored regexes (issue 11)
when a workflow or ref is left open.

NOTE: fulcio docs/oid-info.md and config/identity.go (GitHub workflow SAN);
the policy shape is issue 11's ``signers[].keyless``.
"""

from __future__ import annotations

import re

from gate.errors import UsageError

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def from_github(spec: str, ref: str = "refs/heads/main", *, root: str | None = None) -> str:
    """The policy YAML text; ``ref`` may end in ``*`` (e.g. ``refs/tags/v*``)."""
    parts = spec.strip("/").split("/")
    if len(parts) not in (2, 3) or not all(_NAME.match(p) for p in parts):
        raise UsageError(
            f"--from-github wants OWNER/REPO or OWNER/REPO/WORKFLOW (a file in "
            f".github/workflows), not '{spec}'"
        )
    owner, repo = parts[0], parts[1]
    workflow = parts[2] if len(parts) == 3 else None
    if not ref.startswith("refs/") or "*" in ref[:-1] or not re.fullmatch(r"[\w./*-]+", ref):
        raise UsageError(
            f"--ref wants a full git ref such as refs/heads/main or refs/tags/v*, not '{ref}'"
        )
    base = f"https://github.com/{owner}/{repo}/.github/workflows/"
    if workflow and not ref.endswith("*"):
        subject = f"      subject: {base}{workflow}@{ref}"
    else:
        file_re = re.escape(workflow) if workflow else r"[^/@]+"
        ref_re = re.escape(ref[:-1]) + r"[^@]*" if ref.endswith("*") else re.escape(ref)
        pattern = "^" + re.escape(base) + file_re + "@" + ref_re + "$"
        subject = f"      subject_regex: '{pattern}'"
    name = f"{owner}-{repo}" + (f"-{workflow.rsplit('.', 1)[0]}" if workflow else "")
    lines = [
        f"# Written by `sealgate policy init --from-github {spec}`: trusts images signed",
        "# keylessly by that GitHub Actions workflow (sign with `sealgate sign --keyless`",
        "# or the Sealgate Action without a key, with `permissions: id-token: write`).",
        "version: 1",
    ]
    if root:
        lines += ["trust:", f"  roots: [{root}]"]
    lines += [
        "signers:",
        f"  - name: {name}",
        "    keyless:",
        f"      issuer: {GITHUB_ISSUER}",
        subject,
        "      claims:",
        f"        source_repository_uri: https://github.com/{owner}/{repo}",
        "    level: 2",
        "rules:",
        '  - match: "**"',
        f"    require: {{signers: [{name}]}}",
        "    tlog: required",
        "    pinned: required",
        "default: deny",
    ]
    return "\n".join(lines) + "\n"
