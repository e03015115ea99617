"""Helpers for admission tests and the benchmark: a CA, a served webhook, reviews from models.

Requests are built from the official ``kubernetes`` client's models and
serialised with its ``ApiClient``, so the JSON is what an API server sends;
the webhook is reached over real TLS with the CA bundle a webhook
configuration would carry.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from requests.adapters import HTTPAdapter

from gate import admission, commands
from gate.admission import Mode
from gate.admission._pull import PullSecrets
from gate.policy import Policy
from gate.registry import RegistryClient
from gate.verify import RegistryStore, Verifier

RESPONSE_FIELDS = {"uid", "allowed", "status", "patch", "patchType", "auditAnnotations", "warnings"}
"""``admission.k8s.io/v1`` AdmissionResponse, every field it has."""


@dataclass(frozen=True)
class CA:
    """A CA certificate (the webhook configuration's caBundle) and a way to issue server pairs."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    bundle: Path

    @classmethod
    def create(cls, directory: Path) -> CA:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealgate test CA")])
        cert = (
            _builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        bundle = directory / "ca.crt"
        bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(cert, key, bundle)

    def issue(
        self,
        cert_path: Path,
        key_path: Path,
        *,
        expired: bool = False,
        common_name: str = "127.0.0.1",
    ) -> int:
        """Write a server pair for 127.0.0.1 and the in-cluster name; returns its serial."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        names = [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.DNSName("sealgate-admission.sealgate.svc"),
        ]
        cert = (
            _builder(subject, self.cert.subject, key.public_key(), expired=expired)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return int(cert.serial_number)


def _builder(
    subject: x509.Name, issuer: x509.Name, public: Any, *, expired: bool = False
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2 if expired else 0)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


@dataclass
class Webhook:
    """A running webhook and a keep-alive HTTPS session that trusts its CA."""

    server: admission.AdmissionServer
    admitter: admission.Admitter
    metrics: admission.AdmissionMetrics
    session: requests.Session
    ctx: commands.Context

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    def post(self, endpoint: str, review: dict[str, Any]) -> dict[str, Any]:
        answer = self.session.post(f"{self.url}/{endpoint}?timeout=10s", json=review, timeout=30)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        check_response(body, review)
        return body["response"]  # type: ignore[no-any-return]


@contextlib.contextmanager
def serve(
    policy_file: Path,
    ca: CA,
    directory: Path,
    *,
    mode: Mode = Mode.ENFORCE,
    mutate: bool = False,
    ctx: commands.Context | None = None,
    connections: int = 16,
    wait: float = 8.0,
    pull_secrets: PullSecrets | None = None,
    client_ca: Path | None = None,
) -> Iterator[Webhook]:
    """Start the webhook on 127.0.0.1 (a free port) with a fresh server pair; stop it after."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "tls.crt", directory / "tls.key"
    ca.issue(cert, key)
    ctx = ctx or commands.Context(
        ledger_path=str(directory / "ledger.db"), state_dir=str(directory / "state")
    )

    def verifier(pol: Policy, client: RegistryClient | None) -> Verifier:
        stores = ctx.stores(pol)
        if client is not None:  # a pod's pull secrets, as `admission serve` does
            stores = [RegistryStore(client), *stores[1:]]
        return Verifier(pol, client=client or ctx.client, stores=stores, workers=ctx.workers)

    policies = admission.PolicySource(str(policy_file))
    ctx.stores(policies.current())  # as serve does: the client and ledger exist before threads
    admitter = admission.Admitter(
        policies,
        verifier,
        admission.VerdictCache(wait=wait),
        mode=mode,
        mutate=mutate,
        pull_secrets=pull_secrets,
    )
    metrics = admission.AdmissionMetrics()
    server = admission.AdmissionServer(
        admitter,
        admission.TLSFiles(str(cert), str(key), client_ca=str(client_ca) if client_ca else None),
        "127.0.0.1:0",
        metrics,
    )
    session = requests.Session()
    session.trust_env = False  # no proxies, and no REQUESTS_CA_BUNDLE over our CA
    session.verify = str(ca.bundle)
    session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=connections))
    try:
        with server.start():
            yield Webhook(server, admitter, metrics, session, ctx)
    finally:
        session.close()
        ctx.close()


def review(
    obj: Any, *, namespace: str = "default", dry_run: bool = False, operation: str = "CREATE"
) -> dict[str, Any]:
    """An AdmissionReview request for a kubernetes client model, as the API server sends it."""
    from kubernetes.client import ApiClient

    body = ApiClient().sanitize_for_serialization(obj)
    kind = body["kind"]
    group, _, version = body["apiVersion"].rpartition("/")
    resource = {"Pod": "pods", "Deployment": "deployments", "CronJob": "cronjobs"}[kind]
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": body["metadata"].get("name", ""),
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
            "object": body,
            "oldObject": None,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def pod(
    name: str, *images: str, init: tuple[str, ...] = (), labels: dict[str, str] | None = None
) -> Any:
    from kubernetes.client import V1Container, V1ObjectMeta, V1Pod, V1PodSpec

    return V1Pod(
        api_version="v1",
        kind="Pod",
        metadata=V1ObjectMeta(name=name, labels=labels or {"app": name}),
        spec=V1PodSpec(
            containers=[V1Container(name=f"c{i}", image=image) for i, image in enumerate(images)],
            init_containers=[V1Container(name=f"init{i}", image=im) for i, im in enumerate(init)]
            or None,
        ),
    )


def check_response(body: dict[str, Any], request: dict[str, Any]) -> None:
    """Every field of the response against the admission.k8s.io/v1 schema and the request."""
    from kubernetes.client import V1Status

    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    answer = body["response"]
    assert set(answer) <= RESPONSE_FIELDS, set(answer) - RESPONSE_FIELDS
    assert answer["uid"] == request["request"]["uid"]
    assert isinstance(answer["allowed"], bool)
    if "status" in answer:
        assert set(answer["status"]) <= set(V1Status.attribute_map.values())
        assert isinstance(answer["status"].get("code", 0), int)
        assert isinstance(answer["status"].get("message", ""), str)
    if not answer["allowed"]:
        assert answer["status"]["code"] == 403 and answer["status"]["message"]
    for warning in answer.get("warnings", []):
        assert isinstance(warning, str) and 0 < len(warning) <= 256
    assert ("patch" in answer) == ("patchType" in answer)
    if "patch" in answer:
        assert answer["patchType"] == "JSONPatch"
        assert isinstance(json.loads(base64.b64decode(answer["patch"], validate=True)), list)
