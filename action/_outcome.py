"""What one action run concluded: shared by the commands and the entrypoint."""

from __future__ import annotations

from dataclasses import dataclass, field

from gate.notify._status import State


@dataclass
class Outcome:
    """The verdict, for the step summary, the outputs and the commit status."""

    state: State
    description: str
    """One line; each status API clips it to its own limit."""
    exit_code: int
    markdown: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    target_url: str | None = None
    """Where the commit status links (keyless signing: the Rekor entry); else the run."""
