"""The README's first command runs `sealgate demo`: it must work here, end to end."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ..conftest import ROOT

pytestmark = pytest.mark.integration


def test_demo_runs_signs_gates_watches_and_cleans_up(docker_client: object) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gate.cli", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SEALGATE_LEDGER": "/nonexistent/never-used.db"},
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    for step in (
        "1. Sign a local image into the embedded ledger",
        "2. An image nobody signed is UNKNOWN",
        "3. Push to the registry",
        "4. Tamper with the signature",
        "5. The pre-deploy gate",
        "6. The watchdog",
    ):
        assert step in out
    assert out.count("TRUSTED") >= 3 and "UNKNOWN" in out and "UNTRUSTED" in out
    assert (
        '"status": "UNKNOWN"' in out
    )  # the watchdog's alert for the unsigned container, as a log line
    assert "Cleaned up" in out
    leftover = subprocess.run(
        ["docker", "ps", "-aq", "--filter", "label=sealgate-demo"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert leftover == ""
