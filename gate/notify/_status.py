"""Commit statuses: one vocabulary for GitHub and GitLab, and the error they share.

A status is what a reviewer sees next to a commit; posting one is a courtesy,
so the callers turn a refused post (missing permission) into a warning and keep
the gate's decision as the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gate.errors import UnavailableError


class State(StrEnum):
    """GitHub's status states (FORMATS.md §8.1); GitLab's are mapped in ``_gitlab``."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"


@dataclass(frozen=True)
class CommitStatus:
    """What to post on a commit; each API clips ``description`` to its own limit."""

    state: State
    description: str
    context: str
    target_url: str | None = None


class CommitStatusError(UnavailableError):
    """A commit status could not be posted (network, bad reply, validation failure)."""


class StatusForbiddenError(CommitStatusError):
    """The token may not post statuses here (401/403/404): callers warn and carry on."""


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
