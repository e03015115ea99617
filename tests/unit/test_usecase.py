"""The one use case behind ``verify`` and ``gate``, for the CLI and the Action alike."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gate import commands, keys, policy
from gate.cli import main
from gate.errors import UsageError
from gate.usecase import Checker, Reporting
from tests.imagefiles import docker_save_oci, make_image


def _policy(tmp_path: Path) -> policy.Policy:
    key = keys.generate()
    (tmp_path / "ci.pub").write_bytes(key.public_key.pem)
    return policy.from_keys([key.public_key])


def test_a_report_directory_that_is_a_file_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "reports").write_text("not a directory")
    with pytest.raises(UsageError, match="is a file, not a directory"):
        Checker(commands.Context(), _policy(tmp_path), Reporting(directory=tmp_path / "reports"))


def test_a_signing_key_needs_a_report_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="give --report-dir"):
        Checker(commands.Context(), _policy(tmp_path), Reporting(signing_key=keys.generate()))


def test_reports_and_the_vsa_are_written_by_the_use_case(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    docker_save_oci(archive, make_image(), [])
    ctx = commands.Context(ledger_path=str(tmp_path / "ledger.db"))
    checker = Checker(ctx, _policy(tmp_path), Reporting(directory=tmp_path / "out"))
    checked = checker.verify([f"docker-archive:{archive}"])
    assert checked.exit_code == 1 and checked.results[0].status.value == "UNKNOWN"
    assert {p.name for p in checked.written.values()} <= {
        p.name for p in (tmp_path / "out").iterdir()
    }
    assert checked.summary is not None and checked.summary.path.exists()


def test_the_ledger_flag_is_passed_down_not_written_into_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SEALGATE_LEDGER", raising=False)
    archive = tmp_path / "image.tar"
    docker_save_oci(archive, make_image(), [])
    key = keys.write_key_pair(str(tmp_path / "ci"), keys.generate(), None)
    ledger = tmp_path / "elsewhere.db"
    source = f"docker-archive:{archive}"
    assert main(["--ledger", str(ledger), "sign", source, "--key", str(key[0])]) == 0
    assert "SEALGATE_LEDGER" not in os.environ and ledger.exists()
    capsys.readouterr()
    assert (
        main(["--ledger", str(ledger), "verify", source, "--key", str(key[1]), "-o", "json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)[0]["status"] == "TRUSTED"
