"""The admission webhook at the wire: model-built AdmissionReviews over TLS, real registry.

Each test posts what an API server would post (``kubernetes`` client models,
serialised by its ApiClient) to a webhook started on 127.0.0.1 with a CA
generated here, against docker-registry with images really signed by
``sealgate sign``; every response is checked against the v1 schema, and every
patch is applied with ``jsonpatch`` and read back into the client's models.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from cryptography import x509
from kubernetes.client import (
    ApiClient,
    V1Container,
    V1Deployment,
    V1DeploymentSpec,
    V1LabelSelector,
    V1ObjectMeta,
    V1PodSpec,
    V1PodTemplateSpec,
)

from gate import keys
from gate.admission import Mode
from gate.cli import main
from gate.sign import sign_image
from tests.admission_wire import CA, Webhook, pod, review, serve

from .conftest import RegistryServer, free_port, push_random_image

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return CA.create(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def signer(tmp_path: Path) -> tuple[keys.PrivateKey, Path]:
    key = keys.generate()
    private, _ = keys.write_key_pair(str(tmp_path / "ci"), key, None)
    return key, Path(private)


def _policy(tmp_path: Path, key: keys.PrivateKey, extra: str = "") -> Path:
    (tmp_path / "ci.pub").write_bytes(key.public_key.pem)
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\n"
        "signers: [{name: ci, key: ci.pub}]\n"
        "rules:\n"
        '  - match: "**"\n'
        "    require: {signers: [ci]}\n"
        "    pinned: required\n" + extra
    )
    return path


@pytest.fixture
def world(
    registry: RegistryServer,
    signer: tuple[keys.PrivateKey, Path],
    isolated_docker_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """Signed, unsigned, signed-then-revoked and signed-then-unsupported images, by digest."""
    monkeypatch.setenv("SEALGATE_LEDGER", str(tmp_path / "cli-ledger.db"))
    monkeypatch.setenv("SEALGATE_STATE_DIR", str(tmp_path / "cli-state"))
    key, private = signer
    name = tmp_path.name.lower().replace("_", "-")[-40:]
    with registry.client() as client:
        signed = push_random_image(registry, f"adm/{name}/signed", "1.0", client=client)
        unsigned = push_random_image(registry, f"adm/{name}/unsigned", "1.0", client=client)
        revoked = push_random_image(registry, f"adm/{name}/revoked", "1.0", client=client)
        deprecated = push_random_image(registry, f"adm/{name}/deprecated", "1.0", client=client)
        for image in (signed, revoked, deprecated):
            sign_image(client, image, key)
    pinned = {
        k: f"{r.name}@{r.digest}"
        for k, r in (
            ("signed", signed),
            ("unsigned", unsigned),
            ("revoked", revoked),
            ("deprecated", deprecated),
        )
    }
    assert (
        main(["untrust", pinned["revoked"], "--key", str(private), "--reason", "CVE-2026-7"]) == 0
    )
    deprecate = ["unsupport", pinned["deprecated"], "--key", str(private), "--reason", "use v2"]
    assert main(deprecate) == 0
    return {"key": key, "refs": {"signed": signed, "unsigned": unsigned}, **pinned}


@pytest.fixture
def webhook(world: dict[str, Any], ca: CA, tmp_path: Path) -> Iterator[Webhook]:
    with serve(_policy(tmp_path, world["key"]), ca, tmp_path / "hook") as hook:
        yield hook


def test_signed_pod_is_allowed_and_the_uid_echoed(webhook: Webhook, world: dict[str, Any]) -> None:
    request = review(pod("web", world["signed"]))
    answer = webhook.post("validate", request)
    assert answer["allowed"] is True
    assert answer["uid"] == request["request"]["uid"]
    assert "warnings" not in answer and "patch" not in answer


def test_unsigned_pod_is_denied_with_a_message_naming_image_status_and_why(
    webhook: Webhook, world: dict[str, Any]
) -> None:
    answer = webhook.post("validate", review(pod("web", world["signed"], world["unsigned"])))
    assert answer["allowed"] is False
    message = answer["status"]["message"]
    assert "Pod/web in namespace default" in message
    assert f"container c1: image {world['unsigned']} is UNKNOWN" in message
    assert "no" in message and "signature" in message
    assert world["signed"] not in message  # only what failed is listed


def test_revoked_image_is_denied_as_untrusted_with_the_reason(
    webhook: Webhook, world: dict[str, Any]
) -> None:
    answer = webhook.post("validate", review(pod("web", world["revoked"])))
    assert answer["allowed"] is False
    assert f"image {world['revoked']} is UNTRUSTED" in answer["status"]["message"]
    assert "CVE-2026-7" in answer["status"]["message"]


def test_unsupported_image_is_allowed_with_a_warning(
    webhook: Webhook, world: dict[str, Any]
) -> None:
    answer = webhook.post("validate", review(pod("web", world["deprecated"])))
    assert answer["allowed"] is True and "status" not in answer
    (warning,) = answer["warnings"]
    assert f"image {world['deprecated']} is UNSUPPORTED" in warning and "use v2" in warning


def test_init_containers_are_checked(webhook: Webhook, world: dict[str, Any]) -> None:
    answer = webhook.post(
        "validate", review(pod("web", world["signed"], init=(world["unsigned"],)))
    )
    assert answer["allowed"] is False
    assert "initContainer init0" in answer["status"]["message"]


def test_unpinned_signed_pod_is_patched_to_the_verified_digest(
    world: dict[str, Any], ca: CA, tmp_path: Path
) -> None:
    tag = f"{world['refs']['signed'].name}:1.0"
    policy = _policy(tmp_path, world["key"])
    with serve(policy, ca, tmp_path / "hook", mutate=True) as hook:
        obj = pod("web", tag, world["signed"])
        request = review(obj)
        answer = hook.post("mutate", request)
        assert answer["allowed"] is True
        patch = json.loads(base64.b64decode(answer["patch"]))
        assert patch == [
            {
                "op": "replace",
                "path": "/spec/containers/0/image",
                "value": f"{tag}@{world['refs']['signed'].digest}",
            }
        ]
        patched = jsonpatch.apply_patch(request["request"]["object"], patch)
        model = _model(patched, "V1Pod")
        assert model.spec.containers[0].image == f"{tag}@{world['refs']['signed'].digest}"
        assert model.spec.containers[1].image == world["signed"]
        assert ApiClient().sanitize_for_serialization(model) == patched  # nothing else changed
        # What runs is what was checked: the patched pod passes /validate under pinned: required.
        assert hook.post("validate", review(model))["allowed"] is True
        # Without the patch, the same tag fails pinned: required at /validate.
        denied = hook.post("validate", review(obj))
        assert denied["allowed"] is False and "not pinned" in denied["status"]["message"]


def test_a_deployments_pod_template_is_patched_too(
    world: dict[str, Any], ca: CA, tmp_path: Path
) -> None:
    tag = f"{world['refs']['signed'].name}:1.0"
    labels = {"app": "web"}
    deployment = V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=V1ObjectMeta(name="web"),
        spec=V1DeploymentSpec(
            selector=V1LabelSelector(match_labels=labels),
            template=V1PodTemplateSpec(
                metadata=V1ObjectMeta(labels=labels),
                spec=V1PodSpec(containers=[V1Container(name="app", image=tag)]),
            ),
        ),
    )
    with serve(_policy(tmp_path, world["key"]), ca, tmp_path / "hook", mutate=True) as hook:
        request = review(deployment)
        answer = hook.post("mutate", request)
        patched = jsonpatch.apply_patch(
            request["request"]["object"], json.loads(base64.b64decode(answer["patch"]))
        )
        model = _model(patched, "V1Deployment")
        assert (
            model.spec.template.spec.containers[0].image
            == f"{tag}@{world['refs']['signed'].digest}"
        )


def test_unreachable_registry_denies_and_audit_mode_allows_with_a_warning(
    world: dict[str, Any], ca: CA, tmp_path: Path
) -> None:
    gone = f"127.0.0.1:{free_port()}/adm/gone@sha256:{'a' * 64}"
    policy = _policy(tmp_path, world["key"])
    with serve(policy, ca, tmp_path / "enforce") as hook:
        answer = hook.post("validate", review(pod("web", gone)))
        assert answer["allowed"] is False
        assert f"image {gone} is ERROR" in answer["status"]["message"]
    with serve(policy, ca, tmp_path / "audit", mode=Mode.AUDIT) as hook:
        answer = hook.post("validate", review(pod("web", gone, world["unsigned"])))
        assert answer["allowed"] is True and "status" not in answer
        warnings = answer["warnings"]
        assert any("audit mode, allowed" in w and gone in w and "ERROR" in w for w in warnings)
        assert any(world["unsigned"] in w and "UNKNOWN" in w for w in warnings)


def test_a_hung_registry_is_denied_in_time_with_a_clear_message(
    world: dict[str, Any], ca: CA, tmp_path: Path
) -> None:
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # connections complete in the backlog and are never answered
    image = f"127.0.0.1:{hung.getsockname()[1]}/adm/hung@sha256:{'b' * 64}"
    try:
        with serve(_policy(tmp_path, world["key"]), ca, tmp_path / "hook", wait=1.0) as hook:
            started = time.monotonic()
            answer = hook.post("validate", review(pod("web", image)))
            assert time.monotonic() - started < 5  # well inside the API server's 10 s
            assert answer["allowed"] is False
            assert f"image {image} is ERROR" in answer["status"]["message"]
            assert "did not finish within 1 s" in answer["status"]["message"]
            hung.close()  # resets the waiting connections: the verification ends
            deadline = time.monotonic() + 30
            while hook.admitter.cache.verifications == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert hook.admitter.cache.verifications == 1
    finally:
        hung.close()


def test_dry_run_gets_the_same_answer(webhook: Webhook, world: dict[str, Any]) -> None:
    wet = webhook.post("validate", review(pod("web", world["unsigned"])))
    dry = webhook.post("validate", review(pod("web", world["unsigned"]), dry_run=True))
    assert (dry["allowed"], dry["status"]) == (wet["allowed"], wet["status"])
    metrics = webhook.metrics.exposition().decode()
    assert (
        'sealgate_admissions_total{dry_run="true",endpoint="validate",verdict="denied"} 1.0'
        in metrics
    )


def test_namespaces_are_scoped_by_the_policy(world: dict[str, Any], ca: CA, tmp_path: Path) -> None:
    unsigned = pod("web", world["unsigned"])
    policy = _policy(
        tmp_path,
        world["key"],
        'namespaces:\n  exclude: [kube-system, "sandbox-*"]\n  objectSelector:\n'
        "    matchExpressions: [{key: sealgate.dev/skip, operator: DoesNotExist}]\n",
    )
    with serve(policy, ca, tmp_path / "hook") as hook:
        assert hook.post("validate", review(unsigned, namespace="kube-system"))["allowed"] is True
        assert hook.post("validate", review(unsigned, namespace="sandbox-1"))["allowed"] is True
        assert hook.post("validate", review(unsigned, namespace="prod"))["allowed"] is False
        skipped = pod("web", world["unsigned"], labels={"sealgate.dev/skip": "yes"})
        assert hook.post("validate", review(skipped, namespace="prod"))["allowed"] is True
    with serve(_policy(tmp_path, world["key"]), ca, tmp_path / "default") as hook:
        assert hook.post("validate", review(unsigned, namespace="kube-system"))["allowed"] is True
        assert hook.post("validate", review(unsigned, namespace="default"))["allowed"] is False


def test_a_rotated_key_file_is_a_new_policy_and_cached_verdicts_go(
    world: dict[str, Any], ca: CA, tmp_path: Path
) -> None:
    """Replacing the key file a policy names (the policy file untouched) must not leave the
    old key's TRUSTED verdicts in the cache for their TTL."""
    policy = _policy(tmp_path, world["key"])
    signed = pod("web", world["signed"])
    with serve(policy, ca, tmp_path / "hook") as hook:
        assert hook.post("validate", review(signed))["allowed"] is True
        (tmp_path / "ci.pub").write_bytes(keys.generate().public_key.pem)
        deadline = time.monotonic() + 10  # the policy source looks once a second
        while hook.post("validate", review(signed))["allowed"]:
            assert time.monotonic() < deadline, "the old key's verdict was still served"
            time.sleep(0.2)


def test_rule_namespaces_admit_an_image_in_one_namespace_and_deny_it_in_another(
    world: dict[str, Any], ca: CA, tmp_path: Path
) -> None:
    """A stricter rule for ``prod-*`` (the release key, which signed nothing) before a looser
    one for everywhere else (the ci key): the same signed image passes in dev and fails in
    prod, in either order, so a verdict cached in one namespace is not reused in the other."""
    (tmp_path / "release.pub").write_bytes(keys.generate().public_key.pem)
    (tmp_path / "ci.pub").write_bytes(world["key"].public_key.pem)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\n"
        "signers: [{name: ci, key: ci.pub}, {name: release, key: release.pub}]\n"
        "rules:\n"
        '  - match: "**"\n'
        '    namespaces: {include: ["prod-*"], exclude: [prod-sandbox]}\n'
        "    require: {signers: [release]}\n"
        '  - match: "**"\n'
        "    require: {signers: [ci]}\n"
    )
    signed = pod("web", world["signed"])
    with serve(policy, ca, tmp_path / "hook") as hook:
        assert hook.post("validate", review(signed, namespace="dev"))["allowed"] is True
        denied = hook.post("validate", review(signed, namespace="prod-eu"))
        assert denied["allowed"] is False
        message = denied["status"]["message"]
        assert f"image {world['signed']} is UNTRUSTED" in message, message
        assert "release" in message
        assert hook.post("validate", review(signed, namespace="prod-sandbox"))["allowed"] is True
        assert hook.post("validate", review(signed, namespace="dev"))["allowed"] is True
    with serve(policy, ca, tmp_path / "prod-first") as hook:  # a cold cache, prod asked first
        assert hook.post("validate", review(signed, namespace="prod-us"))["allowed"] is False
        assert hook.post("validate", review(signed, namespace="team-a"))["allowed"] is True


def test_concurrent_requests_for_one_image_share_one_verification(
    webhook: Webhook, world: dict[str, Any]
) -> None:
    answers: list[bool] = []

    def one() -> None:
        answers.append(webhook.post("validate", review(pod("web", world["signed"])))["allowed"])

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert answers == [True] * 8
    assert webhook.admitter.cache.verifications == 1
    metrics = webhook.metrics.exposition().decode()
    assert "sealgate_admission_cache_hit_ratio" in metrics


def test_health_readiness_metrics_and_bad_requests(webhook: Webhook) -> None:
    get = webhook.session.get
    assert get(f"{webhook.url}/healthz", timeout=5).text == "ok\n"
    assert get(f"{webhook.url}/readyz", timeout=5).status_code == 200
    bad = webhook.session.post(f"{webhook.url}/validate", data=b"{}", timeout=5)
    assert bad.status_code == 400 and "not an AdmissionReview" in bad.json()["error"]
    old = webhook.session.post(
        f"{webhook.url}/validate",
        json={"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}},
        timeout=5,
    )
    assert old.status_code == 400 and "admissionReviewVersions: [v1]" in old.json()["error"]
    metrics = get(f"{webhook.url}/metrics", timeout=5).text
    assert (
        'sealgate_admissions_total{dry_run="false",endpoint="validate",verdict="invalid"} 2.0'
        in metrics
    )
    assert "sealgate_admission_seconds_bucket" in metrics


def test_tls_1_2_is_the_floor_and_a_rotated_certificate_is_served(
    webhook: Webhook, ca: CA, tmp_path: Path
) -> None:
    def handshake(context: ssl.SSLContext) -> tuple[str | None, int]:
        address = ("127.0.0.1", webhook.server.port)
        with (
            socket.create_connection(address, timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return tls.version(), int(x509.load_der_x509_certificate(der).serial_number)

    # A client that offers only TLS 1.2 gets in; nothing below 1.2 is offered by the server.
    only_1_2 = ssl.create_default_context(cafile=str(ca.bundle))
    only_1_2.maximum_version = ssl.TLSVersion.TLSv1_2
    version, first = handshake(only_1_2)
    assert version == "TLSv1.2"
    assert webhook.server.tls.context().minimum_version is ssl.TLSVersion.TLSv1_2

    directory = tmp_path / "hook"
    rotated = ca.issue(directory / "tls.crt", directory / "tls.key")
    assert rotated != first
    webhook.server.tls._checked = 0.0  # the files are polled once a second; do not wait for it
    assert handshake(ssl.create_default_context(cafile=str(ca.bundle)))[1] == rotated
    assert webhook.session.get(f"{webhook.url}/healthz", timeout=5).ok

    # A rotated-in certificate that has already expired: served (the files say so), not ready.
    ca.issue(directory / "tls.crt", directory / "tls.key", expired=True)
    webhook.server.tls._checked = 0.0
    ready, why = webhook.server.ready()
    assert not ready and "TLS certificate expired" in why


def _model(data: dict[str, Any], kind: str) -> Any:
    """``data`` read back into the kubernetes client's model (fails on a malformed object)."""

    return ApiClient().deserialize(json.dumps(data), kind, "application/json")
