"""Commit statuses against GitHub's own contract: Prism serving the official OpenAPI
description (npm ``@stoplight/prism-cli`` + ``@octokit/openapi``, installed by
``make peers``). With ``--errors`` Prism answers 422 to any request that breaks the
description, so a 201 here means PyGithub, as we drive it, speaks the real API.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import action
from gate.notify import _github
from gate.notify._status import CommitStatus, State, StatusForbiddenError
from tests.conftest import ROOT, require
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration

PEERS = ROOT / "tests" / "peers"
SPEC = PEERS / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
PRISM = PEERS / "node_modules" / ".bin" / "prism"
START_TIMEOUT = 60.0
SHA = "5555555555555555555555555555555555555555"


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``prism mock --errors`` on a free 127.0.0.1 port; its URL. Up in about 8-15 s."""
    require(PRISM.exists() and SPEC.exists(), "Prism and @octokit/openapi (make peers)")
    port = free_port()
    log = tmp_path_factory.mktemp("prism") / "prism.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), "--errors", str(SPEC)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"prism exited: {log.read_text()[-2000:]}")
            try:
                requests.get(url, timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"prism did not start in {START_TIMEOUT} s: {log.read_text()[-2000:]}"
                    )
                time.sleep(0.25)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_our_status_request_meets_the_contract(prism: str) -> None:
    target = _github.GitHubTarget(
        "acme/app", SHA, prism, "https://github.com/acme/app/actions/runs/1"
    )
    for state in State:
        _github.post_status(
            target,
            "ghs_prism",
            CommitStatus(state, "❌ 1 of 2 images failed: 1 unknown" * 5, "sealgate/gate"),
        )


def test_prism_rejects_a_request_that_breaks_the_contract(prism: str) -> None:
    """The check is live: the same endpoint refuses a state the description does not allow."""
    reply = requests.post(
        f"{prism}/repos/acme/app/statuses/{SHA}",
        json={"state": "passed", "context": "sealgate/gate"},
        headers={"Authorization": "token ghs_prism"},
        timeout=10,
    )
    assert reply.status_code == 422
    assert "allowed values" in json.dumps(reply.json())


def test_forbidden_from_prism_becomes_our_error(prism: str) -> None:
    """A path the description does not know gets Prism's 404, which we treat like a token
    that cannot see the repository: a StatusForbiddenError, so the action only warns."""
    target = _github.GitHubTarget("acme/app", SHA, prism + "/no-such-prefix")
    with pytest.raises(StatusForbiddenError, match="GitHub refused the commit status"):
        _github.post_status(target, "ghs_prism", CommitStatus(State.SUCCESS, "ok", "c"))


def test_the_entrypoint_posts_through_prism(
    prism: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    event = tmp_path / "event.json"
    event.write_text("{}")
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/app",
        "GITHUB_SHA": SHA,
        "GITHUB_EVENT_NAME": "push",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_API_URL": prism,
        "GITHUB_RUN_ID": "3",
        "SEALGATE_COMMAND": "gate",
        "SEALGATE_GITHUB_TOKEN": "ghs_prism",
    }
    out = io.StringIO()
    assert action.main(env, out) == 2
    log = out.getvalue()
    assert f"commit status sealgate/gate=error on {SHA}" in log
    assert "::warning" not in log
