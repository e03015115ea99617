"""Upload one entry to Rekor (v1 or v2) and check that what it logged is what was sent.

The answer is believed only after: its body is the entry we proposed (the
same kind, hashes, signature and certificate), and its signed entry
timestamp verifies with the trusted root's key for that log. So a log (or a
proxy) that logs something else cannot hand us a receipt for it.

NOTE: Rekor OpenAPI v1 ``POST /api/v1/log/entries`` (openapi.yaml: answer
``{uuid: LogEntry{body, integratedTime, logID, logIndex, verification
{signedEntryTimestamp, inclusionProof}}}``); hashedrekord v0.0.1 and dsse
v0.0.1 schemas in rekor pkg/types.

Rekor v2 (rekor-tiles CLIENTS.md, ``POST /api/v2/log/entries`` with a
``CreateEntryRequest``) answers a protojson TransparencyLogEntry with an
inclusion proof up to a signed checkpoint and no SET or integrated time;
it is believed once the canonicalized body is exactly the hashedrekord
v0.0.2 entry we asked for (rekor-tiles pkg/types/hashedrekord ToLogEntry),
the proof reaches the checkpoint's root and a v2 log key of the trusted
root signed that checkpoint. DSSE goes in as a hashedrekord over the
envelope's PAE (rekor-v2-spec §6.1.4), as sigstore-python 4.5 and
sigstore-go 1.2 (cosign v3.1) write and verify it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import requests

from gate import merkle
from gate.errors import UnavailableError
from gate.sigstore._errors import KeylessError
from gate.sigstore._rekor import (
    InclusionProof,
    LogEntry,
    entry_from_bundle,
    verify_inclusion,
    verify_set,
)
from gate.sigstore._trust import TrustedRoot

_TIMEOUT = 30.0


@dataclass(frozen=True)
class Logged:
    """A Rekor entry as the log answered it, checked."""

    entry: LogEntry
    uuid: str
    url: str
    """Where a person can read it: ``BASE/api/v1/log/entries/UUID``."""


def hashedrekord(digest: bytes, signature: bytes, cert_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {
                "content": base64.b64encode(signature).decode(),
                "publicKey": {"content": base64.b64encode(cert_pem).decode()},
            },
        },
    }


def dsse_proposal(envelope_json: bytes, cert_pem: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "proposedContent": {
                "envelope": envelope_json.decode(),
                "verifiers": [base64.b64encode(cert_pem).decode()],
            }
        },
    }


def upload(
    base_url: str, proposed: dict[str, Any], expected_spec: dict[str, Any], roots: TrustedRoot
) -> Logged:
    """POST ``proposed``; the logged body's spec must equal ``expected_spec`` exactly."""
    url = base_url.rstrip("/") + "/api/v1/log/entries"
    try:
        response = requests.post(url, json=proposed, timeout=_TIMEOUT)
    except requests.RequestException as e:
        raise UnavailableError(f"Rekor at {base_url} is unreachable ({type(e).__name__})") from None
    if response.status_code not in (200, 201):
        raise UnavailableError(
            f"Rekor at {base_url} refused the entry (HTTP {response.status_code})"
        )
    uuid, entry = _parse(response, base_url)
    body = entry.body_json()
    if (
        not isinstance(body, dict)
        or body.get("kind") != proposed["kind"]
        or body.get("apiVersion") != proposed["apiVersion"]
        or body.get("spec") != expected_spec
    ):
        raise UnavailableError(f"Rekor at {base_url} logged an entry that is not the one sent")
    instance = roots.for_log(entry.log_id)
    log = instance.tlog(entry.log_id) if instance else None
    if log is None:
        raise UnavailableError(
            f"Rekor at {base_url} answered for a log the trusted root does not list"
        )
    try:
        verify_set(entry, log)
    except KeylessError as e:
        raise UnavailableError(f"Rekor at {base_url}: {e.message}") from None
    return Logged(entry, uuid, f"{base_url.rstrip('/')}/api/v1/log/entries/{uuid}")


def hashedrekord_v2(digest: bytes, signature: bytes, cert_der: bytes) -> dict[str, Any]:
    """The v0.0.2 entry body Rekor v2 logs for this signature (protojson field names).

    The request is ``{"hashedRekordRequestV002": {digest, signature}}``; the
    log keeps the signature as sent and adds the digest's algorithm.
    """
    return {
        "apiVersion": "0.0.2",
        "kind": "hashedrekord",
        "spec": {
            "hashedRekordV002": {
                "data": {"algorithm": "SHA2_256", "digest": base64.b64encode(digest).decode()},
                "signature": _v2_signature(signature, cert_der),
            }
        },
    }


def _v2_signature(signature: bytes, cert_der: bytes) -> dict[str, Any]:
    return {
        "content": base64.b64encode(signature).decode(),
        "verifier": {
            "x509Certificate": {"rawBytes": base64.b64encode(cert_der).decode()},
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
        },
    }


def upload_v2(
    base_url: str, digest: bytes, signature: bytes, cert_der: bytes, roots: TrustedRoot
) -> Logged:
    """POST a hashedrekord v0.0.2 request to Rekor v2; believe the answer only once checked."""
    base = base_url.rstrip("/")
    request: dict[str, Any] = {
        "hashedRekordRequestV002": {
            "digest": base64.b64encode(digest).decode(),
            "signature": _v2_signature(signature, cert_der),
        }
    }
    try:
        response = requests.post(base + "/api/v2/log/entries", json=request, timeout=_TIMEOUT)
    except requests.RequestException as e:
        raise UnavailableError(f"Rekor at {base_url} is unreachable ({type(e).__name__})") from None
    if response.status_code not in (200, 201):
        raise UnavailableError(
            f"Rekor at {base_url} refused the entry (HTTP {response.status_code})"
        )
    try:
        entry = entry_from_bundle(response.json())
    except (ValueError, KeylessError):  # ValueError: not JSON
        raise UnavailableError(f"Rekor at {base_url} answered a malformed log entry") from None
    try:
        body = entry.body_json()
    except KeylessError:
        body = None
    if (
        (entry.kind, entry.version) != ("hashedrekord", "0.0.2")
        or body != hashedrekord_v2(digest, signature, cert_der)
        or entry.proof is None
        or entry.proof.log_index != entry.log_index
    ):
        raise UnavailableError(f"Rekor at {base_url} logged an entry that is not the one sent")
    instance = roots.for_log(entry.log_id)
    log = instance.tlog(entry.log_id) if instance else None
    if log is None:
        raise UnavailableError(
            f"Rekor at {base_url} answered for a log the trusted root does not list"
        )
    try:
        verify_inclusion(entry, log)
    except KeylessError as e:
        raise UnavailableError(f"Rekor at {base_url}: {e.message}") from None
    # NOTE: Rekor v2 serves tiles, not entries by UUID: the log and the index name the entry.
    uuid = merkle.leaf_hash(entry.body).hex()
    return Logged(entry, uuid, base)


def _parse(response: requests.Response, base_url: str) -> tuple[str, LogEntry]:
    try:
        doc: Any = response.json()
        ((uuid, raw),) = doc.items()
        verification = raw.get("verification") or {}
        proof_doc = verification.get("inclusionProof")
        proof = None
        if proof_doc:
            proof = InclusionProof(
                int(proof_doc["logIndex"]),
                int(proof_doc["treeSize"]),
                bytes.fromhex(proof_doc["rootHash"]),
                tuple(bytes.fromhex(h) for h in proof_doc.get("hashes") or []),
                str(proof_doc.get("checkpoint", "")),
            )
        body = base64.b64decode(raw["body"], validate=True)
        kv = json.loads(body)
        entry = LogEntry(
            log_index=int(raw["logIndex"]),
            log_id=bytes.fromhex(raw["logID"]),
            kind=str(kv["kind"]),
            version=str(kv["apiVersion"]),
            body=body,
            integrated_time=int(raw["integratedTime"]),
            set=base64.b64decode(verification["signedEntryTimestamp"], validate=True),
            proof=proof,
        )
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise UnavailableError(f"Rekor at {base_url} answered a malformed log entry") from None
    return str(uuid), entry


def cosign_bundle_annotation(entry: LogEntry) -> str:
    """cosign's ``dev.sigstore.cosign/bundle`` (pkg/cosign/bundle RekorBundle)."""
    assert entry.set is not None and entry.integrated_time is not None
    return json.dumps(
        {
            "SignedEntryTimestamp": base64.b64encode(entry.set).decode(),
            "Payload": {
                "body": base64.b64encode(entry.body).decode(),
                "integratedTime": entry.integrated_time,
                "logIndex": entry.log_index,
                "logID": entry.log_id.hex(),
            },
        },
        separators=(",", ":"),
    )


def bundle_tlog_entry(entry: LogEntry) -> dict[str, Any]:
    """The bundle's ``tlogEntries[]`` element (protojson: int64 as strings).

    A Rekor v2 entry has neither an integrated time nor a promise (SET).
    """
    doc: dict[str, Any] = {
        "logIndex": str(entry.log_index),
        "logId": {"keyId": base64.b64encode(entry.log_id).decode()},
        "kindVersion": {"kind": entry.kind, "version": entry.version},
    }
    if entry.set is not None:
        doc["integratedTime"] = str(entry.integrated_time)
        doc["inclusionPromise"] = {"signedEntryTimestamp": base64.b64encode(entry.set).decode()}
    doc["canonicalizedBody"] = base64.b64encode(entry.body).decode()
    if entry.proof is not None:
        doc["inclusionProof"] = {
            "logIndex": str(entry.proof.log_index),
            "rootHash": base64.b64encode(entry.proof.root_hash).decode(),
            "treeSize": str(entry.proof.tree_size),
            "hashes": [base64.b64encode(h).decode() for h in entry.proof.hashes],
            "checkpoint": {"envelope": entry.proof.checkpoint},
        }
    return doc
