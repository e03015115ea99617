"""cosign's simple-signing format, checked byte-for-byte against real cosign and skopeo output."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from gate import keys, signatures
from gate.refs import parse
from gate.signatures import SignatureFormatError


def _vector(vectors: Path, name: str) -> tuple[bytes, bytes]:
    base = vectors / "cosign-containers-image" / "extracted"
    payload = (base / f"{name}.payload").read_bytes()
    sig = base64.b64decode((base / f"{name}.sig.b64").read_text())
    return payload, sig


@pytest.mark.parametrize("name", ["valid", "valid-with-tag", "valid-2-sig2"])
def test_payloads_we_make_equal_real_cosign_bytes(vectors: Path, name: str) -> None:
    raw, _ = _vector(vectors, name)
    parsed = signatures.parse_payload(raw)
    assert signatures.make_payload(parsed.digest, parsed.identity, parsed.optional or None) == raw


@pytest.mark.parametrize(
    ("name", "key", "valid"),
    [
        ("valid", "cosign.pub", True),
        ("valid-2-sig2", "cosign.pub", True),
        ("valid-with-tag", "cosign.pub", True),
        ("valid", "cosign2.pub", False),
        ("unknown-key", "cosign.pub", False),
        ("key-rekor", "cosign2.pub", True),
        ("key-rekor", "cosign.pub", False),
    ],
)
def test_real_signatures_verify_as_index_says(
    vectors: Path, name: str, key: str, valid: bool
) -> None:
    payload, sig = _vector(vectors, name)
    public = keys.load_public_key(str(vectors / "cosign-containers-image" / key))
    assert public.verify(sig, payload) is valid


def test_payload_digest_matches_the_signed_manifest(vectors: Path) -> None:
    payload, _ = _vector(vectors, "valid")
    manifest = (vectors / "cosign-containers-image/dir-img-cosign-valid/manifest.json").read_bytes()
    assert signatures.parse_payload(payload).digest == signatures.digest_of(manifest)
    modified = (
        vectors / "cosign-containers-image/dir-img-cosign-modified-manifest/manifest.json"
    ).read_bytes()
    assert signatures.parse_payload(payload).digest != signatures.digest_of(modified)


def test_signed_time_comes_from_containers_image_timestamp(vectors: Path) -> None:
    payload, _ = _vector(vectors, "valid-with-tag")
    assert signatures.parse_payload(payload).signed_at is not None
    assert signatures.parse_payload(_vector(vectors, "valid")[0]).signed_at is None


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"not json", "is not JSON"),
        (b'{"critical":{}}', "not a cosign simple-signing"),
        (
            b'{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"sha256:00"},'
            b'"type":"cosign container image signature"},"optional":null}',
            "malformed digest",
        ),
        (
            b'{"critical":{"identity":{"docker-reference":"x"},"image":{"docker-manifest-digest":"sha256:'
            + b"0" * 64
            + b'"},"type":"something else"},"optional":null}',
            "has type 'something else'",
        ),
    ],
)
def test_bad_payloads_are_refused(raw: bytes, match: str) -> None:
    with pytest.raises(SignatureFormatError, match=match):
        signatures.parse_payload(raw)


def test_go_style_escaping_and_sorted_annotations() -> None:
    digest = "sha256:" + "a" * 64
    raw = signatures.make_payload(digest, "r/x", {"z": "<&>", "a": 1})
    assert b'"optional":{"a":1,"z":"\\u003c\\u0026\\u003e"}' in raw
    assert json.loads(raw)["optional"]["z"] == "<&>"


def test_attachment_tag_and_identity() -> None:
    digest = "sha256:" + "b" * 64
    assert signatures.attachment_tag(digest) == "sha256-" + "b" * 64 + ".sig"
    assert signatures.attachment_tag(digest, "att").endswith(".att")
    assert signatures.docker_reference(parse("nginx:1.25")) == "index.docker.io/library/nginx"
    assert (
        signatures.docker_reference(parse("127.0.0.1:5000/demo/app@" + digest))
        == "127.0.0.1:5000/demo/app"
    )


def test_append_keeps_other_signers_and_does_not_duplicate() -> None:
    first = signatures.append_signature([], b"payload-1", b"sig-1")
    layers = signatures.parse_signature_manifest(json.loads(first.manifest))
    second = signatures.append_signature(layers, b"payload-2", b"sig-2")
    layers2 = signatures.parse_signature_manifest(json.loads(second.manifest))
    assert [layer.signature() for layer in layers2] == [b"sig-1", b"sig-2"]
    again = signatures.append_signature(layers2, b"payload-2", b"sig-2")
    assert again.manifest == second.manifest
    manifest = json.loads(second.manifest)
    assert manifest["mediaType"] == signatures.OCI_MANIFEST
    assert manifest["layers"][0]["mediaType"] == signatures.SIMPLE_SIGNING_MEDIA_TYPE
    config = second.blobs[manifest["config"]["digest"]]
    assert json.loads(config)["rootfs"]["diff_ids"] == [layer.digest for layer in layers2]
    assert (
        hashlib.sha256(second.blobs[layers2[1].digest]).hexdigest()
        == layers2[1].digest.split(":")[1]
    )


def test_layer_without_or_with_bad_signature_annotation() -> None:
    layer = signatures.SignatureLayer(
        "sha256:" + "c" * 64, 3, signatures.SIMPLE_SIGNING_MEDIA_TYPE, {}
    )
    with pytest.raises(SignatureFormatError, match=r"no 'dev.cosignproject.cosign/signature'"):
        layer.signature()
    bad = signatures.SignatureLayer(
        layer.digest, 3, layer.media_type, {signatures.SIGNATURE_ANNOTATION: "!!!"}
    )
    with pytest.raises(SignatureFormatError, match="not valid base64"):
        bad.signature()


def test_other_attachment_layers_are_not_signatures(vectors: Path) -> None:
    raw = (
        vectors / "cosign-containers-image/dir-img-cosign-other-attachment/signature-1"
    ).read_bytes()
    doc = json.loads(raw.split(b"\n", 1)[1])
    layer = signatures.SignatureLayer("sha256:" + "d" * 64, 1, doc["mimeType"], doc["annotations"])
    assert not layer.is_signature


def test_bundle_round_trip_shapes() -> None:
    digest = "sha256:" + "e" * 64
    statement = json.loads(signatures.sign_statement(digest, {"timestamp": 1}))
    assert statement["predicateType"] == signatures.COSIGN_SIGN_PREDICATE
    assert statement["subject"][0]["digest"] == {"sha256": "e" * 64}
    bundle = signatures.make_bundle({"payload": "", "payloadType": "x", "signatures": []}, "hint")
    parsed = signatures.parse_bundle(bundle)
    assert parsed.key_hint == "hint" and parsed.envelope is not None
    referrer = signatures.bundle_referrer(
        {"mediaType": signatures.OCI_MANIFEST, "digest": digest, "size": 1},
        bundle,
        signatures.COSIGN_SIGN_PREDICATE,
        __import__("datetime").datetime(2026, 1, 1),
    )
    manifest = json.loads(referrer.manifest)
    assert manifest["artifactType"] == signatures.BUNDLE_MEDIA_TYPE
    assert manifest["config"]["digest"] == signatures.EMPTY_DIGEST
    assert manifest["subject"]["digest"] == digest
    with pytest.raises(SignatureFormatError, match="unsupported Sigstore bundle media type"):
        signatures.parse_bundle(b'{"mediaType":"x"}')
