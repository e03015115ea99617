"""Real InfluxDB 1.x, Prometheus and a private dockerd for tests, on loopback or own sockets.

Plain helpers (the fixtures that use them live in the test modules): each
``start_*`` writes a config under a temporary directory, starts the Debian
binary, waits (bounded) until it answers, and returns an object whose
``stop()`` kills it. Configurations follow PEERS.md §6. ``require`` skips (or,
in CI, fails) when the binary is missing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.conftest import require

START_TIMEOUT = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(ready: Any, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{what} exited with {process.returncode}: {log.read_text()[-2000:]}"
            )
        with contextlib.suppress(requests.RequestException):
            if ready():
                return
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(
        f"{what} did not become ready in {START_TIMEOUT} s: {log.read_text()[-2000:]}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class Influx:
    """An ``influxd`` (1.x) on 127.0.0.1; ``stop()``/``start()`` keep its data."""

    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Influx:
        config = self.directory / "influxdb.conf"
        config.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{free_port()}"\n'
            f'[meta]\n  dir = "{self.directory / "meta"}"\n'
            f'[data]\n  dir = "{self.directory / "data"}"\n'
            f'  wal-dir = "{self.directory / "wal"}"\n'
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
        )
        log = self.directory / "influxd.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                ["influxd", "-config", str(config)], stdout=out, stderr=subprocess.STDOUT
            )
        _wait_until(
            lambda: requests.get(f"{self.url}/ping", timeout=1).status_code == 204,
            "influxd",
            self.process,
            log,
        )
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        """POST /query (times as epoch ms); raises on an HTTP error or an ``error`` in a result."""
        params = {"q": q, "epoch": "ms", **({"db": db} if db else {})}
        response = requests.post(f"{self.url}/query", params=params, timeout=10)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        for result in data.get("results", []):
            if "error" in result:
                raise RuntimeError(f"InfluxQL error for {q!r}: {result['error']}")
        return data

    def create_database(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"')

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """Every row of every series, as dicts with the series' tags merged in."""
        rows = []
        for result in self.query(q, db)["results"]:
            for series in result.get("series", []):
                for values in series["values"]:
                    row = dict(zip(series["columns"], values, strict=True))
                    rows.append({**series.get("tags", {}), **row})
        return rows


def start_influx(directory: Path) -> Influx:
    """A running influxd with its data under ``directory``."""
    require(shutil.which("influxd") is not None, "influxd (Debian package influxdb)")
    directory.mkdir(parents=True, exist_ok=True)
    return Influx(directory, free_port()).start()


@dataclass
class Prometheus:
    """A ``prometheus`` server on 127.0.0.1 scraping ``targets`` every second."""

    directory: Path
    port: int
    targets: list[str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        config = self.directory / "prometheus.yml"
        listed = ", ".join(f'"{t}"' for t in self.targets)
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: sealgate\n"
            "    honor_labels: true\n"
            f"    static_configs:\n      - targets: [{listed}]\n"
        )
        log = self.directory / "prometheus.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_until(
            lambda: requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200,
            "prometheus",
            self.process,
            log,
        )
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None

    def targets_up(self) -> bool:
        """Whether every target has been scraped successfully at least once."""
        data = requests.get(f"{self.url}/api/v1/targets", timeout=5).json()
        active = data["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result


def start_prometheus(directory: Path, targets: list[str]) -> Prometheus:
    """A running Prometheus scraping ``targets`` (``host:port``, path /metrics)."""
    require(shutil.which("prometheus") is not None, "prometheus (Debian package prometheus)")
    directory.mkdir(parents=True, exist_ok=True)
    return Prometheus(directory, free_port(), targets).start()


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``condition()`` until truthy (returned) or ``timeout`` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            last = condition()
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout} s (last: {last!r})")


@dataclass
class Dockerd:
    """A second ``dockerd`` of our own (own socket, data root and containerd namespace).

    It can be stopped and started at will, which the shared daemon cannot. It
    is started like the shared one (no bridge, no iptables) and runs nothing
    that needs a network.
    """

    directory: Path
    namespace: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> Dockerd:
        log = self.directory / "dockerd.log"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    "dockerd",
                    f"--host={self.url}",
                    f"--data-root={self.directory / 'data'}",
                    f"--exec-root={self.directory / 'exec'}",
                    f"--pidfile={self.directory / 'docker.pid'}",
                    f"--containerd-namespace={self.namespace}",
                    f"--containerd-plugins-namespace={self.namespace}-plugins",
                    "--bridge=none",
                    "--iptables=false",
                    "--ip-forward=false",
                    "--ip-masq=false",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_until(self._answers, "dockerd", self.process, log)
        return self

    def _answers(self) -> bool:
        return self.docker("version", check=False).returncode == 0

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run the docker CLI against this daemon."""
        return subprocess.run(
            ["docker", f"--host={self.url}", *args],
            capture_output=True,
            timeout=60,
            check=check,
        )

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None


def start_dockerd(directory: Path) -> Dockerd:
    """A private dockerd under ``directory`` (needs root and Debian's docker.io)."""
    require(
        shutil.which("dockerd") is not None and os.geteuid() == 0,
        "dockerd and root, to run a private Docker engine",
    )
    directory.mkdir(parents=True, exist_ok=True)
    return Dockerd(directory, f"sealgate-test-{secrets.token_hex(4)}").start()
