"""Which objects a policy covers at admission: namespaces and a label selector (pure).

The policy's ``namespaces:`` key::

    namespaces:
      include: ["team-*"]          # globs; default: every namespace
      exclude: [kube-system]       # globs; default: [kube-system]
      objectSelector:              # a Kubernetes label selector on the object's own labels
        matchExpressions: [{key: sealgate.dev/skip, operator: DoesNotExist}]

``kube-system`` is left alone by default because the cluster's own add-ons
live there and a webhook that blocks them can stop the cluster healing
itself; naming it in ``include`` (or giving ``exclude`` at all) says otherwise.

A *rule* may carry its own ``namespaces: {include: [...], exclude: [...]}``
(no ``objectSelector``, and no default exclusion: the top-level scope already
decides whether admission looks at a namespace at all). At admission a rule
whose namespaces do not cover the object's namespace is skipped; the gate and
the watchdog have no namespace and ignore it. Both are parsed and matched
here, by ``parse_namespaces`` and ``Namespaces``: one implementation.

NOTE: label selector semantics follow
https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Protocol

import yaml

DEFAULT_EXCLUDE = ("kube-system",)
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Requirement:
    """One ``matchExpressions`` entry."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        inside = self.key in labels and labels[self.key] in self.values
        return inside if self.operator == "In" else not inside


@dataclass(frozen=True)
class LabelSelector:
    """``matchLabels`` and ``matchExpressions``, ANDed; an empty selector matches everything."""

    match_labels: Mapping[str, str] = field(default_factory=dict)
    expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            r.matches(labels) for r in self.expressions
        )


@dataclass(frozen=True)
class Namespaces:
    """Namespace globs: ``include`` (default every namespace) minus ``exclude`` (exclude wins)."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()

    def covers(self, namespace: str) -> bool:
        """Whether ``namespace`` is covered; ``""`` (a cluster-wide object) always is."""
        if not namespace:
            return True
        return any(fnmatchcase(namespace, p) for p in self.include) and not any(
            fnmatchcase(namespace, p) for p in self.exclude
        )

    def describe(self) -> str:
        """``include [a, b] exclude [c]``, for ``policy explain``."""
        text = f"include [{', '.join(self.include)}]"
        return text + (f" exclude [{', '.join(self.exclude)}]" if self.exclude else "")


@dataclass(frozen=True)
class Scope:
    """The namespaces and objects admission checks; everything else is allowed unchecked."""

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    objects: LabelSelector = field(default_factory=LabelSelector)

    @property
    def namespaces(self) -> Namespaces:
        return Namespaces(self.include, self.exclude)

    def covers(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """Whether an object in ``namespace`` (``""``: cluster-wide) with ``labels`` is checked."""
        return self.namespaces.covers(namespace) and self.objects.matches(labels)


class _Reader(Protocol):
    """The policy reader's typed node access (``gate.policy._Doc``), errors at file:line."""

    def fail(self, node: yaml.Node | None, message: str) -> Exception: ...
    def mapping(
        self, node: yaml.Node, what: str, allowed: Sequence[str]
    ) -> dict[str, yaml.Node]: ...
    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]: ...
    def scalar(self, node: yaml.Node, what: str) -> str: ...


def parse(doc: _Reader, node: yaml.Node) -> Scope:
    """The top-level ``namespaces:``; raises the reader's error (PolicyError) at its line."""
    top = doc.mapping(node, "namespaces", ("include", "exclude", "objectSelector"))
    include = _names(doc, top, "include") if "include" in top else ("*",)
    if "exclude" in top:
        exclude = _names(doc, top, "exclude")
    else:
        exclude = tuple(n for n in DEFAULT_EXCLUDE if n not in include)
    objects = _selector(doc, top["objectSelector"]) if "objectSelector" in top else LabelSelector()
    return Scope(include, exclude, objects)


def parse_namespaces(doc: _Reader, node: yaml.Node, what: str) -> Namespaces:
    """A rule's ``namespaces: {include, exclude}``; no default exclusion (see the module)."""
    top = doc.mapping(node, what, ("include", "exclude"))
    if not top:
        raise doc.fail(node, f"{what} is empty; give 'include' or 'exclude' (or leave it out)")
    include = _names(doc, top, "include") if "include" in top else ("*",)
    if not include:
        raise doc.fail(top["include"], "include is empty, so the rule would never apply")
    return Namespaces(include, _names(doc, top, "exclude") if "exclude" in top else ())


def _names(doc: _Reader, top: Mapping[str, yaml.Node], key: str) -> tuple[str, ...]:
    return tuple(doc.scalar(n, f"a namespace in {key}") for n in doc.sequence(top[key], key))


def _selector(doc: _Reader, node: yaml.Node) -> LabelSelector:
    top = doc.mapping(node, "objectSelector", ("matchLabels", "matchExpressions"))
    labels: dict[str, str] = {}
    if "matchLabels" in top:
        found = top["matchLabels"]
        if not isinstance(found, yaml.MappingNode):
            raise doc.fail(found, "matchLabels must be a mapping")
        for key, value in found.value:
            name = doc.scalar(key, "a label name")
            labels[name] = doc.scalar(value, f"label {name}")
    expressions = []
    for item in doc.sequence(top.get("matchExpressions") or _EMPTY, "matchExpressions"):
        fields = doc.mapping(item, "a matchExpressions entry", ("key", "operator", "values"))
        if "key" not in fields or "operator" not in fields:
            raise doc.fail(item, "a matchExpressions entry needs 'key' and 'operator'")
        operator = doc.scalar(fields["operator"], "operator")
        if operator not in _OPERATORS:
            raise doc.fail(
                fields["operator"], f"operator is '{operator}'; allowed: {', '.join(_OPERATORS)}"
            )
        values = tuple(
            doc.scalar(v, "a value") for v in doc.sequence(fields.get("values") or _EMPTY, "values")
        )
        if (operator in ("In", "NotIn")) != bool(values):
            raise doc.fail(item, f"operator {operator} " + (
                "needs a non-empty 'values' list" if operator in ("In", "NotIn")
                else "takes no 'values'"
            ))  # fmt: skip
        expressions.append(Requirement(doc.scalar(fields["key"], "key"), operator, values))
    return LabelSelector(labels, tuple(expressions))


_EMPTY = yaml.SequenceNode("tag:yaml.org,2002:seq", [])
