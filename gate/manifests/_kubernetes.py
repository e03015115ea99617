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

from collections.abc import Callable, Iterable
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

    The same walker as a file, reading the dicts and lists through the same
    primitives the node graph has (``_ObjectWalker``), so a Pod admitted by the
    webhook and the same Pod in a manifest give the same images without
    copying the object into nodes first (that copy was most of a warm
    admission's CPU). ``file`` labels findings (e.g. ``Pod/web``); lines are 0.
    Raises ManifestError as ``find`` does.
    """
    found: list[tuple[Site, Pointer]] = []
    _ObjectWalker("", file, lambda site, at: found.append((site, at))).walk(obj, "", ())
    return found


def _text(value: Any) -> str:
    """A JSON scalar's text as the node graph holds it (null, booleans and numbers as written)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _node(value: Any) -> Node:
    """Parsed JSON as the YAML node graph; strings as quoted scalars, so "null" stays a string."""
    if isinstance(value, dict):
        pairs = tuple((_node(str(k)), _node(v)) for k, v in value.items())
        return Mapping(pairs, 0, 1 + sum(_size(v) for _, v in pairs))
    if isinstance(value, list):
        nodes = tuple(_node(v) for v in value)
        return Sequence(nodes, 0, 1 + sum(_size(n) for n in nodes))
    return Scalar(_text(value), '"' if isinstance(value, str) else None, 0, 0, 0)


def _size(node: Node) -> int:
    return 1 if isinstance(node, Scalar) else node.size


class _Walker:
    """The search, over the YAML node graph; ``_ObjectWalker`` swaps only the primitives."""

    def __init__(self, text: str, file: str, found: Callable[[Site, Pointer], None]) -> None:
        self.text = text
        self.file = file
        self.found = found

    def walk(self, node: Any, owner: str, at: Pointer) -> None:
        """Search ``node`` at ``at``; ``owner`` is the nearest enclosing ``Kind/name``."""
        listed = self._items(node)
        if listed is not None:
            for index, item in enumerate(listed):
                self.walk(item, owner, (*at, index))
            return
        pairs = self._pairs(node)
        if pairs is None:
            return
        owner = self._owner(node) or owner
        for key, value in pairs:
            if key in _CONTAINER_LISTS and self._is_container_list(value):
                for index, container in enumerate(self._items(value) or ()):
                    self._container(container, owner, _CONTAINER_LISTS[key], (*at, key, index))
            elif key in _SINGLE_CONTAINERS and self._is_container(value):
                self._container(value, owner, _SINGLE_CONTAINERS[key], (*at, key))
            else:
                self.walk(value, owner, (*at, key))

    # The primitives: what a node is, and what it holds.

    def _items(self, node: Any) -> tuple[Any, ...] | list[Any] | None:
        """A sequence's items; None for anything else."""
        return node.items if isinstance(node, Sequence) else None

    def _pairs(self, node: Any) -> Iterable[tuple[str, Any]] | None:
        """A mapping's (key, value) pairs; None for anything else."""
        return items(node) if isinstance(node, Mapping) else None

    def _first(self, node: Any, key: str) -> Any:
        """The value under ``key`` (null included), or None when absent or not a mapping."""
        return first(node, key)

    def _scalar(self, node: Any) -> str | None:
        return scalar(node)

    def _image(self, container: Any) -> tuple[Any, str | None, int]:
        """The ``image`` value (None when absent or null), its text (None if not a scalar), line."""
        image = get(container, "image", file=self.file)
        if image is None or is_null(image):
            return None, None, 0
        return image, scalar(image), image.line

    def _span(self, image: Any) -> tuple[int, int] | None:
        return value_span(self.text, image) if self.text else None

    # The rules, over the primitives.

    def _owner(self, mapping: Any) -> str | None:
        kind = self._scalar(self._first(mapping, "kind"))
        if kind is None:
            return None
        metadata = self._first(mapping, "metadata")
        name = self._scalar(self._first(metadata, "name")) or self._scalar(
            self._first(metadata, "generateName")
        )
        return f"{kind}/{name}" if name else kind

    def _is_container(self, node: Any) -> bool:
        return self._pairs(node) is not None and self._first(node, "image") is not None

    def _is_container_list(self, node: Any) -> bool:
        listed = self._items(node)
        return listed is not None and any(self._is_container(c) for c in listed)

    def _container(self, container: Any, owner: str, role: str, at: Pointer) -> None:
        if self._pairs(container) is None:
            return
        image, text, line = self._image(container)
        if image is None:
            return
        name = self._scalar(self._first(container, "name"))
        label = " ".join(part for part in (owner, role, name) if part)
        if text is None:
            raise ManifestError(
                f"{clip(label, 80)}: image must be a string", file=self.file, line=line
            )
        self.found(
            Site(
                finding(text, file=self.file, line=line, kind=KIND, context=label),
                self._span(image),
            ),
            (*at, "image"),
        )


class _ObjectWalker(_Walker):
    """The same rules over parsed JSON: dicts, lists and scalars, JSON null as ``_NULL``."""

    def _items(self, node: Any) -> list[Any] | None:
        return node if isinstance(node, list) else None

    def _pairs(self, node: Any) -> Iterable[tuple[str, Any]] | None:
        return node.items() if isinstance(node, dict) else None  # JSON keys are strings

    def _first(self, node: Any, key: str) -> Any:
        if not isinstance(node, dict) or key not in node:
            return None
        value = node[key]
        return _NULL if value is None else value

    def _scalar(self, node: Any) -> str | None:
        if node is None or isinstance(node, dict | list):
            return None
        return "null" if node is _NULL else _text(node)

    def _image(self, container: Any) -> tuple[Any, str | None, int]:
        image = container.get("image")  # JSON objects have no repeated keys, no YAML nulls
        if image is None:
            return None, None, 0
        return image, self._scalar(image), 0

    def _span(self, image: Any) -> tuple[int, int] | None:
        return None


_NULL = object()
"""JSON null found under a key: present, unlike a missing key (the node graph's ``null``)."""
