"""Pods' imagePullSecrets, read through a Kubernetes API, as their registry credentials.

``sealgate admission serve --kubeconfig`` runs as users run it (its own
process, real TLS) against ``tests/servers/kubernetes_api.py`` (HTTPS with its
own CA, bearer token checked, Secrets and Status objects from the official
client's models) and docker-registry behind a bearer-token server that refuses
anonymous pulls. The same signed image is admitted for the pod whose secret
can read it and denied everywhere else: without a secret (the verdict found
with another namespace's secret is not reused), with a secret filed under
another host (never sent), with a secret the webhook may not read (403), and
with one that does not exist (404). The password never shows in a response,
the log, or the metrics.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes.client import (
    V1Container,
    V1Deployment,
    V1DeploymentSpec,
    V1LabelSelector,
    V1LocalObjectReference,
    V1ObjectMeta,
    V1PodSpec,
    V1PodTemplateSpec,
)

from gate import keys
from gate.sign import sign_image
from tests.admission_wire import CA, check_response, pod, review
from tests.servers.kubernetes_api import KubernetesAPI, docker_config_json

from ..conftest import ROOT
from .conftest import RegistryServer, free_port, push_random_image

pytestmark = pytest.mark.integration
DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"


def _with_secrets(obj: Any, *names: str) -> Any:
    obj.spec.image_pull_secrets = [V1LocalObjectReference(name=n) for n in names] or None
    return obj


def _deployment(name: str, image: str) -> Any:
    labels = {"app": name}
    return V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=V1ObjectMeta(name=name, labels=labels),
        spec=V1DeploymentSpec(
            selector=V1LabelSelector(match_labels=labels),
            template=V1PodTemplateSpec(
                metadata=V1ObjectMeta(labels=labels),
                spec=V1PodSpec(containers=[V1Container(name="app", image=image)]),
            ),
        ),
    )


class Served:
    def __init__(self, port: int, metrics_port: int, session: requests.Session) -> None:
        self.port, self.metrics_port, self.session = port, metrics_port, session

    def post(self, endpoint: str, request: dict[str, Any]) -> dict[str, Any]:
        answer = self.session.post(f"https://127.0.0.1:{self.port}/{endpoint}", json=request,
                                   timeout=30)  # fmt: skip
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        check_response(body, request)
        return body["response"]  # type: ignore[no-any-return]


@pytest.fixture
def world(
    token_registry: RegistryServer, tmp_path: Path, isolated_docker_config: Path
) -> Iterator[dict[str, Any]]:
    """A signed image in a registry that refuses anonymous pulls, an API with its secrets,
    and `admission serve --kubeconfig` started against both."""
    key = keys.generate()
    repo = f"adm/pull/{tmp_path.name[-24:].lower().replace('_', '-')}"
    with token_registry.client() as client:
        signed = push_random_image(token_registry, repo, "1.0", client=client)
        sign_image(client, signed, key)
    assert token_registry.username and token_registry.password
    user, password = token_registry.username, token_registry.password
    api = KubernetesAPI().start(tmp_path / "api")
    good = docker_config_json(token_registry.host, user, password)
    api.add_secret("team-a", "regcred", good, DOCKERCONFIGJSON)
    api.add_service_account("team-a", "default", ["regcred"])
    api.add_secret("team-b", "elsewhere", docker_config_json("ghcr.io", user, password),
                   DOCKERCONFIGJSON)  # fmt: skip
    api.add_secret("team-b", "opaque", {"password": password.encode()}, "Opaque")
    api.add_secret("team-c", "regcred", good, DOCKERCONFIGJSON)
    api.forbidden.add("team-c")
    legacy = {".dockercfg": json.dumps(json.loads(good[".dockerconfigjson"])["auths"]).encode()}
    api.add_secret("team-e", "legacy", legacy, "kubernetes.io/dockercfg")
    (tmp_path / "ci.pub").write_bytes(key.public_key.pem)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nsigners: [{name: ci, key: ci.pub}]\n"
        "rules: [{match: '**', require: {signers: [ci]}, pinned: warn}]\n"
    )
    ca = CA.create(tmp_path)
    ca.issue(tmp_path / "tls.crt", tmp_path / "tls.key")
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SEALGATE_LEDGER": str(tmp_path / "l.db"),
           "SEALGATE_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    command = [sys.executable, "-m", "gate.cli", "admission", "serve", "--policy", str(policy),
               "--tls-cert", str(tmp_path / "tls.crt"), "--tls-key", str(tmp_path / "tls.key"),
               "--addr", f"127.0.0.1:{port}", "--mutate",
               "--kubeconfig", str(api.kubeconfig(tmp_path / "kubeconfig")),
               "--metrics-addr", f"127.0.0.1:{metrics_port}", "--drain-seconds", "0"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    session = requests.Session()
    session.trust_env, session.verify = False, str(ca.bundle)
    found: dict[str, Any] = {
        "image": f"{signed.name}:1.0",
        "signed": signed,
        "api": api,
        "password": password,
        "repo": repo,
        "registry": token_registry,
    }
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if session.get(f"https://127.0.0.1:{port}/readyz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        found["served"] = Served(port, metrics_port, session)
        yield found
    finally:
        session.close()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
        api.stop()
        found["log"] = err
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert password not in err  # secrets never reach the log


def _token_users(world: dict[str, Any]) -> list[str | None]:
    server = world["registry"].token_server
    return [r.username for r in server.requests if any(world["repo"] in s for s in r.scopes)]


def test_a_pods_pull_secret_reads_its_image_and_is_not_lent_to_other_pods(
    world: dict[str, Any],
) -> None:
    served: Served = world["served"]
    image, password = world["image"], world["password"]
    # No secret: the registry refuses anonymous pulls, so the image cannot be verified.
    before = served.post("validate", review(pod("web", image), namespace="team-a"))
    assert before["allowed"] is False
    assert "is ERROR" in before["status"]["message"]
    assert "needs credentials" in before["status"]["message"], before["status"]["message"]

    # Its own pull secret: verified, pinned, allowed.
    answer = served.post("mutate", review(_with_secrets(pod("web", image), "regcred"),
                                          namespace="team-a"))  # fmt: skip
    assert answer["allowed"] is True, answer
    patch = json.loads(base64.b64decode(answer["patch"]))
    assert patch[0]["value"] == f"{image}@{world['signed'].digest}"
    asked = len(_token_users(world))
    assert world["registry"].token_server.requests[-1].username is not None

    # Another namespace's pod without the secret gets neither the verdict nor the digest.
    other = served.post("mutate", review(pod("web", image), namespace="team-b"))
    assert other["allowed"] is False and "patch" not in other
    assert "needs credentials" in other["status"]["message"]
    assert all(u is None for u in _token_users(world)[asked:])

    # A secret filed under another registry host is never sent to this one.
    asked = len(_token_users(world))
    elsewhere = served.post("validate", review(_with_secrets(pod("web", image), "elsewhere"),
                                               namespace="team-b"))  # fmt: skip
    assert elsewhere["allowed"] is False
    assert all(u is None for u in _token_users(world)[asked:])

    # The same pull secret in another pod of team-a is served from the cache.
    again = served.post("validate", review(_with_secrets(pod("api", image), "regcred"),
                                           namespace="team-a"))  # fmt: skip
    assert again["allowed"] is True

    # A Deployment without imagePullSecrets gets its service account's, as its pods will.
    deployment = served.post("validate", review(_deployment("web", image), namespace="team-a"))
    assert deployment["allowed"] is True, deployment

    # kubernetes.io/dockercfg works as well.
    legacy = served.post("validate", review(_with_secrets(pod("web", image), "legacy"),
                                            namespace="team-e"))  # fmt: skip
    assert legacy["allowed"] is True, legacy

    api: KubernetesAPI = world["api"]
    assert api.requests and all(r.authorized for r in api.requests)
    assert {r.path for r in api.requests} >= {
        "/api/v1/namespaces/team-a/secrets/regcred",
        "/api/v1/namespaces/team-a/serviceaccounts/default",
    }
    metrics = requests.get(f"http://127.0.0.1:{served.metrics_port}/metrics", timeout=5).text
    for text in (json.dumps(answer), json.dumps(other), metrics):
        assert password not in text


@pytest.mark.parametrize(
    ("namespace", "secret", "says"),
    [
        ("team-c", "regcred", "the webhook may not read secret team-c/regcred (403 Forbidden)"),
        ("team-d", "regcred", "secret team-d/regcred does not exist"),
        ("team-b", "opaque", "secret team-b/opaque is of type Opaque; an imagePullSecret must be"),
    ],
)
def test_a_pull_secret_that_cannot_be_used_denies_with_one_sentence(
    world: dict[str, Any], namespace: str, secret: str, says: str
) -> None:
    request = review(_with_secrets(pod("web", world["image"]), secret), namespace=namespace)
    answer = world["served"].post("validate", request)
    assert answer["allowed"] is False
    message = answer["status"]["message"]
    assert f"image {world['image']} is ERROR: its imagePullSecrets cannot be used: {says}" in (
        message
    ), message
    assert world["password"] not in message
