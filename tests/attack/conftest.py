"""Fixtures for the attack tests: the integration fixtures (registries, dockerd) plus a ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate import keys
from tests.integration.conftest import (  # noqa: F401  (fixtures re-exported)
    docker_client,
    isolated_docker_config,
    push_image,
    push_random_image_fixture,
    registry,
    registry_factory,
)


@pytest.fixture(autouse=True)
def _ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALGATE_LEDGER", str(tmp_path / "ledger.db"))
    monkeypatch.setenv("SEALGATE_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[str, str]:
    private, public = keys.write_key_pair(str(tmp_path / "ci"), keys.generate(), None)
    return str(private), str(public)
