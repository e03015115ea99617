"""Images in an already-parsed Kubernetes object: the same answer as the same object in a file.

The admission webhook receives objects as JSON; it must find exactly what the
gate finds in the manifest the object came from, and say where each image
sits (JSON Pointer tokens) so it can be pinned with a JSON Patch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from gate.errors import ManifestError
from gate.manifests import find_images, find_object_images
from tests.conftest import ASSETS, REALWORLD

FILES = [
    ASSETS / "manifests" / "good" / "kubernetes" / "cronjob.yaml",
    ASSETS / "manifests" / "good" / "kubernetes" / "list.yaml",
    ASSETS / "manifests" / "good" / "kubernetes" / "rollout.yaml",
    REALWORLD / "microservices-demo" / "release-kubernetes-manifests.yaml",
]


def _at(obj: Any, pointer: tuple[str | int, ...]) -> Any:
    for token in pointer:
        obj = obj[token]
    return obj


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_objects_give_the_same_images_as_their_file(path: Path) -> None:
    from_file = [(str(f.reference), f.context) for f in find_images([str(path)])]
    from_objects = []
    for document in yaml.safe_load_all(path.read_text()):
        if not document:
            continue
        for found, pointer in find_object_images(document, name="object"):
            from_objects.append((str(found.reference), found.context))
            assert _at(document, pointer) == found.text  # the pointer names the image itself
    assert from_objects == from_file
    assert from_file


def test_init_and_ephemeral_containers_of_a_pod_with_pointers() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [{"name": "app", "image": "nginx:1.27"}, {"name": "none"}],
            "ephemeralContainers": [{"name": "debug", "image": "null"}],
        },
    }
    found = find_object_images(pod, name="Pod/web")
    assert [(f.context, p) for f, p in found] == [
        ("Pod/web initContainer init", ("spec", "initContainers", 0, "image")),
        ("Pod/web container app", ("spec", "containers", 0, "image")),
        ("Pod/web ephemeralContainer debug", ("spec", "ephemeralContainers", 0, "image")),
    ]
    assert str(found[2][0].reference) == "docker.io/library/null:latest"  # a string, not null


def test_a_null_image_is_skipped_and_a_non_string_image_is_an_error() -> None:
    pod = {"kind": "Pod", "spec": {"containers": [{"name": "a", "image": None}]}}
    assert find_object_images(pod, name="Pod") == []
    bad = {"kind": "Pod", "spec": {"containers": [{"name": "a", "image": {"x": 1}}]}}
    with pytest.raises(ManifestError, match="image must be a string"):
        find_object_images(bad, name="Pod")
    wrong = {"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "UPPER:case:x"}]}}
    with pytest.raises(ManifestError, match="is not an image reference"):
        find_object_images(wrong, name="Pod")


def _through_nodes(obj: Any, name: str) -> list[tuple[Any, tuple[str | int, ...]]]:
    """The object copied into the YAML node graph and searched there: the reference answer."""
    from gate.manifests import _kubernetes

    found: list[tuple[Any, tuple[str | int, ...]]] = []
    walker = _kubernetes._Walker("", name, lambda site, at: found.append((site.finding, at)))
    walker.walk(_kubernetes._node(obj), "", ())
    return found


ODD_SHAPES: list[Any] = [
    {"kind": None, "metadata": None, "spec": {"containers": [{"image": "a"}]}},
    {"kind": 7, "metadata": {"name": "", "generateName": "gen-"}, "containers": [{"image": 1}]},
    {"kind": True, "metadata": {"name": None}, "script": {"image": "b", "name": False}},
    {"kind": {"x": 1}, "containers": [None, 3, "s", [], {"image": None}, {"image": "c"}]},
    {"items": [{"kind": "Pod", "metadata": {"name": "x"}, "container": {"image": "d"}}]},
    {"kind": "List", "items": [[{"steps": [{"image": "e"}], "sidecars": {"image": "f"}}]]},
    {"kind": "Pod", "spec": {"containers": [{"name": "n"}], "initContainers": []}},
    {"kind": "Pod", "spec": {"containers": {"image": "g"}, "container": [{"image": "h"}]}},
    {"kind": "X", "a": {"b": {"containers": [{"image": "i", "containers": [{"image": "j"}]}]}}},
]


@pytest.mark.parametrize("index", range(len(ODD_SHAPES)))
def test_odd_shapes_give_what_the_node_graph_gives(index: int) -> None:
    obj = ODD_SHAPES[index]
    assert find_object_images(obj, name="o") == _through_nodes(obj, "o")


def test_every_kubernetes_asset_gives_what_the_node_graph_gives() -> None:
    """The walker reads JSON directly; every object we have must match the node-graph copy.

    Only well-formed files: ``bad/`` holds a billion-laughs YAML that PyYAML would expand.
    """
    seen = 0
    good = sorted((ASSETS / "manifests" / "good").rglob("*.y*ml"))
    for path in good + sorted(REALWORLD.rglob("*.y*ml")):
        try:
            documents = list(yaml.safe_load_all(path.read_text()))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        for loaded in documents:
            if not isinstance(loaded, dict) or "kind" not in loaded:
                continue
            document = json.loads(json.dumps(loaded, default=str))  # as an API server sends it
            try:
                expected = _through_nodes(document, path.name)
            except ManifestError as e:
                with pytest.raises(ManifestError) as raised:
                    find_object_images(document, name=path.name)
                assert raised.value.message == e.message
                continue
            assert find_object_images(document, name=path.name) == expected, path
            seen += len(expected)
    assert seen > 20
