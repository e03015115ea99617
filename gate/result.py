"""The verification result: one status per image, and what the exit code is.

Every front end (CLI, Action, GitLab template, watchdog) and every report
format renders these values; nothing else is decided after they are made.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """The one status each image gets (DESIGN.md, "Verification result")."""

    TRUSTED = "TRUSTED"
    UNTRUSTED = "UNTRUSTED"
    UNKNOWN = "UNKNOWN"
    UNSUPPORTED = "UNSUPPORTED"
    ERROR = "ERROR"


class FailOn(StrEnum):
    """What makes the gate fail (``--fail-on``); each level includes the ones before it."""

    UNTRUSTED = "untrusted"
    UNKNOWN = "unknown"
    UNSUPPORTED = "unsupported"
    NEVER = "never"


@dataclass(frozen=True)
class Signer:
    """Who signed: the key ID (hex SHA-256 of the DER public key) and the policy's name for it.

    A keyless signer has no long-lived key: its certificate's identity and OIDC
    issuer say who it is.
    """

    key_id: str | None
    name: str | None = None
    identity: str | None = None
    issuer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key_id": self.key_id, "name": self.name}
        if self.identity is not None:
            data["identity"], data["issuer"] = self.identity, self.issuer
        return data


@dataclass(frozen=True, order=True)
class Location:
    """Where a reference was found in an input file."""

    file: str
    line: int


@dataclass(frozen=True)
class Result:
    """What Sealgate concluded about one image reference."""

    image: str
    """The reference as the user wrote it (normalised for registry images)."""
    digest: str | None
    """The digest that was checked, or None when it could not be learned."""
    status: Status
    reason: str
    """One sentence a person can act on."""
    signer: Signer | None = None
    signed_at: datetime | None = None
    level: int | None = None
    """The policy's rank of the signer."""
    size: int | None = None
    """Manifest size in bytes (registry) or image size (local engine)."""
    attestations: tuple[str, ...] = ()
    """Predicate types of verified attestations."""
    sources: tuple[Location, ...] = ()
    warnings: tuple[str, ...] = ()
    """Things a person should know that did not change the status."""
    unsupported_denied: bool = False
    """The policy says UNSUPPORTED fails (``unsupported: deny``); the default only warns."""
    children: tuple[Result, ...] = ()
    """Per-platform results when the image is an index."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Source-specific facts, e.g. ``{"image_id": …, "repo_digests": […]}`` for docker:// images."""

    @property
    def passed(self) -> bool:
        return self.status is Status.TRUSTED

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of DESIGN.md's command-line contract (plus optional extras)."""
        data: dict[str, Any] = {
            "image": self.image,
            "digest": self.digest,
            "status": self.status.value,
            "reason": self.reason,
            "signer": self.signer.to_dict() if self.signer else None,
            "signed_at": _iso(self.signed_at),
            "level": self.level,
            "size": self.size,
            "attestations": list(self.attestations),
            "sources": [{"file": s.file, "line": s.line} for s in self.sources],
        }
        if self.warnings:
            data["warnings"] = list(self.warnings)
        if self.children:
            data["platforms"] = [child.to_dict() for child in self.children]
        if self.extra:
            data.update(self.extra)
        return data


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def fails(
    status: Status, fail_on: FailOn = FailOn.UNKNOWN, *, unsupported_denied: bool = False
) -> bool:
    """Whether one status fails the run.

    ERROR always fails, whatever ``fail_on`` says: "could not tell" never passes
    (fail closed). UNTRUSTED fails unless NEVER; UNKNOWN fails at UNKNOWN and
    UNSUPPORTED; UNSUPPORTED fails when the policy denies it or ``fail_on`` is
    UNSUPPORTED.
    """
    if status is Status.ERROR:
        return True
    if fail_on is FailOn.NEVER or status is Status.TRUSTED:
        return False
    if status is Status.UNTRUSTED:
        return True
    if status is Status.UNKNOWN:
        return fail_on in (FailOn.UNKNOWN, FailOn.UNSUPPORTED)
    return unsupported_denied or fail_on is FailOn.UNSUPPORTED


def exit_code(results: Iterable[Result], fail_on: FailOn = FailOn.UNKNOWN) -> int:
    """0 all pass; 1 a policy failure; 3 could not verify (ERROR wins over 1)."""
    code = 0
    for result in results:
        if not fails(result.status, fail_on, unsupported_denied=result.unsupported_denied):
            continue
        if result.status is Status.ERROR:
            return 3
        code = 1
    return code
