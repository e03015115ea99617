"""One base error for everything Sealgate can refuse or fail at.

Every error carries a one-sentence message a person can act on, an optional
hint, and a class-level exit code that follows DESIGN.md:

    SealgateError                     (exit 2 unless a subclass says otherwise)
    ├── UsageError                    2  bad usage or bad configuration
    │   ├── InvalidReferenceError     2  not an image reference or digest
    │   ├── KeyLoadError              2  key file/env var missing, not a key, bad type or passphrase
    │   ├── PolicyError               2  the trust policy is unreadable or invalid (file, line)
    │   └── ManifestError             2  a deploy manifest cannot be read or parsed (file, line)
    ├── PolicyFailureError            1  a decision: something is not trusted
    │   ├── SignatureFormatError      1  stored signature data is malformed (signatures.py)
    │   ├── DSSEError                 1  not a DSSE envelope, or too few valid signatures (dsse.py)
    │   └── StatementError            1  not an in-toto statement (provenance/)
    └── UnavailableError              3  could not tell: something could not be read
        ├── RegistryError             3  the registry failed, refused, or sent bad bytes
        │   ├── RegistryAuthError     3  401/403 after trying the credentials we have
        │   ├── NotFoundError         3  404 for a manifest, blob or repository
        │   ├── DigestMismatchError   3  fetched bytes do not match their digest
        │   └── OversizedError        3  a manifest or blob is over its size cap
        ├── EngineError               3  the Docker engine could not be reached or failed
        ├── SinkError                 3  an alert or metric sink refused or is unreachable (notify/)
        └── LedgerError               3  the ledger file is unreadable, corrupt or tampered

Library errors (requests, docker, sqlite3, cryptography) are translated into
these where they enter, with ``raise ... from e``; nothing else reaches the CLI.
"""

from __future__ import annotations


class SealgateError(Exception):
    """Base of every error Sealgate raises on purpose."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None, brief: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.brief = brief or message
        """The sentence for a result row, which already names the image: the message
        without the image's name (defaults to the message when it names no image)."""

    def __str__(self) -> str:
        return self.message


class UsageError(SealgateError):
    """The command line or configuration is wrong; fix it and run again."""

    exit_code = 2


class InvalidReferenceError(UsageError):
    """Text that is not a valid image reference, source or digest."""


class KeyLoadError(UsageError):
    """A key could not be loaded: missing, not a key, wrong kind, or wrong passphrase."""


class _LocatedError(UsageError):
    """An error at a place in a file, rendered as ``file:line: message``."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if file is not None:
            where = f"{file}:{line}: " if line is not None else f"{file}: "
        super().__init__(where + message, hint=hint)
        self.file = file
        self.line = line


class PolicyError(_LocatedError):
    """The trust policy is unreadable or invalid."""


class ManifestError(_LocatedError):
    """A deploy manifest cannot be read or parsed."""


class PolicyFailureError(SealgateError):
    """A decision was reached and it is 'no'."""

    exit_code = 1


class UnavailableError(SealgateError):
    """Something needed to decide could not be read; fail closed."""

    exit_code = 3


class RegistryError(UnavailableError):
    """The registry failed, refused, or answered with something unusable."""


class RegistryAuthError(RegistryError):
    """The registry refused our credentials (or we had none)."""


class NotFoundError(RegistryError):
    """The registry has no such manifest, blob or repository."""


class DigestMismatchError(RegistryError):
    """Bytes fetched from a registry do not hash to the digest that named them."""


class OversizedError(RegistryError):
    """A manifest or blob is larger than we are willing to read."""


class EngineError(UnavailableError):
    """The Docker engine could not be reached or failed."""


class LedgerError(UnavailableError):
    """The ledger file is unreadable, corrupt, or its history was rewritten."""
