"""A whole keyless Sigstore stack on loopback: OIDC issuer, Fulcio, Rekor, trusted root.

Fulcio and a timestamp authority are @sigstore/mock's CA, CT log and TSA
behind ``tests/peers/fulcio-mock.mjs`` (which checks the token against our
issuer's JWKS and the proof of possession); Rekor is
``tests.servers.rekor``. ``trusted_root.json`` lists exactly that CA, CT
log, TSA and Rekor, so what the stack certifies verifies with it and
nothing else. ``close()`` stops the node process and servers.

``FulcioProxy`` stands between Sealgate and that Fulcio to misbehave on
purpose: answer an HTTP status, or ask for a certificate for *another* key
(with a valid proof for it), so the answer certifies a key Sealgate never held.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.servers import oidc, rekor

PEERS = Path(__file__).resolve().parents[1] / "peers"
_VALID = {"start": "2020-01-01T00:00:00Z"}


@dataclass
class Stack:
    issuer: oidc.OIDCIssuer
    rekor: rekor.Rekor
    fulcio_url: str
    node: subprocess.Popen[str]
    root_path: Path
    config_path: Path
    rekor_v2: rekor.RekorV2 | None = None
    """With ``start(..., rekor_v2=True)``: a Rekor v2 log, listed in the root, preferred by
    the signing config (next to the v1 log), whose ``tsaUrls`` names the TSA."""

    @property
    def tsa_url(self) -> str:
        """The mock's RFC 3161 timestamp authority (served by the same node process)."""
        return f"{self.fulcio_url}/api/v1/timestamp"

    def close(self) -> None:
        if self.node.stdin:
            self.node.stdin.close()
        try:
            self.node.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.node.kill()
            self.node.wait(timeout=10)
        self.rekor.close()
        if self.rekor_v2 is not None:
            self.rekor_v2.close()
        self.issuer.close()


def start(node: str, directory: Path, *, rekor_v2: bool = False) -> Stack:
    issuer = oidc.start()
    log = rekor.start()
    log_v2 = rekor.start_v2() if rekor_v2 else None
    proc = subprocess.Popen(
        [node, str(PEERS / "fulcio-mock.mjs"), issuer.jwks_url],
        cwd=PEERS,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        log.close()
        if log_v2 is not None:
            log_v2.close()
        issuer.close()
        raise RuntimeError("fulcio-mock.mjs did not start")
    info = json.loads(line)
    root = directory / "trusted_root.json"
    root.write_text(json.dumps(trusted_root(info, log, log_v2)))
    config = directory / "signing_config.json"
    config.write_text(json.dumps(signing_config(info["url"], log.url, log_v2)))
    return Stack(issuer, log, info["url"], proc, root, config, log_v2)


def trusted_root(
    info: dict[str, Any], log: rekor.Rekor, log_v2: rekor.RekorV2 | None = None
) -> dict[str, Any]:
    """NOTE: protobuf-specs sigstore_trustroot.proto TrustedRoot v0.1."""

    def key(raw: str, details: str = "PKIX_ECDSA_P256_SHA_256") -> dict[str, Any]:
        return {"rawBytes": raw, "keyDetails": details, "validFor": _VALID}

    tlogs = [
        {
            "baseUrl": log.url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": key(base64.b64encode(log.public_der).decode()),
            "logId": {"keyId": base64.b64encode(log.log_id).decode()},
        }
    ]
    if log_v2 is not None:
        tlogs.append(
            {
                "baseUrl": log_v2.url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": key(base64.b64encode(log_v2.public_der).decode(), "PKIX_ED25519"),
                "logId": {"keyId": base64.b64encode(log_v2.log_id).decode()},
            }
        )
    return {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": tlogs,
        "certificateAuthorities": [
            {
                "subject": {"organization": "sigstore.mock", "commonName": "sigstore"},
                "uri": info["url"],
                "certChain": {"certificates": [{"rawBytes": info["rootCertificate"]}]},
                "validFor": _VALID,
            }
        ],
        "ctlogs": [
            {
                "baseUrl": "https://ctfe.local",
                "hashAlgorithm": "SHA2_256",
                "publicKey": key(info["ctlogPublicKey"]),
                "logId": {"keyId": info["ctlogId"]},
            }
        ],
        "timestampAuthorities": [
            {
                "subject": {"organization": "sigstore.mock", "commonName": "tsa"},
                "uri": info["url"] + "/api/v1/timestamp",
                "certChain": {"certificates": [{"rawBytes": c} for c in info["tsaCertificates"]]},
                "validFor": _VALID,
            }
        ],
    }


def signing_config(
    fulcio: str, rekor_url: str, log_v2: rekor.RekorV2 | None = None
) -> dict[str, Any]:
    """NOTE: protobuf-specs SigningConfig v0.2 (the v1 log first: clients must pick v2)."""

    def service(url: str, major: int = 1) -> dict[str, Any]:
        return {"url": url, "majorApiVersion": major, "validFor": _VALID, "operator": "local"}

    logs = [service(rekor_url)]
    tsas = []
    if log_v2 is not None:
        logs.append(service(log_v2.url, 2))
        tsas.append(service(fulcio + "/api/v1/timestamp"))
    return {
        "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
        "caUrls": [service(fulcio)],
        "oidcUrls": [],
        "rekorTlogUrls": logs,
        "tsaUrls": tsas,
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaConfig": {"selector": "ANY"},
    }


class FulcioProxy:
    """``status``: answer it; ``"other-key"``: certify a fresh key instead of the sender's."""

    def __init__(self, upstream: str, mode: str) -> None:
        self.calls = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                proxy.calls += 1
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if mode != "other-key":
                    status, body = int(mode), b'{"message":"refused"}'
                else:
                    req = json.loads(raw)
                    token = req["credentials"]["oidcIdentityToken"]
                    claims = jwt.decode(token, options={"verify_signature": False})
                    other = ec.generate_private_key(ec.SECP256R1())
                    pem = other.public_key().public_bytes(
                        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
                    )
                    proof = other.sign(
                        (claims.get("email") or claims["sub"]).encode(), ec.ECDSA(hashes.SHA256())
                    )
                    req["publicKeyRequest"] = {
                        "publicKey": {"algorithm": "ECDSA", "content": pem.decode()},
                        "proofOfPossession": base64.b64encode(proof).decode(),
                    }
                    answer = requests.post(upstream + "/api/v2/signingCert", json=req, timeout=30)
                    status, body = answer.status_code, answer.content
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
