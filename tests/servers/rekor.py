"""A small Rekor v1 (and v2) for keyless-signing tests: a real RFC 6962 tree, SETs and checkpoints.

``start_v2`` serves Rekor v2's write API (rekor-tiles ``POST /api/v2/log/entries``):
a TransparencyLogEntry with an inclusion proof to an Ed25519-signed checkpoint,
no SET and no integrated time.

@sigstore/mock's Rekor answers a random log index with a proof for index 0
(PEERS.md §4), so its bundles verify nowhere; this one keeps every leaf,
so each answer carries a true inclusion proof, a signed checkpoint (a C2SP
signed note) and a SET over the RFC 8785 JSON of {body, integratedTime,
logID, logIndex}, as Rekor v1 does.

``fault`` makes it misbehave the ways a client must survive: ``"500"``,
``"other-entry"`` (logs and answers a body with another signature) and
``"forged-set"`` (signs the SET with a key the trusted root does not list).

NOTE: Rekor openapi.yaml (POST /api/v1/log/entries, LogEntry); hashedrekord
and dsse v0.0.1 canonical bodies (rekor pkg/types/*/v0.0.1/entry.go
Canonicalize); C2SP tlog-checkpoint.md, signed-note.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gate import merkle

TREE_ID = 4242


def _canonical(doc: Any) -> bytes:
    """RFC 8785 for the ASCII strings and integers these bodies hold."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical_body(proposed: dict[str, Any]) -> dict[str, Any]:
    """What Rekor stores for a proposed hashedrekord or dsse entry."""
    kind, spec = proposed["kind"], proposed["spec"]
    if kind == "hashedrekord":
        return {"apiVersion": "0.0.1", "kind": kind, "spec": spec}
    if kind == "dsse":
        content = spec["proposedContent"]
        envelope = json.loads(content["envelope"])
        payload = base64.b64decode(envelope["payload"])
        return {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(content["envelope"].encode()).hexdigest(),
                },
                "payloadHash": {
                    "algorithm": "sha256",
                    "value": hashlib.sha256(payload).hexdigest(),
                },
                "signatures": [
                    {"signature": s["sig"], "verifier": v}
                    for s, v in zip(envelope["signatures"], content["verifiers"], strict=True)
                ],
            },
        }
    raise ValueError(f"unsupported kind {kind}")


@dataclass
class Rekor:
    server: ThreadingHTTPServer
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    leaves: list[bytes] = field(default_factory=list)
    fault: str | None = None
    posts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def public_der(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    @property
    def log_id(self) -> bytes:
        return hashlib.sha256(self.public_der).digest()

    @property
    def key_name(self) -> str:
        """The note's key name is the log's host (sigstore-js matches it against the baseUrl)."""
        return f"127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, proposed: dict[str, Any]) -> dict[str, Any]:
        body = canonical_body(proposed)
        if self.fault == "other-entry":
            spec = body["spec"]
            sig = spec["signature"] if "signature" in spec else spec["signatures"][0]
            field_ = "content" if "content" in sig else "signature"
            sig[field_] = base64.b64encode(b"\x30" + bytes(70)).decode()
        raw = _canonical(body)
        with self.lock:
            index = len(self.leaves)
            self.leaves.append(merkle.leaf_hash(raw))
            leaves = list(self.leaves)
        size, root = len(leaves), merkle.root(leaves)
        proof = merkle.inclusion_proof(index, leaves)
        integrated = int(time.time())
        signer = ec.generate_private_key(ec.SECP256R1()) if self.fault == "forged-set" else self.key
        promise = _canonical(
            {
                "body": base64.b64encode(raw).decode(),
                "integratedTime": integrated,
                "logID": self.log_id.hex(),
                "logIndex": index,
            }
        )
        note = f"{self.key_name} - {TREE_ID}\n{size}\n{base64.b64encode(root).decode()}\n"
        note_sig = self.key.sign(note.encode(), ec.ECDSA(hashes.SHA256()))
        signature = base64.b64encode(self.log_id[:4] + note_sig).decode()
        checkpoint = f"{note}\n\u2014 {self.key_name} {signature}\n"
        return {
            merkle.leaf_hash(raw).hex(): {
                "body": base64.b64encode(raw).decode(),
                "integratedTime": integrated,
                "logID": self.log_id.hex(),
                "logIndex": index,
                "verification": {
                    "signedEntryTimestamp": base64.b64encode(
                        signer.sign(promise, ec.ECDSA(hashes.SHA256()))
                    ).decode(),
                    "inclusionProof": {
                        "checkpoint": checkpoint,
                        "hashes": [h.hex() for h in proof],
                        "logIndex": index,
                        "rootHash": root.hex(),
                        "treeSize": size,
                    },
                },
            }
        }


class _Log(Protocol):
    fault: str | None
    posts: int

    def add(self, proposed: dict[str, Any]) -> dict[str, Any]: ...


def _serve(path: str, holder: list[_Log]) -> ThreadingHTTPServer:
    """POST ``path`` -> ``add`` (201), the ``500`` fault, and nothing else, for ``holder[0]``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            log = holder[0]
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, doc = 404, {"message": "not found"}
            if self.path == path:
                log.posts += 1
                if log.fault == "500":
                    status, doc = 500, {"message": "internal error"}
                else:
                    try:
                        status, doc = 201, log.add(json.loads(raw))
                    except (ValueError, KeyError, TypeError, InvalidSignature) as e:
                        status, doc = 400, {"message": str(e) or type(e).__name__}
            body = json.dumps(doc).encode()
            self.send_response(status)
            if status == 201 and path.startswith("/api/v1/"):
                # NOTE: Rekor v1 names the new entry's UUID in ETag and Location; sigstore-go
                # (cosign v3) looks the entry up in the answer by that ETag.
                (uuid,) = doc
                self.send_header("ETag", uuid)
                self.send_header("Location", f"{path}/{uuid}")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start() -> Rekor:
    holder: list[_Log] = []
    rekor = Rekor(_serve("/api/v1/log/entries", holder))
    holder.append(rekor)
    return rekor


V2_TREE_ORIGIN = "127.0.0.1"
"""The v2 checkpoint origin and note key name: the log's hostname, which sigstore-go
(pkg/verify/tlog.go) takes from the trusted root's baseUrl and sigstore-js matches."""


def v2_body(request: dict[str, Any]) -> dict[str, Any]:
    """What rekor-tiles logs for a hashedRekordRequestV002 (pkg/types/hashedrekord
    ToLogEntry): the signature as sent and the digest with its algorithm."""
    inner = request["hashedRekordRequestV002"]
    return {
        "apiVersion": "0.0.2",
        "kind": "hashedrekord",
        "spec": {
            "hashedRekordV002": {
                "data": {"algorithm": "SHA2_256", "digest": inner["digest"]},
                "signature": inner["signature"],
            }
        },
    }


@dataclass
class RekorV2:
    """A Rekor v2 (rekor-tiles) write endpoint with an Ed25519 checkpoint key, as the
    public-good v2 logs have; the log ID is the C2SP note key ID of that key.

    ``fault``: ``"500"``, ``"other-entry"`` (logs another signature),
    ``"forged-checkpoint"`` (signs the checkpoint with a key the root does not list),
    ``"bad-proof"`` (an inclusion proof that does not reach the root it names).
    """

    server: ThreadingHTTPServer
    key: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)
    leaves: list[bytes] = field(default_factory=list)
    fault: str | None = None
    posts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def public_der(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    @property
    def log_id(self) -> bytes:
        """NOTE: C2SP signed-note key ID for Ed25519: SHA-256(name || 0x0A || 0x01 || key)."""
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return hashlib.sha256(V2_TREE_ORIGIN.encode() + b"\n\x01" + raw).digest()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, request: dict[str, Any]) -> dict[str, Any]:
        """Check the signature as rekor-tiles does, log the body, answer the entry."""
        body = v2_body(request)
        inner = body["spec"]["hashedRekordV002"]
        cert = x509.load_der_x509_certificate(
            base64.b64decode(inner["signature"]["verifier"]["x509Certificate"]["rawBytes"])
        )
        public = cert.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(  # raises InvalidSignature: a 400
            base64.b64decode(inner["signature"]["content"]),
            base64.b64decode(inner["data"]["digest"]),
            ec.ECDSA(Prehashed(hashes.SHA256())),
        )
        if self.fault == "other-entry":
            inner["signature"]["content"] = base64.b64encode(b"\x30" + bytes(70)).decode()
        raw = _canonical(body)
        with self.lock:
            index = len(self.leaves)
            self.leaves.append(merkle.leaf_hash(raw))
            leaves = list(self.leaves)
        size, root = len(leaves), merkle.root(leaves)
        proof = merkle.inclusion_proof(index, leaves)
        if self.fault == "bad-proof":
            proof = [bytes(32), *proof]  # a path that cannot lead to the root
        signer = (
            ed25519.Ed25519PrivateKey.generate() if self.fault == "forged-checkpoint" else self.key
        )
        note = f"{V2_TREE_ORIGIN}\n{size}\n{base64.b64encode(root).decode()}\n"
        signature = base64.b64encode(self.log_id[:4] + signer.sign(note.encode())).decode()
        b64 = base64.b64encode
        # NOTE: protojson: int64 as strings, bytes as base64 (sigstore_rekor.proto).
        return {
            "logIndex": str(index),
            "logId": {"keyId": b64(self.log_id).decode()},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.2"},
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": b64(root).decode(),
                "treeSize": str(size),
                "hashes": [b64(h).decode() for h in proof],
                "checkpoint": {"envelope": f"{note}\n\u2014 {V2_TREE_ORIGIN} {signature}\n"},
            },
            "canonicalizedBody": b64(raw).decode(),
        }


def start_v2() -> RekorV2:
    holder: list[_Log] = []
    rekor = RekorV2(_serve("/api/v2/log/entries", holder))
    holder.append(rekor)
    return rekor
