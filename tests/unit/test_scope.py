"""The policy's ``namespaces:`` key: which namespaces and objects admission checks."""

from __future__ import annotations

import pytest

from gate import keys, policy
from gate.errors import PolicyError
from gate.scope import Scope

PEM = keys.generate().public_key.pem.decode()
REST = (
    "signers:\n  - name: ci\n    key: |\n"
    + "".join(f"      {line}\n" for line in PEM.splitlines())
    + 'rules: [{match: "**", require: {signers: [ci]}}]\n'
)


def _load(extra: str) -> Scope:
    """The scope of a policy with ``extra`` from line 2."""
    return policy.loads(f"version: 1\n{extra}{REST}".encode(), source="p.yaml").scope


def test_by_default_every_namespace_but_kube_system() -> None:
    scope = _load("")
    assert scope.covers("default", {})
    assert scope.covers("team-a", {"app": "x"})
    assert not scope.covers("kube-system", {})


def test_include_and_exclude_are_globs_and_exclude_wins() -> None:
    scope = _load('namespaces: {include: ["team-*", prod], exclude: ["team-sandbox*"]}\n')
    assert scope.covers("team-a", {})
    assert scope.covers("prod", {})
    assert not scope.covers("default", {})
    assert not scope.covers("team-sandbox-1", {})


def test_naming_kube_system_or_giving_exclude_checks_kube_system() -> None:
    assert _load('namespaces: {include: ["*", kube-system]}\n').covers("kube-system", {})
    assert _load("namespaces: {exclude: []}\n").covers("kube-system", {})
    assert not _load('namespaces: {include: ["kube-*"]}\n').covers("kube-system", {})


def test_object_selector_match_labels_and_expressions() -> None:
    scope = _load(
        "namespaces:\n"
        "  objectSelector:\n"
        "    matchLabels: {tier: web}\n"
        "    matchExpressions:\n"
        "      - {key: sealgate.dev/skip, operator: DoesNotExist}\n"
        "      - {key: env, operator: In, values: [prod, stage]}\n"
        "      - {key: owner, operator: NotIn, values: [legacy]}\n"
        "      - {key: team, operator: Exists}\n"
    )
    good = {"tier": "web", "env": "prod", "team": "a"}
    assert scope.covers("default", good)
    assert not scope.covers("default", {**good, "sealgate.dev/skip": "yes"})
    assert not scope.covers("default", {**good, "env": "dev"})
    assert not scope.covers("default", {**good, "owner": "legacy"})
    assert not scope.covers("default", {"tier": "web", "env": "prod"})
    assert not scope.covers("default", {**good, "tier": "db"})


@pytest.mark.parametrize(
    ("extra", "message", "line"),
    [
        ("namespaces: [a]\n", "namespaces must be a mapping", 2),
        ("namespaces: {only: [a]}\n", "unknown key 'only' in namespaces", 2),
        ("namespaces: {include: a}\n", "include must be a list", 2),
        (
            "namespaces:\n  objectSelector:\n    matchExpressions: [{key: a, operator: Has}]\n",
            "operator is 'Has'; allowed: In, NotIn, Exists, DoesNotExist",
            4,
        ),
        (
            "namespaces:\n  objectSelector:\n    matchExpressions: [{key: a, operator: In}]\n",
            "operator In needs a non-empty 'values' list",
            4,
        ),
        (
            "namespaces:\n  objectSelector: {matchExpressions: [{operator: Exists}]}\n",
            "needs 'key' and 'operator'",
            3,
        ),
        ("namespaces:\n  objectSelector: {matchLabels: [a]}\n", "matchLabels must be a mapping", 3),
    ],
)
def test_bad_namespaces_name_the_line(extra: str, message: str, line: int) -> None:
    with pytest.raises(PolicyError, match=message) as caught:
        _load(extra)
    assert caught.value.line == line
