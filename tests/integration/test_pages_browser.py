"""The HTML report and the watchdog's status page, opened in a real headless Chromium.

Debian's ``chromium`` is started here with the flags that keep it offline and
stateless (an empty ``--user-data-dir`` under the test's ``tmp_path``) and a
DevTools port on 127.0.0.1; ``tests/peers/browser-peer.mjs`` drives it with
playwright-core over that port. Each test keeps a screenshot (and a PDF of
the print view) in its ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from gate import commands
from gate.report import OutputFormat, ReportContext, render
from gate.watch import WatchOptions
from tests.servers.recorder import Recorder
from tests.unit.test_report import make_results

from ..conftest import ROOT, require
from .services import wait_for
from .test_watch import env, images, sign, start  # noqa: F401 - fixtures used below

pytestmark = pytest.mark.integration
PEERS = ROOT / "tests" / "peers"
CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
START_TIMEOUT = 30.0


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[str]:
    """A headless Chromium on a DevTools port; yields its WebSocket endpoint."""
    require(os.access(CHROMIUM, os.X_OK), "Chromium (apt-get install chromium)")
    node = shutil.which("node")
    require(node is not None, "node (Debian nodejs)")
    require((PEERS / "node_modules" / "playwright-core").is_dir(), "playwright-core (npm ci)")
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log = (tmp_path / "chromium.log").open("wb")
    process = subprocess.Popen(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,  # its renderer and GPU processes go with it at the end
        env={  # its caches and temporary files stay in tmp_path too
            **os.environ,
            "HOME": str(tmp_path),
            "TMPDIR": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
        },
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            assert process.poll() is None, (tmp_path / "chromium.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "Chromium did not open its DevTools port"
            time.sleep(0.1)
        port, path = port_file.read_text().splitlines()[:2]
        yield f"ws://127.0.0.1:{port}{path}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def drive(endpoint: str, url: str, screenshot: Path, query: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None
    done = subprocess.run(
        [node, str(PEERS / "browser-peer.mjs"), endpoint, url, str(screenshot), query],
        cwd=PEERS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return seen


def assert_clean(seen: dict[str, Any], url: str) -> None:
    """No console errors (a CSP refusal is one), no script ran from data, nothing fetched."""
    assert [m for m in seen["console"] if m["type"] in ("error", "warning")] == []
    assert seen["errors"] == [] and seen["dialogs"] == []
    assert seen["requests"] == [url], "the page asked for something beyond itself"


def test_report_in_a_browser(browser: str, tmp_path: Path) -> None:
    results = make_results()  # one per status, with a hostile image and reason
    page = tmp_path / "report.html"
    ctx = ReportContext(command="gate", policy="policy.yaml")
    page.write_text(render(results, OutputFormat.HTML, ctx), "utf-8")
    shot = tmp_path / "report.png"
    url = page.as_uri()
    seen = drive(browser, url, shot, "nginx")
    assert_clean(seen, url)
    assert seen["summary"].endswith("3 of 5 images failed: 1 untrusted, 1 error, 1 unknown")
    assert seen["initial"] == ["UNTRUSTED", "ERROR", "UNKNOWN", "UNSUPPORTED", "TRUSTED"]
    fold = seen["firstFailing"]
    assert fold is not None and fold["top"] >= 0 and fold["bottom"] <= fold["viewport"]
    for status, rows in seen["without"].items():
        assert rows == [s for s in seen["initial"] if s != status]
    assert seen["searched"] == ["UNKNOWN"] and seen["shown"] == "1 of 5 shown"
    assert seen["nothing"] == [] and seen["emptyNote"] is True
    assert seen["cleared"] == seen["initial"]
    assert seen["controlsPrinted"] is False and seen["rowsPrinted"] == 5
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:4] == b"\x89PNG"


def test_status_page_in_a_browser(
    browser: str,
    env: dict[str, Any],  # noqa: F811 - the fixture imported above
    images: dict[str, str],  # noqa: F811
    docker_client: Any,
    tmp_path: Path,
) -> None:
    sign(env, images["signed"])
    good, bad = start(docker_client, images["signed"]), start(docker_client, images["unsigned"])
    token = "s3cr3tTOKENinTheHookPath"
    opts = WatchOptions(
        state_dir=env["dir"] / "state",
        host="test-host",
        labels=("sealgate-test=watch",),
        interval=0.5,
    )
    with Recorder() as hook:
        dog, server = commands.watchdog(
            commands.Context(),
            None,
            [env["pub"]],
            alerts=[f"{hook.url}/hook/{token}"],
            metrics_addr="127.0.0.1:0",
            options=opts,
        )
        stop = threading.Event()
        thread = threading.Thread(target=dog.run, args=(stop,), daemon=True)
        thread.start()
        try:
            base = server.url.removesuffix("metrics")
            status = wait_for(
                lambda: (
                    (d := requests.get(base + "status.json", timeout=5).json())["last_sweep"]
                    and len(d["containers"]) == 2
                    and d
                ),
                20,
                "a sweep of both containers",
            )
            assert [c["name"] for c in status["containers"]] == [bad.name, good.name]
            assert [c["status"] for c in status["containers"]] == ["UNKNOWN", "TRUSTED"]
            assert "(key " in status["containers"][1]["signer"]
            shot = tmp_path / "status.png"
            seen = drive(browser, base, shot, good.name)
            assert_clean(seen, base)
            assert seen["summary"].endswith("1 of 2 containers failing: 1 unknown")
            assert seen["initial"] == ["UNKNOWN", "TRUSTED"]
            fold = seen["firstFailing"]
            assert fold is not None and fold["bottom"] <= fold["viewport"]
            assert seen["without"] == {"UNKNOWN": ["TRUSTED"], "TRUSTED": ["UNKNOWN"]}
            assert seen["searched"] == ["TRUSTED"] and seen["nothing"] == []
            html = requests.get(base, timeout=5).text
            assert token not in html and token not in json.dumps(status)
            assert shot.read_bytes()[:4] == b"\x89PNG"
        finally:
            stop.set()
            thread.join(timeout=30)
            server.close()
    assert not thread.is_alive()
