"""AdmissionReview ``admission.k8s.io/v1`` at the wire: what the API server sends and accepts.

Parsing is strict about what the decision depends on (uid, operation, the
object) and lenient about the rest, so a newer API server's extra fields do
not break admission. Responses carry only fields of the v1 schema.

NOTE: https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#request
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gate.errors import UsageError

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
MAX_BODY = 3 * 1024 * 1024
"""The API server's own request limit is 3 MiB; anything bigger is not from it."""
MAX_WARNING = 256
"""The API server may truncate longer warnings; keep them whole."""


class ReviewError(UsageError):
    """The body is not an AdmissionReview v1 request (HTTP 400, never an admission verdict)."""


@dataclass(frozen=True)
class Request:
    """The parts of ``AdmissionReview.request`` a verdict depends on."""

    uid: str
    operation: str
    """CREATE, UPDATE, DELETE or CONNECT."""
    kind: str
    """The object's kind (``Pod``, ``Deployment``, …)."""
    namespace: str
    name: str
    dry_run: bool
    object: Mapping[str, Any] | None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``Kind/name in namespace``: how a person finds the object."""
        where = f" in namespace {self.namespace}" if self.namespace else ""
        return f"{self.kind}/{self.name or '(unnamed)'}{where}"


def parse(body: bytes) -> Request:
    """The request in ``body``; raises ReviewError with one sentence when it is not one."""
    if len(body) > MAX_BODY:
        raise ReviewError(f"the request body is larger than {MAX_BODY} bytes")
    try:
        review = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ReviewError(f"the request body is not JSON: {e}") from None
    if not isinstance(review, dict) or review.get("kind") != KIND:
        raise ReviewError("the request body is not an AdmissionReview")
    if review.get("apiVersion") != API_VERSION:
        raise ReviewError(
            f"AdmissionReview version {review.get('apiVersion')!r} is not supported; "
            f"set admissionReviewVersions: [v1] ({API_VERSION})"
        )
    request = review.get("request")
    if not isinstance(request, dict):
        raise ReviewError("the AdmissionReview has no request")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ReviewError("the AdmissionReview request has no uid")
    obj = request.get("object")
    if obj is not None and not isinstance(obj, dict):
        raise ReviewError("the AdmissionReview request's object is not an object")
    metadata = (obj or {}).get("metadata") or {}
    labels = metadata.get("labels") or {}
    kind = request.get("kind") or {}
    return Request(
        uid=uid,
        operation=str(request.get("operation") or ""),
        kind=str((obj or {}).get("kind") or kind.get("kind") or ""),
        namespace=str(request.get("namespace") or metadata.get("namespace") or ""),
        name=str(request.get("name") or metadata.get("name") or metadata.get("generateName") or ""),
        dry_run=bool(request.get("dryRun")),
        object=obj,
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
    )


def response(
    uid: str,
    *,
    allowed: bool,
    message: str | None = None,
    warnings: Sequence[str] = (),
    patch: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """An AdmissionReview response: 403 with ``message`` when denied, the patch base64-encoded."""
    answer: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        answer["status"] = {"code": 403, "reason": "Forbidden", "message": message or "denied"}
    elif message:
        answer["status"] = {"code": 200, "message": message}
    if warnings:
        answer["warnings"] = [_short(w) for w in warnings]
    if patch:
        text = json.dumps(list(patch), separators=(",", ":")).encode()
        answer["patchType"] = "JSONPatch"
        answer["patch"] = base64.b64encode(text).decode()
    return {"apiVersion": API_VERSION, "kind": KIND, "response": answer}


def _short(text: str) -> str:
    return text if len(text) <= MAX_WARNING else text[: MAX_WARNING - 1] + "…"


def pointer(tokens: Sequence[str | int]) -> str:
    """JSON Pointer text for ``tokens`` (RFC 6901: ``~`` as ``~0``, ``/`` as ``~1``)."""
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)
