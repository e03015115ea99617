"""The event every sink receives, the sink seam, and its one error.

A sink's public ``send()`` is the only way in, and it never lets a library
error out: ``requests``, socket and encoding failures become ``SinkError``
with the sink's redacted name and no secret in the text (python-tuf's
``fetch``/``_fetch`` split, STYLE.md #3).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from gate.errors import UnavailableError
from gate.result import Status, fails

REDACTED = "***"


class SinkError(UnavailableError):
    """A sink refused or could not be reached; the events were not (all) delivered.

    Exit code 3, like every "could not tell" error.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        delivered: int = 0,
        status: int | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(message, hint=hint)
        self.delivered = delivered
        """How many of the events passed to ``send()`` got through, in order, before it failed."""
        self.status = status
        """The HTTP status the sink answered with, if it answered."""
        self.permanent = permanent
        """A 4xx that retrying will not cure (wrong database, bad token): a configuration error."""


@dataclass(frozen=True)
class Event:
    """One verification outcome about one container (or image), as every sink sees it."""

    id: str
    """Stable across restarts (see ``event_id``): sinks and the spool dedupe by it."""
    time: datetime
    """When the outcome was reached; timezone-aware (naive values are taken as UTC)."""
    host: str
    container_id: str | None
    container_name: str | None
    image: str
    """The reference the container was started with (``Config.Image``) or the image checked."""
    digest: str | None
    """The digest that was verified (repo digest, else image ID)."""
    status: Status
    previous_status: Status | None = None
    """The status before this one, so sinks can tell a recovery from a first sighting."""
    reason: str = ""
    level: int | None = None
    latency_ms: float | None = None
    """Container start (or sweep start) to result, when known."""
    action: str | None = None
    """Enforcement taken because of this outcome: ``stop``, ``kill``, ``pause``, or None."""

    @property
    def failed(self) -> bool:
        """Whether the gate would fail this status (UNSUPPORTED warns by default: not failed)."""
        return fails(self.status)

    @property
    def recovered(self) -> bool:
        """A container that was failing passes again."""
        return (
            self.status is Status.TRUSTED
            and self.previous_status is not None
            and self.previous_status is not Status.TRUSTED
        )

    @property
    def short_id(self) -> str:
        """The container ID as ``docker ps`` shows it (12 hex digits), or ``""``."""
        return (self.container_id or "").removeprefix("sha256:")[:12]

    @classmethod
    def create(
        cls,
        *,
        host: str,
        image: str,
        status: Status,
        container_id: str | None = None,
        container_name: str | None = None,
        digest: str | None = None,
        previous_status: Status | None = None,
        reason: str = "",
        level: int | None = None,
        latency_ms: float | None = None,
        action: str | None = None,
        time: datetime | None = None,
        sequence: int | str = 0,
    ) -> Event:
        """An event whose ID is derived with ``event_id`` (``time`` defaults to now)."""
        ident = event_id(host, container_id, image, digest, status, action, sequence)
        return cls(
            id=ident,
            time=time or datetime.now(UTC),
            host=host,
            container_id=container_id,
            container_name=container_name,
            image=image,
            digest=digest,
            status=status,
            previous_status=previous_status,
            reason=reason,
            level=level,
            latency_ms=latency_ms,
            action=action,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object webhooks, the log and the spool carry."""
        return {
            "id": self.id,
            "time": _iso(self.time),
            "host": self.host,
            "container_id": self.container_id,
            "container_name": self.container_name,
            "image": self.image,
            "digest": self.digest,
            "status": self.status.value,
            "previous_status": self.previous_status.value if self.previous_status else None,
            "failed": self.failed,
            "reason": self.reason,
            "level": self.level,
            "latency_ms": self.latency_ms,
            "action": self.action,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """The inverse of ``to_dict`` (``failed`` is derived, so it is ignored)."""
        previous = data.get("previous_status")
        return cls(
            id=str(data["id"]),
            time=datetime.fromisoformat(str(data["time"])),
            host=str(data["host"]),
            container_id=data.get("container_id"),
            container_name=data.get("container_name"),
            image=str(data["image"]),
            digest=data.get("digest"),
            status=Status(data["status"]),
            previous_status=Status(previous) if previous else None,
            reason=str(data.get("reason") or ""),
            level=data.get("level"),
            latency_ms=data.get("latency_ms"),
            action=data.get("action"),
        )


def event_id(*parts: object) -> str:
    """Hex SHA-256 over the parts (None as empty), unambiguously separated.

    The watchdog passes host, container ID, image, digest, status, action and
    a sequence number: the same state seen again after a restart gets the
    same ID, so it is not alerted twice.
    """
    digest = hashlib.sha256()
    for part in parts:
        text = "" if part is None else str(part)
        digest.update(len(text.encode()).to_bytes(4, "big") + text.encode())
    return digest.hexdigest()


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are UTC; aware ones are converted."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


MIN_SEGMENT = 6
"""Path segments and query values at least this long are redacted on their own too: a
receiver may echo one back (``unknown token XXXX``); shorter ones are words like ``hooks``."""


def url_secrets(url: str) -> list[str]:
    """Every part of ``url`` that can carry a secret: userinfo (a short user name is a
    name, not a token), path, query, and each long path segment and query value, raw and
    percent-decoded."""
    parts = urlsplit(url)
    found = [url, parts.password or "", parts.query]
    if len(parts.username or "") >= MIN_SEGMENT:  # a token used as the user name
        found.append(parts.username or "")
    if parts.path not in ("", "/"):
        found.append(parts.path)  # with its "/": "hook" alone is in "webhook"
    pieces = [s for s in parts.path.split("/") if len(s) >= MIN_SEGMENT]
    pieces += [v for _, v in parse_qsl(parts.query, keep_blank_values=True) if len(v) >= 4]
    for piece in pieces:
        found += [piece, unquote(piece)]
    return [s for s in found if s]


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (longest first) replaced by ``***``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class Sink(ABC):
    """Somewhere events go. Subclasses implement ``_send`` for at most ``batch_size`` events."""

    batch_size: ClassVar[int] = 100
    """Events per request; 1 where one request means one event (chat messages, webhooks)."""
    kind: ClassVar[str] = "sink"

    def __init__(self, name: str, target: str, secrets: Iterable[str] = ()) -> None:
        self.name = name
        """How messages name this sink: no secrets in it."""
        self.key = hashlib.sha256(f"{self.kind}\0{target}".encode()).hexdigest()
        """A stable identity (hash of the full target) for the sink's spool file."""
        self._secrets = tuple(s for s in secrets if s)

    def send(self, events: Sequence[Event]) -> None:
        """Deliver the events in order, or raise ``SinkError`` saying how many got through."""
        delivered = 0
        for start in range(0, len(events), self.batch_size):
            chunk = events[start : start + self.batch_size]
            try:
                self._send(chunk)
            except SinkError as e:
                raise SinkError(
                    self.redact(e.message),
                    hint=e.hint,
                    delivered=delivered,
                    status=e.status,
                    permanent=e.permanent,
                ) from e
            except Exception as e:
                detail = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                raise SinkError(
                    self.redact(f"{self.name} failed: {detail[:300]}"), delivered=delivered
                ) from e
            delivered += len(chunk)

    def redact(self, text: str) -> str:
        """``text`` without this sink's secrets."""
        return redact(text, self._secrets)

    @abstractmethod
    def _send(self, events: Sequence[Event]) -> None:
        """Deliver up to ``batch_size`` events; raise anything on failure."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
