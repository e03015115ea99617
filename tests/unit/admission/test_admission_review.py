"""AdmissionReview v1 parsing and responses, and the admission manifests' input checks."""

from __future__ import annotations

import base64
import json

import pytest

from gate.admission import render_manifests
from gate.admission._review import ReviewError, parse, pointer, response
from gate.errors import UsageError


def _body(request: object, api: str = "admission.k8s.io/v1") -> bytes:
    return json.dumps({"apiVersion": api, "kind": "AdmissionReview", "request": request}).encode()


def test_parse_reads_what_the_verdict_needs() -> None:
    obj = {"kind": "Pod", "metadata": {"generateName": "web-", "labels": {"a": "b"}}}
    request = parse(
        _body({"uid": "u1", "operation": "CREATE", "namespace": "prod", "object": obj,
               "dryRun": True, "kind": {"group": "", "version": "v1", "kind": "Pod"}})
    )  # fmt: skip
    assert (request.uid, request.kind, request.namespace, request.name) == (
        "u1",
        "Pod",
        "prod",
        "web-",
    )
    assert request.dry_run and request.labels == {"a": "b"}
    assert request.label == "Pod/web- in namespace prod"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"nope", "not JSON"),
        (b"[]", "not an AdmissionReview"),
        (_body({"uid": "u"}, api="admission.k8s.io/v1beta1"), "admissionReviewVersions: \\[v1\\]"),
        (_body(None), "has no request"),
        (_body({"operation": "CREATE"}), "has no uid"),
        (_body({"uid": "u", "object": []}), "object is not an object"),
        (b" " * (3 * 1024 * 1024 + 1), "larger than"),
    ],
)
def test_parse_refuses_what_is_not_a_v1_request(body: bytes, message: str) -> None:
    with pytest.raises(ReviewError, match=message):
        parse(body)


def test_response_denies_with_403_and_encodes_the_patch() -> None:
    denied = response("u", allowed=False, message="why", warnings=["w" * 300])["response"]
    assert denied["status"] == {"code": 403, "reason": "Forbidden", "message": "why"}
    assert len(denied["warnings"][0]) == 256
    patch = [{"op": "replace", "path": "/spec/containers/0/image", "value": "x@sha256:1"}]
    allowed = response("u", allowed=True, patch=patch)["response"]
    assert allowed["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(allowed["patch"])) == patch


def test_pointer_escapes_per_rfc_6901() -> None:
    assert pointer(("metadata", "a/b~c", 0)) == "/metadata/a~1b~0c/0"


def test_manifests_refuse_bad_namespaces_and_non_pem_bundles() -> None:
    with pytest.raises(UsageError, match="not a namespace name"):
        render_manifests(namespace="Not_OK")
    with pytest.raises(UsageError, match="not PEM"):
        render_manifests(namespace="sealgate", ca_bundle=b"junk")
