"""The one error every failed keyless or transparency-log check raises."""

from __future__ import annotations

from gate.errors import PolicyFailureError


class KeylessError(PolicyFailureError):
    """A Sigstore check failed; the message names the check (exit 1, not trusted).

    Bad configuration (a root file that is not a trusted root, a regexp that
    does not compile) is a ``gate.errors.UsageError`` instead (exit 2).
    """
