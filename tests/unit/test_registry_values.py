"""Pure parts of the registry client: challenges, scheme choice, descriptors, manifests."""

from __future__ import annotations

import pytest

from gate.errors import RegistryError
from gate.registry import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    digest_of,
    referrers_tag,
)
from gate.registry_auth import Challenge, auth_error, parse_www_authenticate
from gate.registry_http import api_host, default_scheme, is_local

EMPTY = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


# --- WWW-Authenticate ------------------------------------------------------------------


def test_bearer_challenge_from_the_token_spec() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push"'
    )
    (challenge,) = parse_www_authenticate(header)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.service == "registry.docker.io"
    assert challenge.scopes == ("repository:samalba/my-app:pull,push",)


def test_scope_with_several_space_separated_entries() -> None:
    (challenge,) = parse_www_authenticate(
        'Bearer realm="r", scope="repository:a:pull repository:b:pull,push"'
    )
    assert challenge.scopes == ("repository:a:pull", "repository:b:pull,push")


def test_quoted_values_keep_commas_and_escapes() -> None:
    (challenge,) = parse_www_authenticate(r'Bearer realm="http://x/t?a=1,b=2", error="say \"no\""')
    assert challenge.realm == "http://x/t?a=1,b=2"
    assert challenge.params["error"] == 'say "no"'


def test_several_challenges_and_case_insensitive_names() -> None:
    found = parse_www_authenticate('BASIC Realm="basic-realm", Bearer realm=tok, service=svc')
    assert [c.scheme for c in found] == ["basic", "bearer"]
    assert found[0].realm == "basic-realm"
    assert found[1].realm == "tok" and found[1].service == "svc"


@pytest.mark.parametrize("header", ["", "   ", ",,", "=", 'realm="orphan"', "Bearer"])
def test_garbage_does_not_raise(header: str) -> None:
    for challenge in parse_www_authenticate(header):
        assert isinstance(challenge, Challenge)


def test_auth_errors_say_how_to_give_credentials() -> None:
    refused = str(auth_error("reg.example:5000", "demo/app", refused=True))
    missing = str(auth_error("reg.example:5000", "demo/app", refused=False))
    assert "refused" in refused and "needs credentials" in missing
    for text in (refused, missing):
        assert "docker login reg.example:5000" in text
        assert "SEALGATE_REGISTRY_USERNAME" in text and "SEALGATE_REGISTRY_PASSWORD" in text


# --- scheme and host -------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:5000", "127.1.2.3", "localhost", "localhost:5000", "reg.localhost:1", "[::1]:5000"],
)
def test_local_registries_use_plain_http(host: str) -> None:
    assert is_local(host)
    assert default_scheme(host) == "http"


@pytest.mark.parametrize("host", ["ghcr.io", "docker.io", "203.0.113.5:5000", "localhost.example"])
def test_other_registries_use_https(host: str) -> None:
    assert default_scheme(host) == "https"


def test_insecure_registries_with_or_without_port() -> None:
    assert default_scheme("reg.internal:5000", ["reg.internal:5000"]) == "http"
    assert default_scheme("reg.internal:5000", ["reg.internal"]) == "http"
    assert default_scheme("reg.internal:5000", ["other"]) == "https"


def test_docker_hub_api_host() -> None:
    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("ghcr.io") == "ghcr.io"


# --- descriptors and manifests ---------------------------------------------------------


def test_media_type_constants() -> None:
    assert set(MANIFEST_MEDIA_TYPES) == {
        OCI_MANIFEST,
        OCI_INDEX,
        DOCKER_MANIFEST,
        DOCKER_MANIFEST_LIST,
    }
    assert frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST}) == INDEX_MEDIA_TYPES
    assert OCI_EMPTY == "application/vnd.oci.empty.v1+json"


def test_descriptor_round_trip() -> None:
    d = {
        "mediaType": OCI_MANIFEST,
        "digest": EMPTY,
        "size": 2,
        "annotations": {"a": "b"},
        "artifactType": "application/example",
        "platform": {"os": "linux", "architecture": "arm64"},
    }
    descriptor = Descriptor.from_dict(d)
    assert descriptor.media_type == OCI_MANIFEST and descriptor.size == 2
    assert descriptor.annotations == {"a": "b"}
    assert descriptor.artifact_type == "application/example"
    assert descriptor.platform == {"os": "linux", "architecture": "arm64"}
    assert descriptor.to_dict() == d


def test_descriptor_to_dict_leaves_out_unset_fields() -> None:
    assert Descriptor(OCI_EMPTY, EMPTY, 2).to_dict() == {
        "mediaType": OCI_EMPTY,
        "digest": EMPTY,
        "size": 2,
    }


@pytest.mark.parametrize(
    "bad, message",
    [
        ([], "not a JSON object"),
        ({"digest": EMPTY, "size": 2}, "without a mediaType"),
        ({"mediaType": OCI_EMPTY, "size": 2}, "without a digest"),
        ({"mediaType": OCI_EMPTY, "digest": "sha256:abc", "size": 2}, "bad digest"),
        ({"mediaType": OCI_EMPTY, "digest": "md5:" + "0" * 32, "size": 2}, "bad digest"),
        ({"mediaType": OCI_EMPTY, "digest": EMPTY, "size": "2"}, "bad size"),
        ({"mediaType": OCI_EMPTY, "digest": EMPTY, "size": -1}, "bad size"),
        ({"mediaType": OCI_EMPTY, "digest": EMPTY, "size": True}, "bad size"),
        (
            {"mediaType": OCI_EMPTY, "digest": EMPTY, "size": 2, "annotations": {"a": 1}},
            "annotations",
        ),
        ({"mediaType": OCI_EMPTY, "digest": EMPTY, "size": 2, "artifactType": 3}, "artifactType"),
        ({"mediaType": OCI_EMPTY, "digest": EMPTY, "size": 2, "platform": "linux"}, "platform"),
    ],
)
def test_descriptor_rejects_garbage(bad: object, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        Descriptor.from_dict(bad)


def test_manifest_keeps_bytes_and_parses() -> None:
    data = b'{"schemaVersion": 2,  "mediaType": "x"}'
    manifest = Manifest(data, OCI_MANIFEST, digest_of(data))
    assert manifest.json() == {"schemaVersion": 2, "mediaType": "x"}
    assert manifest.descriptor == Descriptor(OCI_MANIFEST, digest_of(data), len(data))
    assert "schemaVersion" not in repr(manifest)


@pytest.mark.parametrize(
    "data, message", [(b"\xff{", "is not JSON"), (b"[1]", "not a JSON object")]
)
def test_manifest_json_garbage(data: bytes, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        Manifest(data, OCI_MANIFEST, digest_of(data)).json()


def test_digest_and_referrers_tag() -> None:
    assert digest_of(b"{}") == EMPTY
    assert referrers_tag(EMPTY) == "sha256-" + EMPTY.split(":")[1]
    long = "sha512:" + "a" * 128
    assert referrers_tag(long) == "sha512-" + "a" * 64
