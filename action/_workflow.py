"""Talking to the CI runner: workflow commands, outputs and the step summary.

``GitHubRunner`` speaks GitHub's workflow commands and environment files
(FORMATS.md §8.3 and §8.4); ``PlainRunner`` serves GitLab and local shells with
plain log lines and a dotenv file of outputs (``artifacts:reports:dotenv``).
Everything written passes through a ``Scrubber``, so a secret that reaches a
message by accident still never reaches the log, the summary or an output.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from gate.errors import UsageError

MAX_ANNOTATIONS = 10
"""GitHub shows at most 10 error and 10 warning annotations per step (FORMATS.md §8.2)."""
MASK = "***"


class Scrubber:
    """Replaces every known secret (and each line of a multi-line one) with ``***``."""

    def __init__(self, secrets: Sequence[str]) -> None:
        pieces: set[str] = set()
        for secret in secrets:
            pieces.add(secret)
            for line in secret.splitlines():
                line = line.strip()
                if line and not line.startswith("-----"):  # PEM armour is not secret
                    pieces.add(line)
        # Longest first, so a secret containing another is replaced whole.
        self._pieces = sorted(pieces, key=len, reverse=True)

    @property
    def pieces(self) -> list[str]:
        return list(self._pieces)

    def __call__(self, text: str) -> str:
        for piece in self._pieces:
            if piece in text:
                text = text.replace(piece, MASK)
        return text


def escape_data(text: str) -> str:
    """A workflow command's message (actions/toolkit ``command.ts`` escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: also ``:`` and ``,`` (toolkit escapeProperty)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


class PlainRunner:
    """GitLab CI and local shells: plain lines; outputs collected for a dotenv file."""

    def __init__(self, out: TextIO, scrub: Scrubber) -> None:
        self.out = out
        self.scrub = scrub
        self.outputs: dict[str, str] = {}
        self._errors = 0
        self._warnings = 0

    def mask(self, secret: str) -> None:
        """Nothing to tell a plain log; scrubbing still applies."""

    def info(self, text: str) -> None:
        # One line per call: attacker-controlled text must not start a line of its own.
        self._line(" ".join(self.scrub(text).splitlines()))

    def error(
        self, message: str, *, file: str | None = None, line: int | None = None, title: str = ""
    ) -> bool:
        """Report an error; False once the per-step annotation budget is spent."""
        self._errors += 1
        if self._errors > MAX_ANNOTATIONS:
            return False
        self._annotate("error", message, file, line, title)
        return True

    def warning(
        self, message: str, *, file: str | None = None, line: int | None = None, title: str = ""
    ) -> bool:
        self._warnings += 1
        if self._warnings > MAX_ANNOTATIONS:
            return False
        self._annotate("warning", message, file, line, title)
        return True

    @property
    def suppressed(self) -> tuple[int, int]:
        """(errors, warnings) left out over the budget."""
        return max(0, self._errors - MAX_ANNOTATIONS), max(0, self._warnings - MAX_ANNOTATIONS)

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        self.info(title)
        yield

    def set_output(self, name: str, value: str) -> None:
        self.outputs[name] = self.scrub(value)

    def check_summary(self) -> None:
        """Plain runs have no step summary; the markdown report is a file instead."""

    def write_summary(self, markdown: str) -> None:
        """Nothing: GitLab shows reports through artifacts, not a summary page."""

    def write_dotenv(self, path: Path, prefix: str = "SEALGATE_") -> None:
        """Outputs as ``<prefix><NAME>=value`` lines, for ``artifacts:reports:dotenv``.

        The prefix names the command (``SEALGATE_SIGN_``): dotenv variables outrank a later
        job's own ``variables:``, so they must never share a name with an input.
        """
        lines = []
        for name, value in self.outputs.items():
            key = prefix + name.upper().replace("-", "_")
            lines.append(f"{key}={' '.join(value.splitlines())}\n")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines), encoding="utf-8")

    def _annotate(
        self, kind: str, message: str, file: str | None, line: int | None, title: str
    ) -> None:
        where = f"{file}:{line}: " if file and line else f"{file}: " if file else ""
        prefix = f"{title}: " if title else ""
        self.info(f"{kind}: {where}{prefix}{message}")

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


class GitHubRunner(PlainRunner):
    """GitHub Actions: workflow commands on stdout, outputs and summary in environment files."""

    def __init__(
        self,
        out: TextIO,
        scrub: Scrubber,
        *,
        output_file: str | None = None,
        summary_file: str | None = None,
    ) -> None:
        super().__init__(out, scrub)
        self.output_file = output_file
        self.summary_file = summary_file

    def mask(self, secret: str) -> None:
        """``::add-mask::`` for the value and each of its lines; the runner hides them after."""
        for piece in Scrubber([secret]).pieces:
            self._line(f"::add-mask::{escape_data(piece)}")

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        self._line(f"::group::{escape_data(self.scrub(title))}")
        try:
            yield
        finally:
            self._line("::endgroup::")

    def set_output(self, name: str, value: str) -> None:
        """Append ``name<<DELIM`` … ``DELIM`` with a random delimiter (toolkit file-command.ts)."""
        value = self.scrub(value)
        super().set_output(name, value)
        if not self.output_file:
            return
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
        if delimiter in name or delimiter in value:  # as the toolkit does; never in practice
            raise UsageError(f"output {name} contains its own delimiter")
        _append(self.output_file, f"{name}<<{delimiter}\n{value}\n{delimiter}\n", "GITHUB_OUTPUT")

    def check_summary(self) -> None:
        """Fail before doing anything when the summary file cannot be appended to."""
        if self.summary_file:
            try:
                _append(self.summary_file, "", "GITHUB_STEP_SUMMARY")
            except UsageError:
                self.summary_file = None  # reported once, not again at the end
                raise

    def write_summary(self, markdown: str) -> None:
        if self.summary_file:
            text = self.scrub(markdown)
            _append(
                self.summary_file,
                text if text.endswith("\n") else text + "\n",
                "GITHUB_STEP_SUMMARY",
            )

    def _annotate(
        self, kind: str, message: str, file: str | None, line: int | None, title: str
    ) -> None:
        properties = []
        if file:
            properties.append(f"file={escape_property(self.scrub(file))}")
            if line:
                properties.append(f"line={line}")
        if title:
            properties.append(f"title={escape_property(self.scrub(title))}")
        head = f"::{kind} {','.join(properties)}::" if properties else f"::{kind}::"
        self._line(head + escape_data(self.scrub(message)))


def _append(path: str, text: str, what: str) -> None:
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as e:
        raise UsageError(f"cannot write {what} ({path}): {e.strerror or e}") from e
