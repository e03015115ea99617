"""Finding image references in deploy files: every shape, every line, and hostile input.

Fixtures in tests/assets/manifests/ are written in the shapes public projects
use; tests/assets/realworld/ holds real files from docker/awesome-compose and
GoogleCloudPlatform/microservices-demo, which must all read without error.
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from gate import manifests
from gate.errors import ManifestError
from gate.manifests import Finding, Options, _files, _yaml, find_images
from tests.conftest import ASSETS, REALWORLD

GOOD = ASSETS / "manifests" / "good"
BAD = ASSETS / "manifests" / "bad"
DIGEST_A = "sha256:4a3a0b2e5c1b5e0f7f5b43e2d9a1d1c3b5e7f9a1c3e5b7d9f1a3c5e7b9d1f3a5"


def rows(findings: list[Finding], root: Path) -> list[tuple[str, int, str, str, str | None]]:
    """(file relative to root, line, kind, context, normalised reference) per finding."""
    return [
        (
            str(Path(f.location.file).relative_to(root)),
            f.location.line,
            f.kind,
            f.context,
            str(f.reference) if f.reference else None,
        )
        for f in findings
    ]


# -- every shape, every line ------------------------------------------------------------------

# fmt: off
EXPECTED: dict[str, list[tuple[int, str, str, str | None]]] = {
    "compose/docker-compose.yml": [
        (28, "compose", "service api", "ghcr.io/acme/shop-api:1.8.0"),
        # both workers merge the x-worker anchor: the image is written once, at line 11
        (11, "compose", "service worker-email", "ghcr.io/acme/shop-worker:2.4.1"),
        (11, "compose", "service worker-billing", "ghcr.io/acme/shop-worker:2.4.1"),
        (44, "compose", "service db", f"docker.io/library/postgres:16-alpine@{DIGEST_A}"),
        (49, "compose", "service cache", "docker.io/library/redis:7.2"),
        (53, "compose", "service mailhog", "docker.io/mailhog/mailhog:latest"),
        (58, "compose", "service migrations", "ghcr.io/acme/shop-api:latest"),
    ],
    "compose/compose.override.yaml": [
        (3, "compose", "service api", "localhost:5000/shop-api:dev"),
        (4, "compose", "service sidecar", "docker.io/library/busybox:1.36"),
    ],
    "kubernetes/helm-rendered.yaml": [
        (54, "kubernetes", "Deployment/shop-web initContainer wait-for-db",
         "docker.io/library/busybox:1.36.1"),
        (58, "kubernetes", "Deployment/shop-web container web", "ghcr.io/acme/shop-web:1.8.0"),
        (64, "kubernetes", "Deployment/shop-web container metrics",
         "quay.io/prometheus/statsd-exporter:v0.26.0"),
        (81, "kubernetes", "StatefulSet/shop-db container postgres",
         "docker.io/bitnami/postgresql:16.2.0-debian-12-r6"),
        (97, "kubernetes", "DaemonSet/shop-node-agent container agent",
         "gcr.io/acme-public/node-agent@sha256:"
         "0f9f2b0c4d4e0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6a7b8c9d"),
        (109, "kubernetes", "Pod/shop-test-connection container wget",
         "docker.io/library/busybox:1.36.1"),
    ],
    "kubernetes/cronjob.yaml": [
        (17, "kubernetes", "CronJob/nightly-report initContainer fetch",
         "docker.io/curlimages/curl:8.6.0"),
        (20, "kubernetes", "CronJob/nightly-report container report",
         "registry.example.com:5000/analytics/report:2024.03"),
        (33, "kubernetes", "Job/db-migrate container migrate", "ghcr.io/acme/shop-api:1.8.0"),
    ],
    "kubernetes/list.yaml": [
        (15, "kubernetes", "ReplicaSet/web-7c9f8 container nginx",
         "docker.io/library/nginx:1.25.4"),
        (23, "kubernetes", "Pod/web-7c9f8-x2k4q container nginx", "docker.io/library/nginx:1.25.4"),
        (26, "kubernetes", "Pod/web-7c9f8-x2k4q ephemeralContainer debugger-8xl2q",
         "docker.io/library/busybox:1.36.1"),
        (38, "kubernetes", "ReplicationController/legacy container app",
         "k8s.gcr.io/echoserver:1.10"),
    ],
    "kubernetes/rollout.yaml": [
        (16, "kubernetes", "Rollout/checkout container checkout", "ghcr.io/acme/checkout:3.1.0"),
        (26, "kubernetes", "Service/hello container",
         "gcr.io/knative-samples/helloworld-go:latest"),
        (38, "kubernetes", "Task/build step compile", "docker.io/library/golang:1.22"),
        (50, "kubernetes", "Workflow/hello- container", "docker.io/docker/whalesay:latest"),
    ],
    "kubernetes/deployment.json": [
        (9, "kubernetes", "Deployment/json-app container app", "ghcr.io/acme/json-app:0.9.1"),
    ],
    "kubernetes/kustomization.yaml": [],
    "kubernetes/values.yaml": [],
    "dockerfiles/Dockerfile": [
        (8, "dockerfile", "stage build", "docker.io/library/golang:1.22-alpine"),
        (16, "dockerfile", "stage assets", "docker.io/library/node:20-alpine"),
        (30, "dockerfile", "stage final", "gcr.io/distroless/static-debian12:nonroot"),
        (34, "dockerfile", "stage final COPY --from", "ghcr.io/acme/ca-bundle:2024.1"),
        (36, "dockerfile", "stage final RUN --mount from", "docker.io/tonistiigi/xx:1.4"),
    ],
    "dockerfiles/api.Dockerfile": [
        (3, "dockerfile", "stage 0",
         "docker.io/library/python:3.12-slim@sha256:"
         "5b1a5f0e2e2c6e8e3f8a0c1d4b7e9f2a6c3d8e1b4f7a0c9d2e5b8f1a4c7d0e3b"),
        (5, "dockerfile", "stage 1", None),
    ],
    "dockerfiles/Dockerfile.debug": [
        (2, "dockerfile", "stage base", "mcr.microsoft.com/windows/servercore:ltsc2022"),
    ],
    "dockerfiles/worker-Dockerfile": [
        (1, "dockerfile", "stage 0", "docker.io/library/ubuntu:22.04"),
    ],
    "lists/images.txt": [
        (2, "list", "list", "docker.io/library/nginx:1.25.4"),
        (3, "list", "list", "ghcr.io/acme/shop-web:1.8.0"),
        (5, "list", "list",
         "quay.io/prometheus/node-exporter@sha256:"
         "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"),
    ],
}
# fmt: on


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_gives_every_reference_at_its_line(name: str) -> None:
    found = rows(find_images([str(GOOD / name)]), GOOD)
    assert found == [(name, *row) for row in EXPECTED[name]]


def test_walking_the_fixtures_finds_each_file_once_in_sorted_order() -> None:
    found = rows(find_images([str(GOOD)]), GOOD)
    expected = [(name, *row) for name in _walk_order(EXPECTED) for row in EXPECTED[name]]
    assert found == expected
    # requirements.txt sits beside images.txt and is not read as an image list
    assert not any(row[0].endswith("requirements.txt") for row in found)


def _walk_order(names: Mapping[str, object]) -> list[str]:
    """os.walk order: each directory's files (sorted) before its subdirectories (sorted)."""
    return sorted(names, key=lambda n: (n.split("/")[0], n))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_finding_points_at_a_line_holding_its_text(name: str) -> None:
    lines = (GOOD / name).read_text().splitlines()
    for f in find_images([str(GOOD / name)]):
        assert f.text in lines[f.location.line - 1]


def test_unresolved_references_are_findings_with_a_problem_not_errors() -> None:
    compose = str(GOOD / "compose/docker-compose.yml")
    findings = find_images([compose], options=Options(environ={"API_TAG": "2.0"}))
    migrations = next(f for f in findings if f.context == "service migrations")
    assert migrations.text == "ghcr.io/acme/shop-api:${API_TAG:-latest}"
    assert str(migrations.reference) == "ghcr.io/acme/shop-api:2.0"

    api = find_images([str(GOOD / "dockerfiles/api.Dockerfile")])[1]
    assert (api.text, api.reference) == ("${REGISTRY}/api-base:1.0", None)
    assert api.problem is not None and "${REGISTRY}" in api.problem


def test_text_is_as_written_and_reference_is_normalised() -> None:
    dockerfile = find_images([str(GOOD / "dockerfiles/Dockerfile")])
    final = next(f for f in dockerfile if f.context == "stage final")
    assert final.text == "${BASE_IMAGE}"
    assert str(final.reference) == "gcr.io/distroless/static-debian12:nonroot"
    quoted = next(f for f in find_images([str(GOOD / "compose/docker-compose.yml")]))
    assert quoted.text == "ghcr.io/acme/shop-api:1.8.0"  # quotes are not part of the text


# -- stdin, sniffing and walking --------------------------------------------------------------


def test_rendered_helm_output_on_stdin_reads_like_the_file() -> None:
    stream = (GOOD / "kubernetes/helm-rendered.yaml").read_text()
    findings = find_images(["-"], stdin=io.StringIO(stream))
    assert [(f.location.file, f.location.line) for f in findings] == [
        ("-", line) for line, *_ in EXPECTED["kubernetes/helm-rendered.yaml"]
    ]


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        ("FROM alpine:3.19\nRUN true\n", "dockerfile"),
        ("# base image\nARG V=3.19\nFROM alpine:${V}\n", "dockerfile"),
        ("nginx:1.25\n# comment\nredis:7  # trailing\n", "list"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
            "  - {name: a, image: nginx:1.25}\n",
            "kubernetes",
        ),
        ("services:\n  web:\n    image: nginx:1.25\n", "compose"),
    ],
)
def test_files_with_uninformative_names_are_sniffed(
    tmp_path: Path, content: str, kind: str
) -> None:
    path = tmp_path / "deploy-spec"
    path.write_text(content)
    findings = find_images([str(path)])
    assert findings and {f.kind for f in findings} == {kind}
    stdin_findings = find_images(["-"], stdin=io.StringIO(content))
    assert [f.reference for f in stdin_findings] == [f.reference for f in findings]


def test_walk_skips_hidden_dirs_node_modules_and_unrelated_files(tmp_path: Path) -> None:
    app = tmp_path / "app"
    for rel in (".git/config.yaml", "node_modules/pkg/docker-compose.yml", "sub/.hidden.yaml"):
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        (app / rel).write_text("services:\n  x:\n    image: SHOULD-NOT-BE-READ\n")
    (app / "README.md").write_text("FROM not-read\n")
    (app / "requirements.txt").write_text("flask==3.0\n")
    (app / "sub/b.yml").write_text("services:\n  b:\n    image: b:1\n")
    (app / "a.yaml").write_text("services:\n  a:\n    image: a:1\n")
    (app / "z-images.txt").write_text("z:1\n")
    (app / "sub/Containerfile").write_text("FROM c:1\n")
    found = [(f.location.file, str(f.reference)) for f in find_images([str(app)])]
    assert found == [
        (f"{app}/a.yaml", "docker.io/library/a:1"),
        (f"{app}/z-images.txt", "docker.io/library/z:1"),
        (f"{app}/sub/Containerfile", "docker.io/library/c:1"),
        (f"{app}/sub/b.yml", "docker.io/library/b:1"),
    ]
    # a file named twice, or named and inside a named directory, is read once
    again = find_images([str(app / "a.yaml"), str(app), str(app / "a.yaml")])
    assert [f.location.file for f in again].count(f"{app}/a.yaml") == 1


def test_missing_path_and_stdin_without_input_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file or directory"):
        find_images([str(tmp_path / "nope.yaml")])
    with pytest.raises(ManifestError, match="standard input"):
        find_images(["-"])
    with pytest.raises(ManifestError, match="named twice"):
        find_images(["-", "-"], stdin=io.StringIO(""))


# -- text details -----------------------------------------------------------------------------


def test_crlf_bom_and_flow_style_keep_lines_right(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_bytes(
        "\ufeff# é\r\nservices:\r\n  a: {image: 'a:1'}\r\n\r\n  b:\r\n    image: b:2\r\n".encode()
    )
    assert [(f.location.line, f.text) for f in find_images([str(path)])] == [
        (3, "a:1"),
        (6, "b:2"),
    ]
    docker = tmp_path / "Dockerfile"
    docker.write_bytes(
        b"\xef\xbb\xbf# caf\xe9 (latin-1 byte)\r\nFROM \\\r\n  d:3 AS x\r\nFROM x\r\n"
    )
    assert [(f.location.line, f.text) for f in find_images([str(docker)])] == [(3, "d:3")]


def test_yaml_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_bytes(b"services:\n  a:\n    image: caf\xe9\n")
    with pytest.raises(ManifestError, match="not valid YAML"):
        find_images([str(path)])


def test_templates_and_variables_are_reported_unresolved(tmp_path: Path) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text(
        "kind: Pod\nspec:\n  containers:\n"
        '  - {name: a, image: "{{ .Values.image }}:{{ .Chart.AppVersion }}"}\n'
        "  - {name: b, image: $IMAGE}\n"
        "  - {name: c}\n"  # no image: nothing to check (e.g. a strategic-merge patch)
    )
    found = find_images([str(path)])
    assert [f.reference for f in found] == [None, None]
    assert found[0].problem is not None and "template" in found[0].problem
    assert found[1].problem == "uses variable $IMAGE; render it first"


def test_dockerfile_heredocs_escape_directive_and_stage_references() -> None:
    texts = [f.text for f in find_images([str(GOOD / "dockerfiles/Dockerfile")])]
    assert "this-is-not-an-image" not in texts  # inside RUN <<EOF
    assert "build" not in texts and "assets" not in texts and "0" not in texts
    assert "scratch" not in texts


# -- bad input: one clear error with file and line --------------------------------------------


@pytest.mark.parametrize(
    ("name", "line", "match"),
    [
        (
            "invalid-reference.yaml",
            5,
            "'Nginx:Latest' is not an image reference: .*must be lowercase",
        ),
        ("bad-digest.yaml", 8, "'repo@sha256:xyz' is not an image reference"),
        ("not-yaml.yaml", 9, "not valid YAML"),
        ("duplicate-image.yaml", 5, "key 'image' appears twice"),
        ("undefined-alias.yaml", 3, "alias \\*missing names no anchor"),
        ("image-not-string.yaml", 3, "image must be a string"),
        ("bad-list.txt", 2, "one image reference per line"),
        ("Dockerfile.bad-reference", 2, "is not an image reference"),
        ("billion-laughs.yaml", None, "possible YAML bomb"),
    ],
)
def test_bad_files_raise_one_manifest_error_at_file_and_line(
    name: str, line: int | None, match: str
) -> None:
    with pytest.raises(ManifestError, match=match) as info:
        find_images([str(BAD / name)])
    assert info.value.file == str(BAD / name)
    assert info.value.exit_code == 2
    if line is not None:
        assert info.value.line == line
        assert str(info.value).startswith(f"{BAD / name}:{line}: ")


def test_billion_laughs_fails_fast_and_small() -> None:
    import tracemalloc

    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ManifestError, match="too many aliases/nodes"):
        find_images([str(BAD / "billion-laughs.yaml")])
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 2.0
    assert peak < 20 * 2**20


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,  # crashes PyYAML's C composer outright
        "- " * 100_000 + "x\n",
        "a: " + "{b: " * 100_000 + "c",
    ],
)
def test_deep_nesting_is_refused_quickly(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ManifestError, match="nested more than"):
        find_images(["-"], stdin=io.StringIO(text))
    assert time.perf_counter() - started < 2.0


def test_aliases_that_contain_themselves_are_refused() -> None:
    with pytest.raises(ManifestError, match="refers to a node that contains it"):
        find_images(["-"], stdin=io.StringIO("kind: Pod\nspec: &a\n  x: *a\n"))


def test_aliases_within_budget_are_followed() -> None:
    text = (
        "kind: Deployment\nmetadata: {name: d}\n"
        "x-c: &c {name: app, image: 'app:1'}\n"
        "spec:\n  template:\n    spec:\n      containers: [*c]\n      initContainers: [*c]\n"
    )
    found = find_images(["-"], stdin=io.StringIO(text))
    assert [(f.location.line, f.context) for f in found] == [
        (3, "Deployment/d container app"),
        (3, "Deployment/d initContainer app"),
    ]


def test_files_over_the_size_cap_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_files, "MAX_FILE_BYTES", 1024)
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * 200)
    with pytest.raises(ManifestError, match="larger than"):
        find_images([str(path)])
    with pytest.raises(ManifestError, match="larger than"):
        find_images(["-"], stdin=io.StringIO("x" * 2000))
    assert manifests.MAX_FILE_BYTES == 32 * 2**20


# -- the C and pure-Python parsers agree ------------------------------------------------------


def test_pure_python_parser_gives_identical_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [str(GOOD)] + ([str(REALWORLD)] if REALWORLD.is_dir() else [])
    with_c = find_images(paths)
    monkeypatch.setattr(_yaml, "_PARSER", yaml.SafeLoader)
    assert find_images(paths) == with_c


# -- real-world files -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def realworld() -> Path:
    return REALWORLD


def test_every_realworld_file_reads_and_every_finding_is_on_its_line(realworld: Path) -> None:
    findings = find_images([str(realworld)])
    assert all(f.reference is not None for f in findings)
    for f in findings:
        line = Path(f.location.file).read_text().splitlines()[f.location.line - 1]
        assert f.text in line
    by_dir: dict[str, int] = {}
    for f in findings:
        top = Path(f.location.file).relative_to(realworld).parts
        key = "/".join(top[:2]) if top[0] == "microservices-demo" else top[0]
        by_dir[key] = by_dir.get(key, 0) + 1
    assert by_dir == {
        "awesome-compose": 47,
        "microservices-demo/release-kubernetes-manifests.yaml": 13,
        "microservices-demo/dockerfiles": 22,
        "microservices-demo/kubernetes-manifests": 13,
    }


def test_realworld_release_manifest(realworld: Path) -> None:
    path = realworld / "microservices-demo/release-kubernetes-manifests.yaml"
    found = find_images([str(path)])
    lines = [53, 180, 255, 329, 401, 494, 507, 559, 635, 718, 793, 865, 939]
    assert [f.location.line for f in found] == lines
    init = found[5]
    assert init.context == "Deployment/loadgenerator initContainer frontend-check"
    assert init.reference is not None and init.reference.pinned
    assert str(found[4].reference) == "docker.io/library/redis:alpine"


def test_realworld_compose_skips_build_only_services(realworld: Path) -> None:
    found = find_images([str(realworld / "awesome-compose/nginx-golang-mysql.yaml")])
    assert [(f.location.line, f.context, f.text) for f in found] == [
        (14, "service db", "mariadb:10-focal"),  # the commented-out "#image: mysql:8" is not
        (35, "service proxy", "nginx"),
    ]


def test_realworld_dockerfiles_skip_stage_aliases(realworld: Path) -> None:
    path = realworld / "microservices-demo/dockerfiles/shoppingassistantservice-Dockerfile"
    found = find_images([str(path)])
    assert [(f.location.line, f.context) for f in found] == [(18, "stage base")]
    debug = realworld / "microservices-demo/dockerfiles/cartservice-Dockerfile.debug"
    assert [f.location.line for f in find_images([str(debug)])] == [15, 25]


def test_realworld_copy_reads_the_same(realworld: Path, tmp_path: Path) -> None:
    copy = tmp_path / "rw"
    shutil.copytree(realworld, copy)
    original = rows(find_images([str(realworld)]), realworld)
    assert rows(find_images([str(copy)]), copy) == original
