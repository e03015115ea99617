"""RegistryClient against real docker-registry 2.8 servers and images pushed by dockerd."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gate.credentials import Credentials
from gate.errors import NotFoundError, RegistryAuthError, RegistryError
from gate.refs import Reference
from gate.registry import (
    DOCKER_MANIFEST,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryClient,
    digest_of,
    referrers_tag,
)
from tests.integration.conftest import (
    RegistryServer,
    free_port,
    push_random_image,
    push_random_index,
)

pytestmark = pytest.mark.integration


def _unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# --- reading images --------------------------------------------------------------------


def test_docker_pushed_image(
    registry: RegistryServer, push_image: Callable[..., Reference]
) -> None:
    pushed = push_image(registry, _unique("it/docker"), "1.0")
    with registry.client() as client:
        by_tag = client.resolve(Reference(pushed.registry, pushed.path, "1.0"))
        assert by_tag.digest == pushed.digest
        assert by_tag.media_type == DOCKER_MANIFEST
        # tag + digest: the digest is what is resolved
        assert client.resolve(pushed).digest == pushed.digest
        assert pushed.digest is not None
        manifest = client.get_manifest(pushed.repository, pushed.digest)
        assert manifest.digest == pushed.digest == digest_of(manifest.data)
        assert manifest.media_type == DOCKER_MANIFEST
        assert manifest.descriptor.size == by_tag.size
        body = manifest.json()
        config = client.get_blob(pushed.repository, body["config"]["digest"])
        assert json.loads(config)["rootfs"]["type"] == "layers"
        for layer in body["layers"]:
            assert len(client.get_blob(pushed.repository, layer["digest"])) == layer["size"]


def test_runnable_docker_image(
    registry: RegistryServer, push_image: Callable[..., Reference]
) -> None:
    pushed = push_image(registry, _unique("it/runnable"), "1.0", runnable=True)
    assert pushed.digest is not None
    with registry.client() as client:
        body = client.get_manifest(pushed.repository, pushed.digest).json()
        config = json.loads(client.get_blob(pushed.repository, body["config"]["digest"]))
    assert len(body["layers"]) == 2
    assert config["config"]["Cmd"] == ["/bin/busybox", "sleep", "3600"]


def test_oci_image_and_index(registry: RegistryServer) -> None:
    repo = _unique("it/oci")
    index_ref, children = push_random_index(registry, repo, "multi")
    with registry.client() as client:
        resolved = client.resolve(Reference(registry.host, repo, "multi"))
        assert resolved.media_type == OCI_INDEX and resolved.digest == index_ref.digest
        index = client.get_manifest(registry.repository(repo), "multi")
        assert index.digest == index_ref.digest
        entries = index.json()["manifests"]
        assert [e["digest"] for e in entries] == [c.digest for c in children]
        assert [e["platform"]["architecture"] for e in entries] == ["amd64", "arm64"]
        for child in children:
            assert client.resolve(child).media_type == OCI_MANIFEST


def test_push_and_list_tags(registry: RegistryServer) -> None:
    repo = _unique("it/tags")
    with registry.client() as client:
        digests = {
            tag: push_random_image(registry, repo, tag, client=client).digest
            for tag in ("a", "b", "c")
        }
        assert sorted(client.list_tags(registry.repository(repo))) == ["a", "b", "c"]
        # Re-pushing the same blob is a HEAD and nothing more.
        before = client.requests_made
        client.push_blob(registry.repository(repo), b"{}")
        client.push_blob(registry.repository(repo), b"{}")
        assert client.requests_made - before == 4  # HEAD, POST, PUT; then one HEAD
        assert client.resolve(Reference(registry.host, repo, "b")).digest == digests["b"]


def test_not_found(registry: RegistryServer) -> None:
    repo = registry.repository(_unique("it/missing"))
    with registry.client() as client:
        with pytest.raises(NotFoundError, match=rf"{repo} has no manifest 'nope'"):
            client.resolve(Reference(repo.registry, repo.path, "nope"))
        with pytest.raises(NotFoundError, match=r"MANIFEST_UNKNOWN|NAME_UNKNOWN"):
            client.get_manifest(repo, "nope")
        assert client.find_manifest(repo, "sha256-" + "0" * 64 + ".sig") is None
        with pytest.raises(NotFoundError, match="blob"):
            client.get_blob(repo, "sha256:" + "0" * 64)
        with pytest.raises(NotFoundError):
            client.list_tags(repo)


def test_unreachable_port() -> None:
    host = f"127.0.0.1:{free_port()}"
    with (
        RegistryClient(retries=1, timeout=5) as client,
        pytest.raises(RegistryError, match=rf"cannot reach registry {host}: connection refused"),
    ):
        client.resolve(Reference(host, "x/y", "1"))


def test_restart_keeps_content_and_the_client_recovers(
    registry_factory: Callable[..., RegistryServer],
) -> None:
    server = registry_factory()
    ref = push_random_image(server, "it/restart", "1")
    with server.client(retries=0) as client:
        assert client.resolve(Reference(server.host, "it/restart", "1")).digest == ref.digest
        server.stop()
        with pytest.raises(RegistryError, match="cannot reach registry"):
            client.resolve(Reference(server.host, "it/restart", "1"))
        server.start()
        assert client.resolve(Reference(server.host, "it/restart", "1")).digest == ref.digest


# --- referrers -------------------------------------------------------------------------


def _artifact(client: RegistryClient, server: RegistryServer, repo: str, subject: Reference,
              artifact_type: str) -> bytes:  # fmt: skip
    empty = client.push_blob(server.repository(repo), b"{}")
    payload = json.dumps({"kind": artifact_type}).encode()
    layer = client.push_blob(server.repository(repo), payload)
    assert subject.digest is not None
    size = client.resolve(subject).size
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/json", "digest": layer, "size": len(payload)}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": size},
            "annotations": {"org.example.kind": artifact_type},
        }
    ).encode()


def test_referrers_through_the_tag_schema(registry: RegistryServer) -> None:
    repo = _unique("it/referrers")
    subject = push_random_image(registry, repo, "1.0")
    assert subject.digest is not None
    with registry.client() as client:
        assert client.referrers(subject.repository, subject.digest) == []
        bundle = _artifact(
            client, registry, repo, subject, "application/vnd.dev.sigstore.bundle.v0.3+json"
        )
        sbom = _artifact(client, registry, repo, subject, "application/spdx+json")
        bundle_digest = client.push_manifest(
            subject.repository, digest_of(bundle), bundle, OCI_MANIFEST
        )
        sbom_digest = client.push_manifest(subject.repository, digest_of(sbom), sbom, OCI_MANIFEST)
        found = client.referrers(subject.repository, subject.digest)
        assert [d.digest for d in found] == [bundle_digest, sbom_digest]
        assert found[0].artifact_type == "application/vnd.dev.sigstore.bundle.v0.3+json"
        assert found[0].annotations == {"org.example.kind": found[0].artifact_type}
        only = client.referrers(subject.repository, subject.digest, "application/spdx+json")
        assert [d.digest for d in only] == [sbom_digest]
        assert referrers_tag(subject.digest) in client.list_tags(subject.repository)
        index = client.get_manifest(subject.repository, referrers_tag(subject.digest))
        assert index.media_type == OCI_INDEX
    # docker-registry 2.8 has no referrers API: the fallback was exercised for real.
    assert any(
        e.path.startswith(f"/v2/{repo}/referrers/") and e.status == 404
        for e in registry.access_log()
    )


# --- auth and TLS ----------------------------------------------------------------------


def test_basic_auth(basic_registry: RegistryServer) -> None:
    ref = push_random_image(basic_registry, _unique("it/basic"), "1")
    with basic_registry.client() as client:
        assert client.resolve(ref).digest == ref.digest
    with (
        RegistryClient(
            credentials=Credentials("testuser", "wrong-password", basic_registry.host)
        ) as client,
        pytest.raises(
            RegistryAuthError, match=rf"registry {basic_registry.host} refused our credentials"
        ) as caught,
    ):
        client.resolve(ref)
    assert "wrong-password" not in str(caught.value)
    with (
        RegistryClient() as client,
        pytest.raises(RegistryAuthError, match=r"needs credentials.*docker login"),
    ):
        client.resolve(ref)


def test_docker_push_to_basic_registry(
    basic_registry: RegistryServer, push_image: Callable[..., Reference]
) -> None:
    pushed = push_image(basic_registry, _unique("it/basic-docker"), "2")
    with basic_registry.client() as client:
        assert client.resolve(Reference(pushed.registry, pushed.path, "2")).digest == pushed.digest


def test_token_auth(token_registry: RegistryServer, push_image: Callable[..., Reference]) -> None:
    assert token_registry.token_server is not None
    repo = _unique("it/token")
    ref = push_random_image(token_registry, repo, "1")
    pushed = push_image(token_registry, repo, "docker")  # dockerd speaks to our token server too
    before = len(token_registry.token_server.requests)
    with token_registry.client() as client, ThreadPoolExecutor(8) as pool:
        found = list(pool.map(client.resolve, [ref, pushed] * 8))
    assert {d.digest for d in found} == {ref.digest, pushed.digest}
    asked = token_registry.token_server.requests[before:]
    assert [(r.username, r.scopes, r.status) for r in asked] == [
        ("testuser", (f"repository:{repo}:pull",), 200)
    ]
    with (
        RegistryClient(
            credentials=Credentials("testuser", "bad-pass", token_registry.host)
        ) as client,
        pytest.raises(RegistryAuthError, match="refused our credentials") as caught,
    ):
        client.resolve(ref)
    assert "bad-pass" not in str(caught.value)
    with RegistryClient() as client, pytest.raises(RegistryAuthError, match="needs credentials"):
        client.resolve(ref)


def test_identity_token_against_the_token_server(
    registry_factory: Callable[..., RegistryServer],
) -> None:
    server = registry_factory("token")
    assert server.token_server is not None
    ref = push_random_image(server, "it/identity", "1")
    server.token_server.refresh_tokens = {"refresh-123": "testuser"}
    with RegistryClient(credentials=Credentials("<token>", "refresh-123", server.host)) as client:
        assert client.resolve(ref).digest == ref.digest
    assert server.token_server.requests[-1].method == "POST"


def test_credentials_from_docker_config(
    basic_registry: RegistryServer, isolated_docker_config: Path
) -> None:
    ref = push_random_image(basic_registry, _unique("it/config"), "1")
    auth = base64.b64encode(b"testuser:testpass").decode()
    (isolated_docker_config / "config.json").write_text(
        json.dumps({"auths": {f"http://{basic_registry.host}/v2/": {"auth": auth}}})
    )
    with RegistryClient(credentials=Credentials.from_environment()) as client:
        assert client.resolve(ref).digest == ref.digest


def test_tls_with_and_without_the_ca(
    tls_registry: RegistryServer, push_image: Callable[..., Reference]
) -> None:
    ref = push_random_image(tls_registry, _unique("it/tls"), "1")
    pushed = push_image(tls_registry, _unique("it/tls-docker"), "1")
    with tls_registry.client() as client:
        assert client.resolve(ref).digest == ref.digest
        assert client.resolve(pushed).digest == pushed.digest
    creds = tls_registry.credentials()
    with (
        RegistryClient(credentials=creds, retries=0) as client,
        pytest.raises(
            RegistryError,
            match=rf"trusted TLS connection to registry {tls_registry.host}.*--ca-bundle",
        ),
    ):
        client.resolve(ref)
    # --insecure-registry: TLS without verification, as docker does.
    with RegistryClient(credentials=creds, insecure=[tls_registry.host]) as client:
        assert client.resolve(ref).digest == ref.digest


def test_random_image_is_pullable_by_docker(registry: RegistryServer, docker_client: Any) -> None:
    repo = _unique("it/pullable")
    ref = push_random_image(registry, repo, "1")
    image = docker_client.images.pull(f"{registry.host}/{repo}", tag="1")
    try:
        assert f"{registry.host}/{repo}@{ref.digest}" in image.attrs["RepoDigests"]
    finally:
        docker_client.images.remove(image.id, force=True)
