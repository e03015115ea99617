"""Fixtures shared by every test: assets, vectors, and the "service missing" rule.

In CI (``SEALGATE_REQUIRE_SERVICES=1``, set by ``.ci/run``) a missing real
part (dockerd, docker-registry, influxd, node peers) fails the test; on a
developer machine it skips with a message saying what to install.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from tests import leftovers

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


# --- nothing left behind ------------------------------------------------------------------

_TOKEN = pytest.StashKey[str]()
_BEFORE = pytest.StashKey[leftovers.Snapshot]()
_DIR = pytest.StashKey[Path]()
_FOUND = pytest.StashKey[tuple[list[str], list[str]]]()


def pytest_configure(config: pytest.Config) -> None:
    """Mark every process this run starts (see tests/leftovers.py) and note what exists."""
    token = secrets.token_hex(8)
    os.environ[leftovers.MARK] = token
    config.stash[_TOKEN] = token
    config.stash[_BEFORE] = leftovers.Snapshot.take()


@pytest.fixture(scope="session", autouse=True)
def _session_directory(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    request.config.stash[_DIR] = tmp_path_factory.getbasetemp()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After every fixture is torn down, pass or fail: fail the run if anything of it is left."""
    config = session.config
    if _TOKEN not in config.stash:
        return
    found = leftovers.find(
        config.stash[_TOKEN], config.stash[_BEFORE], config.stash.get(_DIR, None)
    )
    strict = os.environ.get("SEALGATE_REQUIRE_SERVICES") == "1"  # CI: the machine is ours alone
    failing = found.certain + (found.likely if strict else [])
    config.stash[_FOUND] = (failing, [] if strict else found.likely)
    if failing and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    failing, advisory = config.stash.get(_FOUND, ([], []))
    if failing:
        terminalreporter.section("left behind by this run (a failure)", red=True)
        for line in failing:
            terminalreporter.write_line(line)
    if advisory:
        terminalreporter.section(
            "maybe left behind (another run may share this machine)", yellow=True
        )
        for line in advisory:
            terminalreporter.write_line(line)
