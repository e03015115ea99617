"""Kubernetes objects: every container image in every pod spec, wherever it sits.

Rather than a table of workload kinds (which misses CRDs such as Argo Rollouts,
Knative Services or KEDA ScaledJobs), the whole object is searched for pod spec
shapes: ``containers``, ``initContainers`` and ``ephemeralContainers`` lists of
mappings with an ``image``. That covers Pod, every controller's
``spec.template.spec``, CronJob's ``spec.jobTemplate.spec.template.spec`` and
``List`` items alike. Tekton steps/sidecars and Argo Workflows ``container`` /
``script`` templates are the same shape under other names, so they count too.

NOTE: https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#PodSpec
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeGuard

from gate.errors import ManifestError
from gate.manifests._model import Site, clip, finding
from gate.manifests._yaml import (
    Mapping,
    Node,
    Scalar,
    Sequence,
    first,
    get,
    is_null,
    items,
    scalar,
    value_span,
)

KIND = "kubernetes"

_CONTAINER_LISTS = {
    "containers": "container",
    "initContainers": "initContainer",
    "ephemeralContainers": "ephemeralContainer",
    "steps": "step",  # Tekton Task/TaskRun/Pipeline taskSpec
    "sidecars": "sidecar",  # Tekton, Argo Workflows
}
_SINGLE_CONTAINERS = {"container": "container", "script": "script"}  # Argo Workflows templates


def is_kubernetes(document: Node) -> TypeGuard[Mapping]:
    """A mapping that names its ``kind``: a Kubernetes object (or a List of them)."""
    return isinstance(document, Mapping) and scalar(first(document, "kind")) is not None


Pointer = tuple[str | int, ...]
"""Where a value sits in an object, as JSON Pointer (RFC 6901) tokens."""


def find(document: Mapping, text: str, file: str) -> list[Site]:
    """Every container image in one object (or List), in file order."""
    sites: list[Site] = []
    _Walker(text, file, lambda site, _: sites.append(site)).walk(document, "", ())
    return sites


def find_in_object(obj: Any, file: str) -> list[tuple[Site, Pointer]]:
    """Every container image in an already-parsed object (JSON from an API server), with where.

    The object is read through the same node graph and the same walker as a
    file, so a Pod admitted by the webhook and the same Pod in a manifest give
    the same images. ``file`` labels findings (e.g. ``Pod/web``); lines are 0.
    Raises ManifestError as ``find`` does.
    """
    found: list[tuple[Site, Pointer]] = []
    _Walker("", file, lambda site, at: found.append((site, at))).walk(_node(obj), "", ())
    return found


def _node(value: Any) -> Node:
    """Parsed JSON as the YAML node graph; strings as quoted scalars, so "null" stays a string."""
    if isinstance(value, dict):
        pairs = tuple((_node(str(k)), _node(v)) for k, v in value.items())
        return Mapping(pairs, 0, 1 + sum(_size(v) for _, v in pairs))
    if isinstance(value, list):
        nodes = tuple(_node(v) for v in value)
        return Sequence(nodes, 0, 1 + sum(_size(n) for n in nodes))
    if value is None:
        return Scalar("null", None, 0, 0, 0)
    if isinstance(value, str):
        return Scalar(value, '"', 0, 0, 0)
    if isinstance(value, bool):
        return Scalar("true" if value else "false", None, 0, 0, 0)
    return Scalar(str(value), None, 0, 0, 0)


def _size(node: Node) -> int:
    return 1 if isinstance(node, Scalar) else node.size


class _Walker:
    def __init__(self, text: str, file: str, found: Callable[[Site, Pointer], None]) -> None:
        self.text = text
        self.file = file
        self.found = found

    def walk(self, node: Node, owner: str, at: Pointer) -> None:
        """Search ``node`` at ``at``; ``owner`` is the nearest enclosing ``Kind/name``."""
        if isinstance(node, Sequence):
            for index, item in enumerate(node.items):
                self.walk(item, owner, (*at, index))
            return
        if not isinstance(node, Mapping):
            return
        owner = self._owner(node) or owner
        for key, value in items(node):
            if key in _CONTAINER_LISTS and self._is_container_list(value):
                assert isinstance(value, Sequence)
                for index, container in enumerate(value.items):
                    self._container(container, owner, _CONTAINER_LISTS[key], (*at, key, index))
            elif key in _SINGLE_CONTAINERS and self._is_container(value):
                self._container(value, owner, _SINGLE_CONTAINERS[key], (*at, key))
            else:
                self.walk(value, owner, (*at, key))

    def _owner(self, mapping: Mapping) -> str | None:
        kind = scalar(first(mapping, "kind"))
        if kind is None:
            return None
        metadata = first(mapping, "metadata")
        name = scalar(first(metadata, "name")) or scalar(first(metadata, "generateName"))
        return f"{kind}/{name}" if name else kind

    def _is_container(self, node: Node) -> bool:
        return isinstance(node, Mapping) and first(node, "image") is not None

    def _is_container_list(self, node: Node) -> bool:
        return isinstance(node, Sequence) and any(self._is_container(c) for c in node.items)

    def _container(self, container: Node, owner: str, role: str, at: Pointer) -> None:
        if not isinstance(container, Mapping):
            return
        image = get(container, "image", file=self.file)
        if image is None or is_null(image):
            return
        name = scalar(first(container, "name"))
        label = " ".join(part for part in (owner, role, name) if part)
        if not isinstance(image, Scalar):
            raise ManifestError(
                f"{clip(label, 80)}: image must be a string", file=self.file, line=image.line
            )
        self.found(
            Site(
                finding(image.value, file=self.file, line=image.line, kind=KIND, context=label),
                value_span(self.text, image) if self.text else None,
            ),
            (*at, "image"),
        )
