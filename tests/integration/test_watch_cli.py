"""``sealgate watch`` as a person runs it: what it says at start, its summary, its exit code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gate.cli import main

from .test_watch import env, images, sign, start  # noqa: F401 - fixtures used below

pytestmark = pytest.mark.integration


def once(
    setup: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    code = main(
        ["watch", "--once", "--key", setup["pub"], "--label", "sealgate-test=watch",
         "--state-dir", str(tmp_path / "state"), "--metrics-addr", "127.0.0.1:0"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    return code, out, err


def test_once_exits_like_gate_and_prints_what_it_checked(
    env: dict[str, Any],  # noqa: F811 - the fixture imported above
    images: dict[str, str],  # noqa: F811
    docker_client: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sign(env, images["signed"])
    capsys.readouterr()
    start(docker_client, images["signed"])
    code, out, err = once(env, tmp_path, capsys)
    assert (code, out) == (0, "Checked 1 container: 1 trusted\n"), err
    first = err.splitlines()[0]
    assert first.startswith("sealgate: watching containers labelled sealgate-test=watch on ")
    assert "(one sweep) against 1 key; alerts to log" in first
    assert "; status page http://127.0.0.1:" in first and "/metrics" in first
    start(docker_client, images["unsigned"])
    code, out, err = once(env, tmp_path, capsys)
    assert (code, out) == (1, "Checked 2 containers: 1 unknown, 1 trusted\n"), err
    assert "Traceback" not in err
