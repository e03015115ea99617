"""The shipped Kubernetes objects: valid against the kubernetes client's models, and as promised.

Every document is read into the official client's model for its kind and
written back: a misspelt or misplaced field is dropped by the model and the
round trip differs; a missing required field raises. The Helm chart must
render the same objects: tests/integration/test_admission_chart.py renders it
with a real ``helm`` (a Go peer); here its values and Chart.yaml are checked
as plain YAML.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient

from gate import policy
from gate.admission import render_manifests
from gate.cli import build_parser

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "deploy" / "kubernetes" / "sealgate-admission.yaml"
CHART = ROOT / "deploy" / "helm" / "sealgate-admission"
EXAMPLE_POLICY = ROOT / "gate" / "admission" / "templates" / "policy.example.yaml"
MODELS = {
    "Namespace": "V1Namespace",
    "ServiceAccount": "V1ServiceAccount",
    "ConfigMap": "V1ConfigMap",
    "Deployment": "V1Deployment",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
    "Service": "V1Service",
    "ValidatingWebhookConfiguration": "V1ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration": "V1MutatingWebhookConfiguration",
    "ClusterRole": "V1ClusterRole",
    "ClusterRoleBinding": "V1ClusterRoleBinding",
}
RBAC = {"ClusterRole", "ClusterRoleBinding"}


def _documents(text: str) -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs)
    return by_kind


def _round_trip(doc: dict[str, Any]) -> Any:
    client = ApiClient()
    model = client.deserialize(json.dumps(doc), MODELS[doc["kind"]], "application/json")
    assert client.sanitize_for_serialization(model) == doc
    return model


def test_the_shipped_file_is_what_the_command_prints() -> None:
    assert SHIPPED.read_text() == render_manifests(namespace="sealgate")


@pytest.mark.parametrize("mutate", [True, False])
def test_every_object_is_valid_for_its_kubernetes_model(mutate: bool) -> None:
    docs = _documents(render_manifests(namespace="team-sec", mutate=mutate))
    assert set(docs) == set(MODELS) - RBAC - (set() if mutate else {"MutatingWebhookConfiguration"})
    for doc in docs.values():
        _round_trip(doc)


def test_the_deployment_is_locked_down_and_runs_our_own_command_line() -> None:
    docs = _documents(render_manifests(namespace="team-sec", mode="enforce"))
    deployment = _round_trip(docs["Deployment"])
    pod = deployment.spec.template.spec
    assert deployment.spec.replicas == 2
    assert pod.automount_service_account_token is False
    assert pod.security_context.run_as_non_root is True
    (container,) = pod.containers
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.allow_privilege_escalation is False
    assert container.security_context.capabilities.drop == ["ALL"]
    args = build_parser().parse_args(container.args)  # the flags exist and parse
    assert (args.mode, args.mutate, args.addr) == ("enforce", True, "0.0.0.0:8443")
    assert _round_trip(docs["ServiceAccount"]).automount_service_account_token is False
    assert _round_trip(docs["PodDisruptionBudget"]).spec.min_available == 1
    text = docs["ConfigMap"]["data"]["policy.yaml"]
    assert policy.loads(text.encode()).signers  # the shipped example policy loads


def test_webhooks_fail_closed_and_skip_their_own_namespace() -> None:
    bundle = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    docs = _documents(render_manifests(namespace="team-sec", ca_bundle=bundle))
    paths = {
        "ValidatingWebhookConfiguration": "/validate",
        "MutatingWebhookConfiguration": "/mutate",
    }
    for kind, path in paths.items():
        config = _round_trip(docs[kind])
        assert config.metadata.annotations is None  # a caBundle given: no cert-manager injection
        (hook,) = config.webhooks
        assert (hook.failure_policy, hook.timeout_seconds, hook.side_effects) == (
            "Fail",
            10,
            "None",
        )
        assert hook.admission_review_versions == ["v1"]
        assert hook.client_config.ca_bundle == base64.b64encode(bundle).decode()
        assert hook.client_config.service.path == path
        (expression,) = hook.namespace_selector.match_expressions
        assert (expression.key, expression.operator) == ("kubernetes.io/metadata.name", "NotIn")
        assert expression.values == ["team-sec", "kube-system"]
        resources = {r for rule in hook.rules for r in rule.resources}
        assert resources == {
            *("pods", "pods/ephemeralcontainers", "replicationcontrollers"),
            *("deployments", "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs"),
        }


def test_the_chart_ships_the_same_example_policy_and_plain_yaml() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["policy"] == EXAMPLE_POLICY.read_text()
    assert yaml.safe_load((CHART / "Chart.yaml").read_text())["apiVersion"] == "v2"
    assert values["mode"] == "audit" and values["replicas"] == 2


def test_pull_secrets_are_opt_in_a_token_and_get_on_secrets_only_when_enabled() -> None:
    off = _documents(render_manifests(namespace="team-sec"))
    assert not set(off) & RBAC
    assert (
        "--in-cluster" not in off["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    docs = _documents(render_manifests(namespace="team-sec", pull_secrets=True))
    assert set(docs) == set(MODELS)
    for doc in docs.values():
        _round_trip(doc)
    pod = _round_trip(docs["Deployment"]).spec.template.spec
    assert pod.automount_service_account_token is True
    assert _round_trip(docs["ServiceAccount"]).automount_service_account_token is True
    (container,) = pod.containers
    args = build_parser().parse_args(container.args)
    assert args.in_cluster is True and args.kubeconfig is None
    assert container.security_context.read_only_root_filesystem is True
    role = _round_trip(docs["ClusterRole"])
    (rule,) = role.rules
    assert (rule.api_groups, rule.resources, rule.verbs) == (
        [""],
        ["secrets", "serviceaccounts"],
        ["get"],
    )
    binding = _round_trip(docs["ClusterRoleBinding"])
    assert binding.role_ref.name == role.metadata.name
    (subject,) = binding.subjects
    assert (subject.kind, subject.name, subject.namespace) == (
        "ServiceAccount",
        pod.service_account_name,
        "team-sec",
    )
