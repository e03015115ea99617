"""``verify`` and ``gate`` as one use case, called by the CLI and by the Action alike.

Both front ends used to verify and then write reports and the verification
summary (VSA) each their own way, and drifted. Here it is done once: verify,
then (with a report directory) every report format and the VSA, then the
exit code. The front ends only turn a ``Checked`` into what they show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from gate import commands
from gate.errors import UsageError
from gate.policy import Policy
from gate.report import ReportContext, prepare_dir
from gate.result import FailOn, Result, exit_code

if TYPE_CHECKING:
    from gate.attest import Summary
    from gate.keys import PrivateKey
    from gate.manifests import Finding
    from gate.manifests import Options as ManifestOptions
    from gate.sigstore import KeylessSigner


@dataclass(frozen=True)
class Reporting:
    """Where and how a run's outcome is written."""

    directory: Path | None = None
    """Every report format and the VSA go here; nothing is written without it."""
    signing_key: PrivateKey | KeylessSigner | None = None
    """Signs the VSA (``vsa.intoto.jsonl``), with a key or keylessly; else it is unsigned."""
    fail_on: FailOn = FailOn.UNKNOWN
    context: ReportContext = field(default_factory=ReportContext)
    env: Mapping[str, str] | None = None
    """The CI environment the VSA describes; the process's own when None."""


@dataclass(frozen=True)
class Checked:
    """What one verify or gate run found and wrote."""

    results: list[Result]
    skipped: list[Finding]
    """References that could not be resolved (variables, build arguments)."""
    report: ReportContext
    written: dict[str, Path] = field(default_factory=dict)
    summary: Summary | None = None
    fail_on: FailOn = FailOn.UNKNOWN

    @property
    def exit_code(self) -> int:
        return exit_code(self.results, self.fail_on)


class Checker:
    """Verifies images or deploy manifests against one policy, then reports."""

    def __init__(self, ctx: commands.Context, pol: Policy, reporting: Reporting) -> None:
        if reporting.signing_key is not None and reporting.directory is None:
            raise UsageError(
                "the verification summary is signed into the report directory; "
                "give --report-dir too"
            )
        if reporting.directory is not None:
            prepare_dir(reporting.directory)
        self.ctx, self.policy, self.reporting = ctx, pol, reporting

    def verify(self, images: Sequence[str], *, attestations: Sequence[str] = ()) -> Checked:
        results = commands.verify(self.ctx, images, self.policy, attestations=attestations)
        return self._report("verify", results, [], paths=())

    def gate(
        self,
        paths: Sequence[str],
        *,
        stdin: TextIO | None = None,
        allow_empty: bool = False,
        options: ManifestOptions | None = None,
    ) -> Checked:
        run = commands.gate(
            self.ctx, paths, self.policy, stdin=stdin, allow_empty=allow_empty, options=options
        )
        return self._report("gate", run.results, run.skipped, paths=paths)

    def _report(
        self, command: str, results: list[Result], skipped: list[Finding], *, paths: Sequence[str]
    ) -> Checked:
        reporting = self.reporting
        context = replace(reporting.context, command=command, fail_on=reporting.fail_on)
        checked = Checked(results, skipped, context, fail_on=reporting.fail_on)
        if reporting.directory is None or not results:
            return checked
        from gate import attest
        from gate.report import write_all

        written = write_all(results, reporting.directory, context)
        summary = attest.verification_report(
            results,
            self.policy,
            reporting.directory,
            key=reporting.signing_key,
            fail_on=reporting.fail_on,
            env=reporting.env,
            paths=paths,
        )
        return replace(checked, written=written, summary=summary)
