"""Registries on the attacker's side (``tests/servers/hostile_registry.py``): where our
credentials go, how long we wait, and how many requests we make at once.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gate import keys
from gate.cli import main
from gate.credentials import Credentials
from gate.errors import RegistryAuthError, RegistryError
from gate.refs import Reference, Repository
from gate.registry import RegistryClient
from tests.servers.hostile_registry import (
    Answer,
    Handler,
    HostileRegistry,
    Request,
    TLSFiles,
    basic_challenge,
    bearer_challenge,
    make_tls,
    manifest_answer,
    token_answer,
)

from .conftest import RegistryServer, push_random_image

pytestmark = pytest.mark.integration

SECRET = "hostile-test-s3cret"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def hostile() -> Iterator[Callable[..., HostileRegistry]]:
    """``hostile(handler, address=..., tls=...)``: a HostileRegistry stopped after the test."""
    made: list[HostileRegistry] = []

    def make(handler: Handler, **kwargs: Any) -> HostileRegistry:
        made.append(HostileRegistry(handler, **kwargs))
        return made[-1]

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def public_key(tmp_path: Path) -> str:
    return str(keys.write_key_pair(str(tmp_path / "k"), keys.generate(), None)[1])


def _policy(tmp_path: Path, public_key: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(f"""\
version: 1
signers:
  - name: ci
    key: {public_key}
rules:
  - match: "**"
    require: {{signers: [ci], threshold: 1}}
default: deny
""")
    return str(path)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    code = main([*argv, "-o", "json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip().startswith("[") else []), err


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- explicit credentials stay with their registry -------------------------------------------


@pytest.mark.parametrize("lure", ["basic", "bearer"])
def test_gate_sends_no_explicit_credentials_to_a_host_the_manifest_names(
    lure: str,
    basic_registry: RegistryServer,
    hostile: Callable[..., HostileRegistry],
    public_key: str,
    tmp_path: Path,
    isolated_docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A pull request adds an image on the attacker's host to a manifest; the CI's password
    still goes only to the registry it was given for."""

    def attacker_answers(request: Request) -> Answer:
        if request.path == "/token":
            return token_answer("anon")
        if lure == "basic":
            return basic_challenge()
        return bearer_challenge(f"http://{attacker.host}/token")

    attacker = hostile(attacker_answers)
    good = push_random_image(basic_registry, f"hostile/good-{uuid.uuid4().hex[:8]}", "1")
    evil = f"{attacker.host}/acme/app@{DIGEST}"
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        f"services:\n  app:\n    image: {good.name}@{good.digest}\n  evil:\n    image: {evil}\n"
    )
    monkeypatch.setenv("SEALGATE_REGISTRY_USERNAME", basic_registry.username or "")
    monkeypatch.setenv("SEALGATE_REGISTRY_PASSWORD", basic_registry.password or "")
    argv = ["gate", str(compose), "--policy", _policy(tmp_path, public_key)]

    # Without saying which registry the password is for, the gate refuses to start.
    code, results, err = _cli(capsys, *argv)
    assert (code, results) == (2, []) and "--registry HOST" in err
    assert attacker.seen == []

    code, results, err = _cli(capsys, *argv, "--registry", basic_registry.host)
    status = {r["image"]: r["status"] for r in results}
    # The real registry took the password (unsigned, so not TRUSTED, but read: not ERROR) ...
    assert status[f"{good.name}@{good.digest}"] in ("UNKNOWN", "UNTRUSTED"), err
    # ... the attacker's host asked for credentials and got none at all.
    assert status[evil] == "ERROR" and code == 3
    assert attacker.seen, "the attacker's registry was never asked; the test proves nothing"
    # Nothing of ours: at most the anonymous token it handed out itself.
    assert set(attacker.authorizations()) <= {"Bearer anon"}
    assert ("Bearer anon" in attacker.authorizations()) == (lure == "bearer")


def test_sign_binds_explicit_credentials_to_the_images_registry(
    basic_registry: RegistryServer,
    hostile: Callable[..., HostileRegistry],
    tmp_path: Path,
    isolated_docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    attacker = hostile(lambda request: basic_challenge())
    key = tmp_path / "signer"
    keys.write_key_pair(str(key), keys.generate(), None)
    ref = push_random_image(basic_registry, f"hostile/sign-{uuid.uuid4().hex[:8]}", "1")
    monkeypatch.setenv("SEALGATE_REGISTRY_USERNAME", basic_registry.username or "")
    monkeypatch.setenv("SEALGATE_REGISTRY_PASSWORD", basic_registry.password or "")
    # No --registry: the credentials are for the registry of the image being signed.
    assert main(["sign", str(ref), "--key", f"{key}.key"]) == 0
    # Images in two registries: which one is the password for? Say so before anything is sent.
    code = main(["sign", str(ref), f"{attacker.host}/acme/app:1", "--key", f"{key}.key"])
    err = capsys.readouterr().err
    assert code == 2 and "several registries" in err and "--registry HOST" in err
    assert attacker.seen == []
    # Named: signing there is attempted anonymously, and fails for want of credentials.
    elsewhere = f"{attacker.host}/acme/app:1"
    code = main(["sign", elsewhere, "--key", f"{key}.key", "--registry", basic_registry.host])
    assert code == 3 and attacker.seen and attacker.authorizations() == []


def test_docker_config_still_answers_for_other_hosts(
    hostile: Callable[..., HostileRegistry], isolated_docker_config: Path
) -> None:
    """Bound credentials do not switch off ``docker login``: each host gets its own entry."""

    def answers(request: Request) -> Answer:
        if request.authorization != _basic("cfg-user", "cfg-pass"):
            return basic_challenge()
        return manifest_answer()

    other = hostile(answers)
    (isolated_docker_config / "config.json").write_text(
        json.dumps(
            {"auths": {other.host: {"auth": base64.b64encode(b"cfg-user:cfg-pass").decode()}}}
        )
    )
    creds = Credentials.from_environment("u", SECRET, registry="127.0.0.1:1")
    with RegistryClient(credentials=creds, retries=0) as client:
        client.get_manifest(Repository(other.host, "acme/app"), "1")
    assert set(other.authorizations()) == {_basic("cfg-user", "cfg-pass")}


# --- token realms ----------------------------------------------------------------------------


@pytest.fixture
def tls(tmp_path: Path) -> dict[str, Any]:
    """Certificates for 127.0.0.1 and 127.0.0.2, and one bundle trusting both."""
    one, two = make_tls(tmp_path / "tls", "127.0.0.1"), make_tls(tmp_path / "tls", "127.0.0.2")
    bundle = tmp_path / "tls" / "bundle.pem"
    bundle.write_bytes(one.cert.read_bytes() + two.cert.read_bytes())
    return {"127.0.0.1": one, "127.0.0.2": two, "bundle": str(bundle)}


# (registry address, registry over TLS, realm address, realm over TLS, credentials sent)
REALMS = {
    "http realm on another host": ("127.0.0.1", False, "127.0.0.2", False, False),
    "http realm for an https registry": ("127.0.0.1", True, "127.0.0.1", False, False),
    "http realm on the same host (local registry)": ("127.0.0.1", False, "127.0.0.1", False, True),
    "https realm on another host": ("127.0.0.1", False, "127.0.0.2", True, True),
}


@pytest.mark.parametrize("case", list(REALMS))
def test_credentials_go_to_a_token_realm_only_over_https_or_on_the_registrys_own_host(
    case: str, hostile: Callable[..., HostileRegistry], tls: dict[str, Any]
) -> None:
    registry_address, registry_tls, realm_address, realm_tls, sent = REALMS[case]
    user_token = "granted-to-u"

    def realm_answers(request: Request) -> Answer:
        authorized = request.authorization == _basic("u", SECRET)
        return token_answer(user_token if authorized else "anonymous")

    def registry_answers(request: Request) -> Answer:
        if request.authorization != f"Bearer {user_token}":
            return bearer_challenge(f"{realm.url}/token", "repository:acme/app:pull")
        return manifest_answer()

    realm_tls_files: TLSFiles | None = tls[realm_address] if realm_tls else None
    registry_tls_files: TLSFiles | None = tls[registry_address] if registry_tls else None
    realm = hostile(realm_answers, address=realm_address, tls=realm_tls_files)
    registry = hostile(registry_answers, address=registry_address, tls=registry_tls_files)
    creds = Credentials("u", SECRET, registry.host)
    with RegistryClient(credentials=creds, ca_bundle=tls["bundle"], retries=0) as client:
        repo = Repository(registry.host, "acme/app")
        if sent:
            client.get_manifest(repo, "1")
        else:
            with pytest.raises(RegistryAuthError, match="did not send it the credentials") as e:
                client.get_manifest(repo, "1")
            assert SECRET not in str(e.value) and realm.host in str(e.value)
    # Asked either way (anonymously when the credentials must not go there).
    assert realm.seen and {r.path for r in realm.seen} == {"/token"}
    assert set(realm.authorizations()) == ({_basic("u", SECRET)} if sent else set())


# --- the deadline ----------------------------------------------------------------------------


TRICKLES = {
    # Where the registry starts sending one byte every two seconds.
    "manifest body": lambda r: manifest_answer(trickle=2.0) if r.method == "GET" else None,
    "status line": lambda r: (
        manifest_answer(trickle=2.0, trickle_status_line=True) if r.path != "/v2/" else None
    ),
    "ping": lambda r: Answer(200, b"{}" * 50, trickle=2.0) if r.path == "/v2/" else None,
}


@pytest.mark.parametrize("where", list(TRICKLES))
def test_a_trickling_registry_is_an_error_within_the_deadline(
    where: str,
    hostile: Callable[..., HostileRegistry],
    public_key: str,
    isolated_docker_config: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    trickle = TRICKLES[where]

    def answers(request: Request) -> Answer:
        chosen = trickle(request)
        if chosen is not None:
            return chosen
        if request.path == "/v2/":
            return Answer(200, b"{}")
        return Answer(200, b"", {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})

    slow = hostile(answers)
    started = time.monotonic()
    code, results, err = _cli(
        capsys, "verify", f"{slow.host}/acme/app:1", "--key", public_key, "--timeout", "3"
    )
    elapsed = time.monotonic() - started
    assert (code, [r["status"] for r in results]) == (3, ["ERROR"]), err
    reason = results[0]["reason"]
    assert slow.host in reason and "3 s deadline" in reason and "--timeout" in reason
    # Without the deadline each read's timeout (3 s) never trips: the trickle would run on.
    assert elapsed < 3 * 2 + 2, f"took {elapsed:.1f} s"


def test_threads_queued_behind_a_stuck_registry_fail_with_it(
    hostile: Callable[..., HostileRegistry],
) -> None:
    """Eight images on a registry whose ping trickles: one deadline, not eight in a row."""
    slow = hostile(lambda r: Answer(200, b"{}" * 50, trickle=2.0))
    repo = Repository(slow.host, "acme/app")
    with RegistryClient(timeout=2, retries=0) as client, ThreadPoolExecutor(8) as pool:
        started = time.monotonic()
        futures = [pool.submit(client.get_manifest, repo, str(i)) for i in range(8)]
        for future in futures:
            with pytest.raises(RegistryError, match=rf"{slow.host} did not finish .* 2 s deadline"):
                future.result()
        assert time.monotonic() - started < 4.5
    assert len(slow.seen) == 1


def test_a_request_waiting_for_a_pooled_connection_keeps_its_deadline(
    hostile: Callable[..., HostileRegistry],
) -> None:
    """With every connection of the pool held by a stuck request, the next one waits no
    longer than its own deadline for a turn."""
    stuck = hostile(
        lambda r: Answer(200, b"{}") if r.path == "/v2/" else manifest_answer(delay=6.0)
    )
    repo = Repository(stuck.host, "acme/app")
    with (
        RegistryClient(timeout=2, concurrency=1, retries=0) as client,
        ThreadPoolExecutor(2) as pool,
    ):
        started = time.monotonic()
        futures = [pool.submit(client.get_manifest, repo, tag) for tag in ("1", "2")]
        for future in futures:
            with pytest.raises(
                RegistryError, match=rf"{stuck.host} did not finish .* 2 s deadline"
            ):
                future.result()
        assert time.monotonic() - started < 4.5


def test_a_finished_requests_deadline_never_cuts_the_next_request_on_its_connection(
    hostile: Callable[..., HostileRegistry],
) -> None:
    """The first request's deadline passes while a second one is in flight on the same
    kept-alive connection: the watchdog must leave it alone."""

    def answers(request: Request) -> Answer:
        if request.path == "/v2/":
            return Answer(200, b"{}")
        return manifest_answer(delay=1.2 if request.path.endswith("/slow") else 0.0)

    server = hostile(answers)
    repo = Repository(server.host, "acme/app")
    with RegistryClient(timeout=1.5, retries=0, concurrency=1) as client:
        client.get_manifest(repo, "quick")
        time.sleep(0.6)
        client.get_manifest(repo, "slow")  # in flight when the first deadline passes
    ports = {r.path: r.client_port for r in server.seen}
    assert ports["/v2/acme/app/manifests/quick"] == ports["/v2/acme/app/manifests/slow"]


# --- concurrency -----------------------------------------------------------------------------


def test_concurrency_bounds_requests_in_flight_per_registry(
    hostile: Callable[..., HostileRegistry],
) -> None:
    def answers(request: Request) -> Answer:
        return Answer(200, b"{}") if request.path == "/v2/" else manifest_answer(delay=0.3)

    server = hostile(answers)
    repo = Repository(server.host, "acme/app")
    with RegistryClient(concurrency=4) as client, ThreadPoolExecutor(16) as pool:
        assert client.concurrency == 4
        list(pool.map(lambda i: client.get_manifest(repo, str(i)), range(16)))
    assert server.most_in_flight == 4
    assert sum(1 for r in server.seen if r.path.startswith("/v2/acme")) == 16


def test_32_threads_needing_one_token_make_one_token_request(
    hostile: Callable[..., HostileRegistry],
) -> None:
    """Single flight: the token service is slow, every thread waits for the one fetch;
    a cached token is reused until it expires."""

    def realm_answers(request: Request) -> Answer:
        scope = request.query.get("scope", [""])[0]
        return dataclasses.replace(token_answer(f"tok-{scope}"), delay=0.5)

    def registry_answers(request: Request) -> Answer:
        repo = "/".join(request.path.split("/")[2:4])
        if request.authorization != f"Bearer tok-repository:{repo}:pull":
            return bearer_challenge(f"{realm.url}/token", f"repository:{repo}:pull")
        return manifest_answer()

    realm = hostile(realm_answers)
    server = hostile(registry_answers)
    creds = Credentials("u", SECRET, server.host)
    start = threading.Barrier(32)

    def fetch(repo: str) -> str:
        start.wait(timeout=10)
        return client.get_manifest(Repository(server.host, repo), "1").digest

    with RegistryClient(credentials=creds) as client, ThreadPoolExecutor(32) as pool:
        assert len(set(pool.map(fetch, ["acme/app"] * 32))) == 1
        assert len(realm.seen) == 1
        # Half the threads on a second repository: one more token, the first one reused.
        list(pool.map(fetch, ["acme/app", "acme/other"] * 16))
        assert sorted(r.query["scope"][0] for r in realm.seen) == [
            "repository:acme/app:pull",
            "repository:acme/other:pull",
        ]


def test_token_requests_under_concurrency_against_docker_registry(
    registry_factory: Callable[..., RegistryServer],
) -> None:
    """The same count against the real thing: docker-registry and its token server."""
    server = registry_factory("token")
    assert server.token_server is not None
    repo = f"hostile/tokens-{uuid.uuid4().hex[:8]}"
    ref = push_random_image(server, repo, "1")
    before = len(server.token_server.requests)
    tagged = Reference(ref.registry, ref.path, "1")
    with server.client() as client, ThreadPoolExecutor(32) as pool:
        found = list(pool.map(lambda _: client.resolve(tagged).digest, range(64)))
    assert set(found) == {ref.digest}
    asked = server.token_server.requests[before:]
    assert [(r.username, r.scopes) for r in asked] == [("testuser", (f"repository:{repo}:pull",))]
