"""`sealgate gate` and `sealgate pin` end to end: manifests in the shapes public projects use,
a real registry, images signed by two different keys, every status.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from gate import keys
from gate.cli import main
from gate.refs import Reference
from tests.unit.test_report_schema import validate

from .conftest import RegistryServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer) -> dict[str, Any]:
    """Keys ci (level 1) and release (level 2), a policy, and images signed in every way."""
    from tests.integration.conftest import push_random_image

    base = tmp_path_factory.mktemp("gate")
    ci, release = keys.generate(), keys.generate("ed25519")
    for name, key in (("ci", ci), ("release", release)):
        keys.write_key_pair(str(base / name), key, None)
    client = registry.client()

    def image(
        repo: str, tag: str, *signers: keys.PrivateKey, when: float | None = None
    ) -> Reference:
        ref = push_random_image(registry, repo, tag, client=client)
        from datetime import UTC, datetime

        from gate.sign import sign_image

        for signer in signers:
            moment = datetime.fromtimestamp(when, UTC) if when else None
            sign_image(client, ref, signer, now=moment)
        return ref

    refs = {
        "both": image("acme/payments/api", "1.0", ci, release),
        "ci-only-payments": image("acme/payments/worker", "1.0", ci),
        "ci": image("acme/web", "1.0", ci),
        "unsigned": image("acme/web", "2.0"),
        "old": image("acme/legacy", "1.0", ci, when=time.time() - 200 * 86400),
        "release-only": image("acme/tools", "1.0", release),
    }
    policy = base / "policy.yaml"
    policy.write_text(f"""\
version: 1
signers:
  - name: ci
    key: ci.pub
    level: 1 - ci
  - name: release
    key: release.pub
    level: 2 - release
registries: [{registry.host}]
rules:
  - match: "{registry.host}/acme/payments/**"
    require: {{signers: [ci, release], threshold: 2}}
    min_level: 2
  - match: "{registry.host}/acme/legacy"
    max_age: 90d
  - match: "{registry.host}/acme/tools"
    min_level: 2
  - match: "**"
    require: {{signers: [ci, release], threshold: 1}}
    pinned: required
default: deny
""")
    return {
        "dir": base,
        "policy": str(policy),
        "refs": refs,
        "ci": ci,
        "release": release,
        "host": registry.host,
    }


def gate(
    capsys: pytest.CaptureFixture[str],
    *argv: str,
    stdin: str | None = None,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> tuple[int, list[dict[str, Any]], str]:
    if stdin is not None and monkeypatch is not None:
        monkeypatch.setattr("sys.stdin", StringIO(stdin))
    code = main(["gate", *argv, "-o", "json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip().startswith("[") else []), err


def pinned(ref: Reference) -> str:
    return f"{ref.name}:{ref.tag}@{ref.digest}"


def test_every_status_and_rule_over_a_compose_file(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = world["refs"]
    compose = tmp_path / "compose.yaml"
    compose.write_text(f"""\
# a multi-service file with build sections and profiles
services:
  api:
    image: {pinned(r["both"])}
    profiles: [prod]
  worker:
    image: "{pinned(r["ci-only-payments"])}"
  web:
    build: ./web
    image: {pinned(r["ci"])}
  batch:
    image: {pinned(r["unsigned"])}
  legacy:
    image: {pinned(r["old"])}
  tools:
    image: {pinned(r["release-only"])}
  cache:
    image: {r["ci"].name}:1.0
  hub:
    image: docker.io/library/redis@sha256:{"0" * 64}
  builder-only:
    build: ./builder
""")
    code, results, err = gate(capsys, str(compose), "--policy", world["policy"])
    by = {res["image"]: res for res in results}
    status = {name: by[pinned(ref)]["status"] for name, ref in r.items()}
    assert status == {
        "both": "TRUSTED",
        "ci-only-payments": "UNTRUSTED",
        "ci": "TRUSTED",
        "unsigned": "UNKNOWN",
        "old": "UNTRUSTED",
        "release-only": "TRUSTED",
    }, err
    assert "1 of 2 required" in by[pinned(r["ci-only-payments"])]["reason"]
    assert "older than 90 days" in by[pinned(r["old"])]["reason"]
    assert by[pinned(r["release-only"])]["level"] == 2
    unpinned = by[f"{r['ci'].name}:1.0"]
    assert unpinned["status"] == "UNTRUSTED" and "not pinned" in unpinned["reason"]
    hub = by[f"docker.io/library/redis@sha256:{'0' * 64}"]
    assert hub["status"] == "UNTRUSTED" and "not allowed" in hub["reason"]
    assert by[pinned(r["both"])]["sources"] == [{"file": str(compose), "line": 4}]
    assert code == 1


def test_thresholds_levels_and_fail_on(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = world["refs"]
    listing = tmp_path / "images.txt"
    listing.write_text(f"# trusted and unknown only\n{pinned(r['ci'])}\n{pinned(r['unsigned'])}\n")
    assert gate(capsys, str(listing), "--policy", world["policy"])[0] == 1
    assert gate(capsys, str(listing), "--policy", world["policy"], "--fail-on", "untrusted")[0] == 0
    assert gate(capsys, str(listing), "--policy", world["policy"], "--fail-on", "never")[0] == 0


def test_helm_stream_on_stdin_with_cronjob_and_init_containers(
    world: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    r = world["refs"]
    rendered = f"""\
---
# Source: shop/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata: {{name: shop}}
spec:
  template:
    spec:
      initContainers:
        - name: migrate
          image: {pinned(r["ci"])}
      containers:
        - name: app
          image: {pinned(r["both"])}
---
# Source: shop/templates/cronjob.yaml
apiVersion: batch/v1
kind: CronJob
metadata: {{name: nightly}}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
            - name: report
              image: {pinned(r["ci"])}
"""
    code, results, err = gate(
        capsys, "-", "--policy", world["policy"], stdin=rendered, monkeypatch=monkeypatch
    )
    assert code == 0, err
    assert {res["status"] for res in results} == {"TRUSTED"}
    ci = next(res for res in results if res["image"] == pinned(r["ci"]))
    assert [s["line"] for s in ci["sources"]] == [11, 28]  # one result, every place it was found


def test_pin_then_gate_passes_and_touches_only_image_lines(
    world: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    r = world["refs"]
    compose = tmp_path / "compose.yaml"
    original = (
        "# deploy file\r\nservices:\r\n  web:\r\n"
        f"    image: '{r['ci'].name}:1.0'   # the web tier\r\n"
        "    ports: ['8080:80']\r\n"
        f"  api:\r\n    image: {r['both'].name}:1.0\r\n"
    )
    compose.write_bytes(original.encode())
    assert main(["pin", "--check", str(compose)]) == 1
    assert compose.read_bytes() == original.encode()
    capsys.readouterr()
    assert main(["pin", str(compose)]) == 0
    after = compose.read_bytes().decode()
    changed = [
        (a, b) for a, b in zip(original.split("\r\n"), after.split("\r\n"), strict=True) if a != b
    ]
    assert [a.strip().split(":")[0] for a, _ in changed] == ["image", "image"]
    assert all(b.startswith(a.split("'")[0]) for a, b in changed)
    assert f"'{r['ci'].name}:1.0@{r['ci'].digest}'   # the web tier" in after
    assert main(["pin", "--check", str(compose)]) == 0
    capsys.readouterr()
    code, results, err = gate(capsys, str(compose), "--policy", world["policy"])
    assert code == 0 and {res["status"] for res in results} == {"TRUSTED"}, err


def test_report_dir_writes_every_format_and_a_signed_vsa(
    world: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    r = world["refs"]
    listing = tmp_path / "images.txt"
    listing.write_text(f"{pinned(r['ci'])}\n{pinned(r['unsigned'])}\n")
    reports = tmp_path / "reports"
    code, _, err = gate(
        capsys,
        str(listing),
        "--policy",
        world["policy"],
        "--report-dir",
        str(reports),
        "--key",
        str(world["dir"] / "ci.key"),
    )
    assert code == 1, err
    names = sorted(p.name for p in reports.iterdir())
    assert {
        "report.json",
        "report.md",
        "report.html",
        "junit.xml",
        "sarif.json",
        "report.txt",
        "vsa.intoto.jsonl",
    } <= set(names)
    validate(json.loads((reports / "report.json").read_text()))  # real output, its schema
    from gate import dsse, provenance

    envelope = dsse.Envelope.from_json(
        reports.joinpath("vsa.intoto.jsonl").read_bytes().splitlines()[0]
    )
    dsse.verify(envelope, [world["ci"].public_key])
    statement = provenance.Statement.parse(envelope.payload)
    assert statement.predicate["verificationResult"] == "FAILED"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("services:\n  web:\n    image: [unclosed\n", "not valid YAML"),
        ("services:\n  web:\n    image: Nginx:Latest\n", "is not an image reference"),
        ("# nothing here\n", "no images found"),
    ],
)
def test_bad_manifests_exit_2_with_file_and_line(
    world: dict[str, Any],
    tmp_path: Path,
    content: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(content)
    code, _, err = gate(capsys, str(path), "--policy", world["policy"])
    assert code == 2 and message in err
    if message != "no images found":
        assert f"{path}:" in err


def test_empty_input_allowed_and_yaml_bomb(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# none\n")
    assert main(["gate", str(empty), "--policy", world["policy"], "--allow-empty"]) == 0
    bomb = tmp_path / "bomb.yaml"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(
            f"{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},"
            f"*{prev},*{prev},*{prev},*{prev}]"
        )
    bomb.write_text("\n".join(lines) + "\nkind: Pod\n")
    started = time.monotonic()
    code, _, err = gate(capsys, str(bomb), "--policy", world["policy"])
    assert code == 2 and "YAML bomb" in err and time.monotonic() - started < 10


def test_bad_policies_exit_2(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "images.txt"
    listing.write_text(f"{pinned(world['refs']['ci'])}\n")
    bad = tmp_path / "policy.yaml"
    bad.write_text(
        f"version: 1\nsigners:\n  - name: ci\n    key: {world['dir'] / 'ci.key'}\n"
        "rules:\n  - match: '**'\n"
    )
    code, _, err = gate(capsys, str(listing), "--policy", str(bad))
    assert code == 2 and "policy.yaml:4" in err and "private key" in err
    code, _, err = gate(capsys, str(listing), "--policy", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read the policy" in err


def test_registry_down_is_error_never_pass(
    registry_factory: Callable[..., RegistryServer],
    world: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.integration.conftest import push_random_image

    server = registry_factory()
    ref = push_random_image(server, "acme/down", "1.0")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: 1\nsigners:\n  - name: ci\n    key: {world['dir'] / 'ci.pub'}\n"
        "rules:\n  - match: '**'\n"
    )
    listing = tmp_path / "images.txt"
    listing.write_text(f"{ref.name}@{ref.digest}\n")
    server.stop()
    code, results, _ = gate(capsys, str(listing), "--policy", str(policy))
    assert code == 3 and results[0]["status"] == "ERROR" and "cannot reach" in results[0]["reason"]
