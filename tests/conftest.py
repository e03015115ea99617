"""Fixtures shared by every test: assets, vectors, and the "service missing" rule.

In CI (``SEALGATE_REQUIRE_SERVICES=1``, set by ``.ci/run``) a missing real
part (dockerd, docker-registry, influxd, node peers) fails the test; on a
developer machine it skips with a message saying what to install.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "tests" / "assets"
VECTORS = ASSETS / "vectors"
REALWORLD = ASSETS / "realworld"


def require(available: bool, what: str) -> None:
    """Skip (locally) or fail (in CI) when a real part the test needs is missing."""
    if available:
        return
    message = f"{what} is not available"
    if os.environ.get("SEALGATE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (SEALGATE_REQUIRE_SERVICES=1: missing services are failures)")
    pytest.skip(message)


@pytest.fixture
def asset():
    """Path to a file under tests/assets/."""

    def _asset(name: str) -> Path:
        return ASSETS / name

    return _asset


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The third-party test vectors in tests/assets/vectors (see its INDEX.md)."""
    return VECTORS
