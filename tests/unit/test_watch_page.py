"""The watchdog's status page and ``/status.json``, served for real beside ``/metrics``.

A real :class:`Board` fed real containers and results, a real metrics server
on 127.0.0.1, real HTTP requests; tests/integration/test_pages_browser.py opens
the page in Chromium.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
import requests

from gate.engine import ContainerInfo
from gate.notify import Metrics, url_secrets
from gate.result import Result, Signer, Status
from gate.watch._board import Board
from gate.watch._page import checked_line, pages, render_status

D1 = "sha256:" + "ab" * 32
KEY = "cd" * 32
HOOK = "https://hooks.example.com/services/T000/B000/s3cr3tTOKENvalue"


def container(name: str, ref: str = "ghcr.io/acme/api:1") -> ContainerInfo:
    return ContainerInfo(
        id=(name.encode().hex() * 8)[:64],
        name=name,
        image_id=D1,
        image_ref=ref,
        status="running",
    )


def fill(board: Board) -> None:
    board.record(
        container("web"),
        Result("ghcr.io/acme/api:1", D1, Status.TRUSTED, "signed by ci", signer=Signer(KEY, "ci")),
    )
    board.record(
        container("<script>alert(1)</script>", ref="evil.io/x\u202e:<b>1</b>"),
        Result("evil", D1, Status.UNTRUSTED, f"tampered; see {HOOK} <img src=x onerror=alert(1)>"),
    )
    board.record(container("db"), Result("db", None, Status.UNKNOWN, "no signature"))
    board.swept(time.time(), [container(n).id for n in ("web", "<script>alert(1)</script>", "db")])


@pytest.fixture
def board() -> Board:
    b = Board("host-1", depths=lambda: [("slack hooks.example.com", 3)], secrets=url_secrets(HOOK))
    fill(b)
    return b


@pytest.fixture
def served(board: Board) -> Iterator[str]:
    with Metrics().serve("127.0.0.1:0", pages(board)) as server:
        yield server.url.removesuffix("metrics")


def test_snapshot_puts_failing_first_and_redacts_secrets(board: Board) -> None:
    snap = board.snapshot()
    assert [c["status"] for c in snap["containers"]] == ["UNTRUSTED", "UNKNOWN", "TRUSTED"]
    assert snap["counts"] == {"UNTRUSTED": 1, "UNKNOWN": 1, "TRUSTED": 1}
    assert snap["failing"] == 2 and snap["last_sweep"] and snap["host"] == "host-1"
    assert snap["sinks"] == [{"name": "slack hooks.example.com", "spooled": 3}]
    assert "s3cr3tTOKENvalue" not in str(snap) and "***" in snap["containers"][0]["reason"]
    web = snap["containers"][-1]
    assert (
        web["signer"] == f"ci (key {KEY[:12]})"
        and web["digest"] == D1
        and web["id"] == (container("web").id[:12])
    )


def test_since_moves_only_when_the_status_changes_and_sweeps_drop_the_gone(board: Board) -> None:
    before = {c["name"]: c["since"] for c in board.snapshot()["containers"]}
    time.sleep(1.1)
    board.record(container("web"), Result("x", D1, Status.TRUSTED, "signed by ci"))
    board.record(container("db"), Result("db", D1, Status.UNTRUSTED, "tampered"))
    after = {c["name"]: c["since"] for c in board.snapshot()["containers"]}
    assert after["web"] == before["web"] and after["db"] != before["db"]
    board.swept(time.time(), [container("web").id])
    assert [c["name"] for c in board.snapshot()["containers"]] == ["web"]


def test_routes_serve_html_json_and_metrics_read_only(served: str) -> None:
    page = requests.get(served, timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    data = requests.get(served + "status.json", timeout=5)
    assert data.headers["Content-Type"].startswith("application/json")
    assert [c["status"] for c in data.json()["containers"]] == ["UNTRUSTED", "UNKNOWN", "TRUSTED"]
    metrics = requests.get(served + "metrics", timeout=5)
    assert metrics.status_code == 200 and "sealgate_containers" in metrics.text
    for method in ("POST", "PUT", "DELETE"):
        refused = requests.request(method, served, timeout=5)
        assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"
    head = requests.head(served + "status.json", timeout=5)
    assert head.status_code == 200 and head.content == b""


class _Tags(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_page_escapes_hostile_names_and_refreshes_itself(board: Board) -> None:
    out = render_status(board.snapshot(), refresh=7)
    parsed = _Tags(out)
    names = [t for t, _ in parsed.tags]
    assert names.count("script") == 1 and "img" not in names
    assert names.count("b") == 3  # the three status counts, none from a container's name
    assert all(not a.startswith("on") for _, attrs in parsed.tags for a in attrs)
    assert ("meta", {"http-equiv": "refresh", "content": "7"}) in parsed.tags
    text = "".join(parsed.text)
    assert "<script>alert(1)</script>" in text and "\u202e" not in out
    assert "❌ 2 of 3 containers failing: 1 untrusted, 1 unknown" in text
    assert "slack hooks.example.com: 3 events spooled" in text
    assert "s3cr3tTOKENvalue" not in out


def test_an_empty_board_says_so() -> None:
    text = "".join(_Tags(render_status(Board("h").snapshot())).text)
    assert "no running containers checked yet" in text and "No sinks." in text


def test_exit_code_follows_the_gate_rule(board: Board) -> None:
    assert board.exit_code() == 1  # UNTRUSTED and UNKNOWN run
    board.record(container("db"), Result("db", None, Status.ERROR, "registry down"))
    assert board.exit_code() == 3  # ERROR wins
    only_good = Board("h")
    only_good.record(container("web"), Result("x", D1, Status.TRUSTED, "ok"))
    only_good.record(container("old"), Result("x", D1, Status.UNSUPPORTED, "deprecated"))
    assert only_good.exit_code() == 0  # UNSUPPORTED warns by default
    assert checked_line(only_good.snapshot()) == "Checked 2 containers: 1 unsupported, 1 trusted"
    assert checked_line(Board("h").snapshot()) == "Checked 0 containers"
