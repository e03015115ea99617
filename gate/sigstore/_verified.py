"""The result of a keyless (or key + log) verification: who signed, when, and how we know."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Verified:
    """What verified; every check that ran is named in ``checks``."""

    identity: str | None
    """The certificate's SAN (URI, email or username); None for key-signed content."""
    issuer: str | None
    """The OIDC issuer from the certificate."""
    extensions: dict[str, str]
    """The Fulcio claims by friendly name (source_repository_uri, runner_environment, ...)."""
    signed_time: datetime
    """The trusted signing time: the log's integrated time, else the TSA's genTime."""
    time_source: str
    """``transparency log`` or ``timestamp authority``."""
    log_index: int | None
    """The first log entry's index, when there is one."""
    checks: tuple[str, ...]
    predicate_type: str | None = None
    """The in-toto predicate type of DSSE content."""
    key_id: str | None = None
    """Hex SHA-256 of the DER key, for key-signed content."""
    payload: bytes | None = field(default=None, repr=False)
    """The verified DSSE payload (the in-toto statement bytes)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "identity": self.identity,
            "issuer": self.issuer,
            "extensions": dict(self.extensions),
            "signed_time": self.signed_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "time_source": self.time_source,
            "log_index": self.log_index,
            "checks": list(self.checks),
            "predicate_type": self.predicate_type,
            "key_id": self.key_id,
        }
