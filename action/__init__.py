"""Sealgate's GitHub Action (and GitLab job) entrypoint: ``SEALGATE_*`` → library → runner.

An adapter, not a second program (STYLE.md #12): it reads the inputs, calls the
same ``gate.commands`` functions as the CLI in-process, then writes the step
summary, the outputs and a commit status. Bad input of any kind ends in one
``::error::`` line, an ``error`` commit status when a token was given, and a
non-zero exit; the decision of a run that did happen is its exit code
(0 pass, 1 policy failure, 2 bad input, 3 could not verify).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from action import _env
from action._outcome import Outcome
from action._workflow import GitHubRunner, PlainRunner, Scrubber
from gate.errors import SealgateError, UsageError
from gate.notify._status import CommitStatus, CommitStatusError, State, StatusForbiddenError
from gate.report import counted

__all__ = ["main"]

INTERNAL_ERROR_EXIT = 3
DOTENV_FILE = "sealgate.env"


OUTPUTS = (
    "result",
    "digests",
    "report-dir",
    "provenance-path",
    "vsa-path",
    "signer",
    "rekor-entries",
)
"""The step outputs action.yml declares, in the order they are written."""


def main(env: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    """Run one action step; returns the exit code (never raises for a known failure)."""
    env = dict(os.environ if env is None else env)
    out = out or sys.stdout
    scrub = Scrubber(_env.secrets(env))
    runner = _runner(env, out, scrub)
    for secret in _env.secrets(env):
        runner.mask(secret)
    _route_logging(runner)
    command = _env.raw(env, "command").lower()
    context = _env.raw(env, "status-context") or (
        f"sealgate/{command}" if command in _env.COMMANDS else "sealgate"
    )
    report_dir = _env.raw(env, "report-dir") or _env.DEFAULT_REPORT_DIR
    event: dict[str, Any] = {}
    try:
        if env.get("GITHUB_ACTIONS") == "true":
            from gate.notify._github import read_event

            event = read_event(env.get("GITHUB_EVENT_PATH"))
        inputs = _env.read(env)
        if inputs.summary:
            runner.check_summary()
        from action._run import run  # imports the library: inside the error handling

        outcome = run(inputs, env, runner)
    except SealgateError as e:
        runner.error(e.message + (f" (hint: {e.hint})" if e.hint else ""))
        outcome = _failed(command, e.message, e.exit_code)
    except Exception as e:  # a bug: say what kind, never a traceback that may hold values
        runner.error(f"internal error ({type(e).__name__}): {e}; please report it")
        outcome = _failed(command, f"internal error ({type(e).__name__})", INTERNAL_ERROR_EXIT)
    outcome.outputs.setdefault("report-dir", report_dir)
    outcome.outputs["result"] = outcome.state.value
    notes = _post_status(
        env,
        event,
        runner,
        CommitStatus(outcome.state, outcome.description, context, outcome.target_url),
    )
    return _finish(env, runner, outcome, notes, report_dir)


def _finish(
    env: Mapping[str, str], runner: PlainRunner, outcome: Outcome, notes: list[str], report_dir: str
) -> int:
    """Outputs, then the summary; a failure to write either fails the step."""
    code = outcome.exit_code
    suppressed_errors, suppressed_warnings = runner.suppressed
    if suppressed_errors or suppressed_warnings:
        notes.append(
            f"{counted(suppressed_errors, 'more error', 'more errors')} and "
            f"{counted(suppressed_warnings, 'more warning', 'more warnings')} than "
            "GitHub shows as annotations; every finding is in the reports"
        )
        runner.info(f"note: {notes[-1]}")
    try:
        for name in OUTPUTS:
            if name in outcome.outputs:
                runner.set_output(name, outcome.outputs[name])
        if not isinstance(runner, GitHubRunner):
            command = _env.raw(env, "command").lower()
            label = command.upper().replace("-", "_")
            prefix = f"SEALGATE_{label}_" if command in _env.COMMANDS else "SEALGATE_"
            runner.write_dotenv(Path(report_dir) / DOTENV_FILE, prefix)
        summary_wanted = _env.raw(env, "summary").lower() not in ("false", "no", "0", "off")
        if summary_wanted and outcome.markdown:
            extra = "".join(f"\n> [!WARNING]\n> {_quote(note)}\n" for note in notes)
            runner.write_summary(outcome.markdown + extra)
    except (SealgateError, OSError) as e:
        message = e.message if isinstance(e, SealgateError) else f"cannot write outputs: {e}"
        runner.error(message)
        return code or UsageError.exit_code
    return code


def _failed(command: str, message: str, code: int) -> Outcome:
    label = command if command in _env.COMMANDS else "action"
    description = f"⚠️ sealgate {label} could not run: {message}"
    markdown = f"### ⚠️ Sealgate {label} could not run\n\n{_quote(message)}\n"
    return Outcome(State.ERROR, description, code, markdown)


def _quote(text: str) -> str:
    from gate.report._markdown import md

    return md(text)


def _runner(env: Mapping[str, str], out: TextIO, scrub: Scrubber) -> PlainRunner:
    if env.get("GITHUB_ACTIONS") == "true":
        return GitHubRunner(
            out,
            scrub,
            output_file=env.get("GITHUB_OUTPUT") or None,
            summary_file=env.get("GITHUB_STEP_SUMMARY") or None,
        )
    return PlainRunner(out, scrub)


def _post_status(
    env: Mapping[str, str], event: Mapping[str, Any], runner: PlainRunner, status: CommitStatus
) -> list[str]:
    """Post the commit status when a token was given; a refusal is a warning, not a failure.

    Returns notes for the summary (e.g. missing ``statuses: write``).
    """
    github_token = _env.raw(env, "github-token")
    gitlab_token = _env.raw(env, "gitlab-token")
    try:
        if github_token and env.get("GITHUB_ACTIONS") == "true":
            from gate.notify import _github

            target = _github.target_from_environment(env, dict(event))
            _github.post_status(target, github_token, status)
            runner.info(f"commit status {status.context}={status.state.value} on {target.sha}")
        elif gitlab_token and (env.get("GITLAB_CI") == "true" or env.get("CI_API_V4_URL")):
            from gate.notify import _gitlab

            gl_target = _gitlab.target_from_environment(env)
            _gitlab.post_status(gl_target, gitlab_token, status)
            runner.info(f"commit status {status.context}={status.state.value} on {gl_target.sha}")
    except StatusForbiddenError as e:
        note = f"{e.message}; {e.hint}" if e.hint else e.message
        runner.warning(note, title="Sealgate: commit status not posted")
        return [note]
    except (CommitStatusError, UsageError) as e:
        runner.warning(e.message, title="Sealgate: commit status not posted")
        return [e.message]
    return []


class _RunnerHandler(logging.Handler):
    """Library log records become runner lines (scrubbed; warnings as warnings)."""

    def __init__(self, runner: PlainRunner) -> None:
        super().__init__(logging.WARNING)
        self.runner = runner

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.runner.info(f"warning: {message}")
        else:
            self.runner.info(message)


def _route_logging(runner: PlainRunner) -> None:
    log = logging.getLogger("sealgate")
    for handler in list(log.handlers):
        if isinstance(handler, _RunnerHandler):
            log.removeHandler(handler)
    log.addHandler(_RunnerHandler(runner))
    log.propagate = False
