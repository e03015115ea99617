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


# --- a rule's own namespaces (admission only) -----------------------------------------------

RULES = (
    "signers:\n  - name: ci\n    key: |\n"
    + "".join(f"      {line}\n" for line in PEM.splitlines())
    + "  - name: release\n    key: |\n"
    + "".join(f"      {line}\n" for line in PEM.splitlines())
)


def _rules(rules: str) -> policy.Policy:
    """A policy with two signers and ``rules`` (YAML text from the ``rules:`` line on)."""
    return policy.loads(f"version: 1\n{RULES}{rules}".encode(), source="p.yaml")


STRICT_IN_PROD = (
    "rules:\n"
    '  - match: "ghcr.io/acme/**"\n'
    '    namespaces: {include: ["prod-*"], exclude: [prod-sandbox]}\n'
    "    require: {signers: [release]}\n"
    '  - match: "ghcr.io/acme/**"\n'
    "    require: {signers: [ci]}\n"
)


def test_a_rule_applies_only_in_its_namespaces_and_the_next_applicable_rule_wins() -> None:
    pol = _rules(STRICT_IN_PROD)
    image = "ghcr.io/acme/web"
    assert pol.rules[0].namespaces is not None
    assert pol.in_namespace("prod-eu").rule_for_name(image) is pol.rules[0]
    assert pol.in_namespace("prod-sandbox").rule_for_name(image) is pol.rules[1]
    assert pol.in_namespace("dev").rule_for_name(image) is pol.rules[1]
    # The gate and the watchdog have no namespace: the first matching rule, as ever.
    assert pol.rule_for_name(image) is pol.rules[0]


def test_a_policy_without_rule_namespaces_is_itself_in_every_namespace() -> None:
    pol = _rules('rules: [{match: "**", require: {signers: [ci]}}]\n')
    assert pol.rules[0].namespaces is None
    assert pol.in_namespace("anything") is pol


def test_rule_namespaces_have_no_default_exclusion_and_exclude_wins() -> None:
    pol = _rules('rules: [{match: "**", namespaces: {exclude: ["team-*"]}}]\n')
    covers = pol.rules[0].namespaces
    assert covers is not None
    assert covers.covers("kube-system") and covers.covers("default")
    assert not covers.covers("team-a")
    both = _rules('rules: [{match: "**", namespaces: {include: [a, "b*"], exclude: [b2]}}]\n')
    covers = both.rules[0].namespaces
    assert covers is not None
    assert [covers.covers(n) for n in ("a", "b1", "b2", "c")] == [True, True, False, False]


def test_a_default_rule_limited_to_namespaces_denies_elsewhere() -> None:
    pol = _rules(
        'rules: [{match: "ghcr.io/acme/**"}]\n'
        "default:\n  require: {signers: [ci]}\n  namespaces: {include: [dev]}\n"
    )
    assert pol.in_namespace("dev").rule_for_name("docker.io/library/nginx") is pol.default
    assert pol.in_namespace("prod").rule_for_name("docker.io/library/nginx") is None


@pytest.mark.parametrize(
    ("rules", "message", "line"),
    [
        (
            'rules:\n  - match: "**"\n    namespaces: [prod]\n',
            "the rule's namespaces must be a mapping",
            3,
        ),
        (
            'rules:\n  - match: "**"\n    namespaces: {include: [a], objectSelector: {}}\n',
            "unknown key 'objectSelector' in the rule's namespaces; allowed: include, exclude",
            3,
        ),
        (
            'rules:\n  - match: "**"\n    namespaces: {}\n',
            "the rule's namespaces is empty; give 'include' or 'exclude'",
            3,
        ),
        (
            'rules:\n  - match: "**"\n    namespaces:\n      include: []\n',
            "include is empty, so the rule would never apply",
            4,
        ),
        (
            'rules:\n  - match: "**"\n    namespaces:\n      exclude: prod\n',
            "exclude must be a list",
            4,
        ),
        (
            'rules:\n  - match: "**"\n    namespaces:\n      include: [[a]]\n',
            "a namespace in include must be a single value",
            4,
        ),
    ],
)
def test_bad_rule_namespaces_name_the_file_and_line(rules: str, message: str, line: int) -> None:
    with pytest.raises(PolicyError, match=message) as caught:
        _rules(rules)
    # ``line`` counts from the ``rules:`` line (1), after "version: 1" and the signers.
    assert (caught.value.file, caught.value.line) == ("p.yaml", RULES.count("\n") + 1 + line)
