"""Sealgate: keep untrusted container images off your hosts."""

__version__ = "0.1.0"
