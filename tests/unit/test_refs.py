"""Docker's reference grammar and normalisation, table-driven."""

from __future__ import annotations

import pytest

from gate.errors import InvalidReferenceError
from gate.refs import Reference, SourceKind, parse, parse_digest, parse_source

D = "sha256:" + "0123456789abcdef" * 4

VALID = [
    # text, registry, path, tag, digest
    ("nginx", "docker.io", "library/nginx", "latest", None),
    ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
    ("nginx:1.25-alpine", "docker.io", "library/nginx", "1.25-alpine", None),
    (f"nginx@{D}", "docker.io", "library/nginx", None, D),
    (f"nginx:1.25@{D}", "docker.io", "library/nginx", "1.25", D),
    ("bitnami/redis", "docker.io", "bitnami/redis", "latest", None),
    ("docker.io/nginx", "docker.io", "library/nginx", "latest", None),
    ("index.docker.io/library/nginx:x", "docker.io", "library/nginx", "x", None),
    ("registry-1.docker.io/acme/app:1", "docker.io", "acme/app", "1", None),
    ("ghcr.io/acme/app:v1.2.3", "ghcr.io", "acme/app", "v1.2.3", None),
    ("ghcr.io/acme/team/sub/app:1", "ghcr.io", "acme/team/sub/app", "1", None),
    ("localhost/app", "localhost", "app", "latest", None),
    ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None),
    ("127.0.0.1:5000/demo/app:1.0", "127.0.0.1:5000", "demo/app", "1.0", None),
    ("[::1]:5000/demo/app:1.0", "[::1]:5000", "demo/app", "1.0", None),
    ("[fe80::1]/app", "[fe80::1]", "app", "latest", None),
    ("quay.io/a_b/c__d:t", "quay.io", "a_b/c__d", "t", None),
    ("gcr.io/proj/app-name.with.dots:tag_1", "gcr.io", "proj/app-name.with.dots", "tag_1", None),
    # one spelling per registry: policies match hosts as text (the HTTPS port and zeros go)
    ("registry.example.com:443/x/y", "registry.example.com", "x/y", "latest", None),
    ("registry.example.com:0443/x/y", "registry.example.com", "x/y", "latest", None),
    ("127.0.0.1:05000/x/y", "127.0.0.1:5000", "x/y", "latest", None),
    ("Registry.Example.COM/x/y:T", "registry.example.com", "x/y", "T", None),
    ("app:UPPER-tag", "docker.io", "library/app", "UPPER-tag", None),
    ("a/b---c:1", "docker.io", "a/b---c", "1", None),
    ("my-registry:5000/app", "my-registry:5000", "app", "latest", None),
    ("foo.bar/baz", "foo.bar", "baz", "latest", None),
    ("ab:" + "t" * 128, "docker.io", "library/ab", "t" * 128, None),
]


@pytest.mark.parametrize(("text", "registry", "path", "tag", "digest"), VALID)
def test_valid_references_normalise(
    text: str, registry: str, path: str, tag: str | None, digest: str | None
) -> None:
    assert parse(text) == Reference(registry, path, tag, digest)


INVALID = [
    ("", "empty"),
    (" nginx", "spaces"),
    ("Nginx", "must be lowercase"),
    ("acme/App:1", "must be lowercase"),
    ("nginx:", "invalid tag"),
    ("nginx:-bad", "invalid tag"),
    ("nginx:.bad", "invalid tag"),
    ("nginx:" + "t" * 129, "invalid tag"),
    ("nginx@sha256:abc", "needs 64"),
    ("nginx@sha256:" + "A" * 64, "lowercase hex"),
    ("nginx@sha256:" + "g" * 64, "lowercase hex"),
    ("nginx@md5:" + "0" * 32, "unsupported algorithm"),
    ("nginx@" + "0" * 64, "is not a digest"),
    ("a//b", "empty path component"),
    ("a/b/", "empty path component"),
    ("/a/b", "empty path component"),
    ("a/-b", "invalid path component"),
    ("a/b_", "invalid path component"),
    ("a/b..c", "invalid path component"),
    ("docker://nginx", "drop the scheme"),
    ("https://ghcr.io/a/b", "drop the scheme"),
    ("x" * 256, "too long"),
    ("ghcr.io/" + "a" * 250, "too long"),
    ("bad_host:5000/app", "invalid registry host 'bad_host:5000'"),
    ("host:port/app", "invalid registry host 'host:port'"),
]


@pytest.mark.parametrize(("text", "why"), INVALID)
def test_invalid_references_say_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(InvalidReferenceError, match=why):
        parse(text)


def test_round_trip_and_properties() -> None:
    ref = parse(f"ghcr.io/acme/app:1.0@{D}")
    assert str(ref) == f"ghcr.io/acme/app:1.0@{D}"
    assert ref.name == "ghcr.io/acme/app" and ref.pinned and ref.identifier == D
    assert str(ref.repository) == "ghcr.io/acme/app"
    assert parse(str(parse("nginx"))) == parse("nginx")
    assert parse("nginx").with_digest(D).pinned


def test_digests() -> None:
    assert parse_digest(D) == D
    assert parse_digest("sha512:" + "a" * 128).startswith("sha512:")
    with pytest.raises(InvalidReferenceError, match="needs 64"):
        parse_digest("sha256:" + "a" * 63)


@pytest.mark.parametrize(
    ("text", "kind", "field", "value"),
    [
        ("nginx:1", SourceKind.REGISTRY, "reference", parse("nginx:1")),
        ("docker://hello-world", SourceKind.DOCKER, "name", "hello-world"),
        ("docker://sha256:" + "0" * 64, SourceKind.DOCKER, "name", "sha256:" + "0" * 64),
        ("docker://8c8bc226bcf4", SourceKind.DOCKER, "name", "8c8bc226bcf4"),
        ("oci:/tmp/layout", SourceKind.OCI, "path", "/tmp/layout"),
        ("oci:./layout:1.0", SourceKind.OCI, "path", "./layout:1.0"),
        ("docker-archive:/tmp/img.tar", SourceKind.DOCKER_ARCHIVE, "path", "/tmp/img.tar"),
    ],
)
def test_sources(text: str, kind: SourceKind, field: str, value: object) -> None:
    source = parse_source(text)
    assert source.kind is kind and getattr(source, field) == value and source.text == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("docker://", "names no image"),
        ("oci:", "names no image"),
        ("docker://Bad:Name", "must be lowercase"),
    ],
)
def test_bad_sources(text: str, why: str) -> None:
    with pytest.raises(InvalidReferenceError, match=why):
        parse_source(text)
