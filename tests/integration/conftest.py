"""Real registries and a real Docker engine for integration tests.

Everything listens on 127.0.0.1 ports chosen at run time and is stopped at
teardown. Fixtures (see each docstring):

``registry``                 session-wide docker-registry, no auth
``basic_registry``           session-wide, htpasswd Basic auth
``token_registry``           session-wide, Bearer tokens from ``tests/servers/token_server.py``
``tls_registry``             session-wide, TLS (self-signed, ``ca_cert``) + Basic auth
``registry_factory``         ``factory(auth="none"|"basic"|"token"|"tls") -> RegistryServer``,
                             a fresh registry per call, stopped when the test ends
``docker_client``            session-wide ``docker.DockerClient`` (needs dockerd)
``push_image``               ``push(server, repo=..., tag=..., runnable=False) -> Reference``:
                             build a tiny unique image with dockerd and ``docker push`` it
``push_random_image``        ``push(server, repo, tag) -> Reference``: a synthetic OCI image
                             pushed with RegistryClient (about 30 a second, 8 requests each)
``isolated_docker_config``   an empty ``$DOCKER_CONFIG`` so ~/.docker/config.json is ignored

Helpers importable from here: ``free_port``, ``RegistryServer``, ``make_registry``
(start one outside a fixture, e.g. in a benchmark), ``push_random_image``,
``push_random_index``. To count requests, use
``RegistryServer.access_log()`` (what the registry saw) or
``RegistryClient.requests_made`` (what the client sent).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from gate.credentials import Credentials
from gate.refs import Reference, Repository
from gate.registry import OCI_INDEX, OCI_MANIFEST, RegistryClient, digest_of
from tests.conftest import require
from tests.servers.token_server import TokenServer

USERNAME = "testuser"
PASSWORD = "testpass"
AUTH_KINDS = ("none", "basic", "token", "tls")
START_TIMEOUT = 15.0
_ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3})')


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class AccessLogEntry:
    """One line of the registry's access log."""

    method: str
    path: str
    status: int


@dataclass
class RegistryServer:
    """A ``docker-registry serve`` process on 127.0.0.1; ``stop()``/``start()`` keep its storage.

    ``auth`` is ``none``, ``basic`` (htpasswd), ``token`` (Bearer via ``token_server``)
    or ``tls`` (HTTPS with a self-signed certificate in ``ca_cert`` + htpasswd).
    """

    host: str
    """``127.0.0.1:PORT``: the registry part of references."""
    url: str
    """``http://127.0.0.1:PORT`` or ``https://…`` for TLS."""
    auth: str
    username: str | None
    password: str | None
    ca_cert: Path | None
    log_path: Path
    config_dir: Path
    token_server: TokenServer | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def storage(self) -> Path:
        return self.config_dir / "storage"

    def blob_file(self, digest: str) -> Path:
        """Where docker-registry keeps a blob on disk, for tests that corrupt it behind its back."""
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> RegistryServer:
        """Start (or restart) the registry and wait until ``GET /v2/`` answers."""
        if self.running:
            return self
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                ["docker-registry", "serve", str(self.config_dir / "config.yml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        atexit.register(self.stop)  # no orphaned registries if the run is interrupted
        deadline = time.monotonic() + START_TIMEOUT
        verify: bool | str = str(self.ca_cert) if self.ca_cert else True
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                requests.get(f"{self.url}/v2/", timeout=1, verify=verify)
                return self
            except requests.RequestException:
                time.sleep(0.05)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"docker-registry on {self.host} did not start; log tail:\n{tail}")

    def stop(self) -> None:
        """Stop the process (its storage stays, so ``start()`` brings the same content back)."""
        atexit.unregister(self.stop)
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the registry and its token server for good."""
        self.stop()
        if self.token_server is not None:
            self.token_server.stop()

    def credentials(self) -> Credentials:
        """Credentials that work here (anonymous for ``none``); no config file is read."""
        if self.username is None or self.password is None:
            return Credentials()
        return Credentials(username=self.username, password=self.password, registry=self.host)

    def client(self, **kwargs: Any) -> RegistryClient:
        """A RegistryClient with this server's credentials and CA; ``close()`` it when done."""
        kwargs.setdefault("credentials", self.credentials())
        if self.ca_cert is not None:
            kwargs.setdefault("ca_bundle", str(self.ca_cert))
        return RegistryClient(**kwargs)

    def repository(self, path: str) -> Repository:
        return Repository(self.host, path)

    def reference(self, path: str, tag: str | None = None, digest: str | None = None) -> Reference:
        return Reference(self.host, path, tag, digest)

    def access_log(self) -> list[AccessLogEntry]:
        """Every request the registry logged so far (all runs of this server)."""
        entries = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = _ACCESS_LINE.search(line)
            if match and "level=" not in line:
                entries.append(AccessLogEntry(match["method"], match["path"], int(match["status"])))
        return entries


def _htpasswd(directory: Path) -> Path:
    path = directory / "htpasswd"
    subprocess.run(
        ["htpasswd", "-Bbc", str(path), USERNAME, PASSWORD], check=True, capture_output=True
    )
    return path


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "30", "-keyout", str(key), "-out", str(cert),
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def make_registry(directory: Path, auth: str = "none") -> RegistryServer:
    """Write a docker-registry config under ``directory`` and start it (see RegistryServer)."""
    if auth not in AUTH_KINDS:
        raise ValueError(f"auth must be one of {AUTH_KINDS}, not {auth!r}")
    require(
        shutil.which("docker-registry") is not None, "docker-registry (apt install docker-registry)"
    )
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    http: dict[str, Any] = {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)}
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(directory / "storage")},
            "delete": {"enabled": True},
        },
        "http": http,
    }
    username = password = None
    ca_cert = token_server = None
    if auth in ("basic", "tls"):
        require(shutil.which("htpasswd") is not None, "htpasswd (apt install apache2-utils)")
        config["auth"] = {"htpasswd": {"realm": "sealgate-test", "path": str(_htpasswd(directory))}}
        username, password = USERNAME, PASSWORD
    if auth == "tls":
        require(shutil.which("openssl") is not None, "openssl")
        ca_cert, key = _certificate(directory)
        http["tls"] = {"certificate": str(ca_cert), "key": str(key)}
    if auth == "token":
        token_server = TokenServer(users={USERNAME: PASSWORD}).start(directory / "token")
        assert token_server.cert_path is not None
        config["auth"] = {
            "token": {
                "realm": token_server.realm,
                "service": token_server.service,
                "issuer": token_server.issuer,
                "rootcertbundle": str(token_server.cert_path),
            }
        }
        username, password = USERNAME, PASSWORD
    # JSON is YAML, so no YAML writer is needed.
    (directory / "config.yml").write_text(json.dumps(config, indent=2))
    scheme = "https" if auth == "tls" else "http"
    server = RegistryServer(
        host=f"127.0.0.1:{port}",
        url=f"{scheme}://127.0.0.1:{port}",
        auth=auth,
        username=username,
        password=password,
        ca_cert=ca_cert,
        log_path=directory / "registry.log",
        config_dir=directory,
        token_server=token_server,
    )
    try:
        return server.start()
    except BaseException:
        server.close()
        raise


# --- registries ------------------------------------------------------------------------


@pytest.fixture
def registry_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RegistryServer]]:
    """``factory(auth="none") -> RegistryServer``: a fresh registry, stopped after the test.

    Use it for tests that restart, break or fill a registry; otherwise prefer
    the session-wide ``registry``/``basic_registry``/``token_registry``/``tls_registry``.
    """
    started: list[RegistryServer] = []

    def factory(auth: str = "none") -> RegistryServer:
        server = make_registry(tmp_path_factory.mktemp(f"registry-{auth}"), auth)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.close()


def _session_registry(factory: pytest.TempPathFactory, auth: str) -> Iterator[RegistryServer]:
    server = make_registry(factory.mktemp(f"session-registry-{auth}"), auth)
    yield server
    server.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A docker-registry with no auth, shared by the session: use unique repository names."""
    yield from _session_registry(tmp_path_factory, "none")


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A docker-registry with htpasswd Basic auth (``testuser``/``testpass``)."""
    yield from _session_registry(tmp_path_factory, "basic")


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A docker-registry with Bearer-token auth; ``.token_server`` records token requests."""
    yield from _session_registry(tmp_path_factory, "token")


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A docker-registry over HTTPS (CA in ``.ca_cert``) with Basic auth."""
    yield from _session_registry(tmp_path_factory, "tls")


@pytest.fixture
def isolated_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$DOCKER_CONFIG`` directory, and no SEALGATE_REGISTRY_* variables."""
    directory = tmp_path / "docker-config"
    directory.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    monkeypatch.delenv("SEALGATE_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("SEALGATE_REGISTRY_PASSWORD", raising=False)
    return directory


# --- images ----------------------------------------------------------------------------


def _random_layer() -> bytes:
    """An uncompressed tar holding one random file, so images are unique and pullable."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = secrets.token_bytes(64)
        info = tarfile.TarInfo("payload")
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def push_random_image(
    server: RegistryServer,
    repo: str,
    tag: str | None = "latest",
    *,
    client: RegistryClient | None = None,
    platform: tuple[str, str] = ("linux", "amd64"),
) -> Reference:
    """Push a small synthetic OCI image (one random tar layer + config); returns it with digest.

    Pass ``client`` to reuse one (and its connections) across many pushes;
    ``tag=None`` pushes by digest only.
    """
    own = client is None
    client = client or server.client()
    try:
        repository = server.repository(repo)
        layer = _random_layer()
        config = json.dumps(
            {
                "architecture": platform[1],
                "os": platform[0],
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [digest_of(layer)]},
            },
            separators=(",", ":"),
        ).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": client.push_blob(repository, config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": client.push_blob(repository, layer),
                    "size": len(layer),
                }
            ],
        }
        data = json.dumps(manifest, separators=(",", ":")).encode()
        digest = client.push_manifest(repository, tag or digest_of(data), data, OCI_MANIFEST)
        return server.reference(repo, tag, digest)
    finally:
        if own:
            client.close()


def push_random_index(
    server: RegistryServer,
    repo: str,
    tag: str = "latest",
    platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64"),
) -> tuple[Reference, list[Reference]]:
    """Push one random image per platform (by digest) and an OCI index over them.

    Returns the index reference (tag + digest) and the children (digest only).
    """
    with server.client() as client:
        children = []
        entries = []
        for text in platforms:
            os_name, arch = text.split("/", 1)
            child = push_random_image(server, repo, None, client=client, platform=(os_name, arch))
            assert child.digest is not None
            size = client.resolve(child).size
            children.append(child)
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": child.digest,
                    "size": size,
                    "platform": {"os": os_name, "architecture": arch},
                }
            )
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        data = json.dumps(index, separators=(",", ":")).encode()
        digest = client.push_manifest(server.repository(repo), tag, data, OCI_INDEX)
    return server.reference(repo, tag, digest), children


@pytest.fixture(name="push_random_image")
def push_random_image_fixture() -> Callable[..., Reference]:
    """``push(server, repo, tag="latest", *, client=None) -> Reference`` (see push_random_image)."""
    return push_random_image


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A ``docker.DockerClient`` for the local dockerd; skips (fails in CI) without one."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except (docker.errors.DockerException, requests.RequestException):
        require(False, "the Docker engine (dockerd on /var/run/docker.sock)")
    yield client
    client.close()


@pytest.fixture
def push_image(docker_client: Any, tmp_path: Path) -> Iterator[Callable[..., Reference]]:
    """``push(server, repo="sealgate/test", tag="1.0", runnable=False) -> Reference`` (with digest).

    Builds a tiny ``FROM scratch`` image with the real dockerd (``--network
    none``) holding a random file, so every image has its own digest, and
    pushes it with dockerd (Docker v2 manifest). ``runnable=True`` adds a
    static busybox and ``CMD sleep`` so a container can run it. Credentials
    are passed to the engine per push; no ``docker login`` touches
    ~/.docker/config.json. Images are removed from the engine afterwards.
    """
    import docker.errors

    created: list[str] = []

    def push(
        server: RegistryServer,
        repo: str = "sealgate/test",
        tag: str = "1.0",
        *,
        runnable: bool = False,
    ) -> Reference:
        context = tmp_path / f"build-{secrets.token_hex(4)}"
        context.mkdir()
        (context / "payload").write_bytes(secrets.token_bytes(64))
        lines = ["FROM scratch", "COPY payload /payload"]
        if runnable:
            busybox = shutil.which("busybox") or "/usr/bin/busybox"
            require(os.path.exists(busybox), "a static busybox (apt install busybox-static)")
            shutil.copy(busybox, context / "busybox")
            lines += ["COPY busybox /bin/busybox", 'CMD ["/bin/busybox", "sleep", "3600"]']
        (context / "Dockerfile").write_text("\n".join(lines) + "\n")
        name = f"{server.host}/{repo}"
        built, _ = docker_client.images.build(
            path=str(context), tag=f"{name}:{tag}", network_mode="none", rm=True, forcerm=True
        )
        # by ID: a later push of the same tag leaves this one untagged, not gone
        created.append(built.id)
        auth = None
        if server.username is not None:
            auth = {"username": server.username, "password": server.password}
        digest = None
        for event in docker_client.images.push(
            name, tag=tag, auth_config=auth, stream=True, decode=True
        ):
            if "error" in event:
                raise RuntimeError(f"docker push {name}:{tag} failed: {event['error']}")
            digest = (event.get("aux") or {}).get("Digest", digest)
        if digest is None:
            raise RuntimeError(f"docker push {name}:{tag} reported no digest")
        return server.reference(repo, tag, digest)

    yield push
    for image in created:
        with contextlib.suppress(docker.errors.DockerException):
            docker_client.images.remove(image, force=True)
