"""Attacks through registry references and hostile registries."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate import keys
from gate.cli import main
from gate.registry import OCI_INDEX, OCI_MANIFEST, digest_of
from tests.integration.conftest import RegistryServer, push_random_image
from tests.servers.recorder import Recorder, Reply

ROOT = Path(__file__).resolve().parents[2]


def _policy(tmp_path: Path, ci: str, release: str, host: str, extra: str = "") -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(f"""\
version: 1
signers:
  - {{name: ci, key: {ci}}}
  - {{name: release, key: {release}}}
rules:
  - match: "{host}/acme/payments/**"
    require: {{signers: [ci, release], threshold: 2}}
    pinned: required
  - match: "**"
    require: {{signers: [ci], threshold: 1}}
    pinned: off
{extra}""")
    return str(path)


def _verify(capsys: pytest.CaptureFixture[str], image: str, policy: str) -> dict[str, Any]:
    main(["verify", image, "--policy", policy, "-o", "json"])
    out, _ = capsys.readouterr()
    return json.loads(out)[0]


def test_zero_padded_port_selects_a_laxer_rule_for_the_same_repository(
    registry: RegistryServer,
    keypair: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Rules match the registry host as text (policy.py:104, refs._split_domain keeps the port
    as written). `127.0.0.1:0PORT` (as `ghcr.io:443`, `registry-1.docker.io:443`) is the same
    registry and repository, but no longer matches the payments rule: the catch-all decides, so
    one signature (of two required) and an unpinned tag pass."""
    _, release_pub = keys.write_key_pair(str(tmp_path / "release"), keys.generate(), None)
    ref = push_random_image(registry, "acme/payments/api", "1.0")
    assert main(["sign", str(ref), "--key", keypair[0]]) == 0  # ci only; release never signed
    capsys.readouterr()
    policy = _policy(tmp_path, keypair[1], str(release_pub), registry.host)
    honest = _verify(capsys, f"{ref.name}@{ref.digest}", policy)
    assert honest["status"] == "UNTRUSTED"  # 1 of 2 required signatures

    host, port = registry.host.split(":")
    alias = f"{host}:0{port}/acme/payments/api:1.0"  # same registry, same repository, a tag
    result = _verify(capsys, alias, policy)
    assert result["status"] != "TRUSTED", (
        f"{alias} passed under the catch-all rule: {result['reason']}"
    )


def _run_cli(
    args: list[str], timeout: float
) -> tuple[float, subprocess.CompletedProcess[str] | None]:
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gate.cli", *args],
            capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return time.monotonic() - start, None
    return time.monotonic() - start, done


@pytest.fixture
def hostile() -> Iterator[Recorder]:
    with Recorder() as server:
        server.reply(200, {}, path="/v2/?")
        yield server


def test_hostile_manifest_hangs_the_json_prescan(
    hostile: Recorder, keypair: tuple[str, str]
) -> None:
    """A registry answers a manifest of 256 KB (the cap is 4 MB): a quote and escaped quotes,
    no closing quote. strict_json._depth's regex is O(n^2) on it; the per-request deadline
    has already ended, nothing else bounds it."""
    body = b'"' + b'\\"' * 128_000
    hostile.reply(200, body, {"Content-Type": OCI_MANIFEST}, path="/v2/evil/app/manifests/.*")
    host = f"127.0.0.1:{hostile.port}"
    elapsed, done = _run_cli(["verify", f"{host}/evil/app:1", "--key", keypair[1]], timeout=20)
    assert done is not None, f"verify still running after {elapsed:.0f} s on a 256 KB manifest"


def test_recursion_error_from_a_registry_error_body(
    hostile: Recorder, keypair: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """registry._error_detail json.loads the first 4 KB of an error body and catches ValueError,
    AttributeError, IndexError and TypeError, not RecursionError: a 500 whose body is 4000 '['
    raises RecursionError out of _fail(). verify turns it into 'unexpected RecursionError';
    the message the user gets names no registry and no status."""
    hostile.reply(
        500, b"[" * 4000, {"Content-Type": "application/json"}, path="/v2/evil/app/manifests/.*"
    )
    host = f"127.0.0.1:{hostile.port}"
    main(["verify", f"{host}/evil/app:1", "--key", keypair[1], "-o", "json"])
    out, _ = capsys.readouterr()
    result = json.loads(out)[0]
    assert "RecursionError" not in result["reason"] and "500" in result["reason"], result["reason"]


def test_recursion_error_from_an_unlabelled_manifest(
    hostile: Recorder, keypair: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """get_manifest: a Content-Type outside MANIFEST_MEDIA_TYPES makes it json.loads the body
    (not strict_json) catching only ValueError/AttributeError: deep nesting raises
    RecursionError out of the registry client."""
    hostile.reply(
        200, b"[" * 5000, {"Content-Type": "text/plain"}, path="/v2/evil/app/manifests/.*"
    )
    host = f"127.0.0.1:{hostile.port}"
    main(["verify", f"{host}/evil/app:1", "--key", keypair[1], "-o", "json"])
    out, _ = capsys.readouterr()
    result = json.loads(out)[0]
    assert "RecursionError" not in result["reason"], result["reason"]


def test_sign_against_a_hostile_registry_is_a_traceback(
    hostile: Recorder, keypair: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Outside the verify pipeline's error boundary the same RecursionError reaches cli.main,
    which only catches SealgateError: `sealgate sign` prints a traceback (exit 1, not 2/3)."""
    hostile.reply(500, b"[" * 4000, {"Content-Type": "application/json"}, path="/v2/evil/app/.*")
    host = f"127.0.0.1:{hostile.port}"
    try:
        code = main(["sign", f"{host}/evil/app:1", "--key", keypair[0]])
    except RecursionError as e:  # what a user sees as a traceback
        pytest.fail(f"sealgate sign raised {type(e).__name__} out of main()")
    assert code in (2, 3)


def _tiny_manifest(i: int) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"n": str(i)},
         "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                    "digest": digest_of(b"{}")}, "layers": []},
        separators=(",", ":"),
    ).encode()  # fmt: skip


def test_a_referrers_list_without_bound_stalls_verification(
    hostile: Recorder, keypair: tuple[str, str]
) -> None:
    """RegistryStore.referrers fetches, one after another, the manifest of every referrer
    listed without an artifactType (cosign v2.6's shape) — however many the registry lists
    (a 4 MB page holds ~25,000; registry._MAX_PAGES allows 10,000 pages). Each fetch may take
    up to the 60 s per-request deadline. 2,000 referrers answered in 50 ms each: 100 s for one
    image, and nothing caps the count or the total time."""
    subject = _tiny_manifest(-1)
    hostile.reply(200, subject, {"Content-Type": OCI_MANIFEST}, path="/v2/evil/app/manifests/1")
    hostile.reply(404, b"", path=r"/v2/evil/app/manifests/sha256-.*\.sig")
    manifests = {digest_of(m): m for m in (_tiny_manifest(i) for i in range(2000))}
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": d, "size": len(m)}
                      for d, m in manifests.items()],
    }  # fmt: skip
    hostile.reply(200, json.dumps(index).encode(), {"Content-Type": OCI_INDEX},
                  path="/v2/evil/app/referrers/.*")  # fmt: skip

    def referrer(request: Any) -> Reply | None:
        digest = request.path.rsplit("/", 1)[1]
        if digest in manifests:
            return Reply(200, manifests[digest], {"Content-Type": OCI_MANIFEST}, delay=0.05)
        return None

    hostile.route("GET", r"/v2/evil/app/manifests/sha256:.*", referrer)
    host = f"127.0.0.1:{hostile.port}"
    elapsed, done = _run_cli(["verify", f"{host}/evil/app:1", "--key", keypair[1]], timeout=30)
    assert done is not None, f"verify of one image still running after {elapsed:.0f} s"


def test_recursion_error_from_a_token_reply(
    hostile: Recorder, keypair: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """registry_auth._read_json: json.loads of the token reply catches ValueError only; a token
    service answering 5000 '[' raises RecursionError through the transport (a traceback from
    `sealgate sign`, 'unexpected RecursionError' from verify)."""
    host = f"127.0.0.1:{hostile.port}"
    challenge = (
        f'Bearer realm="http://{host}/token",service="evil",scope="repository:evil/app:pull"'
    )
    hostile.clear_rules()
    hostile.reply(401, b"", {"WWW-Authenticate": challenge}, path="/v2/.*")
    hostile.reply(200, b"[" * 5000, {"Content-Type": "application/json"}, path="/token")
    try:
        code = main(["sign", f"{host}/evil/app:1", "--key", keypair[0]])
    except RecursionError as e:
        pytest.fail(f"sealgate sign raised {type(e).__name__} out of main()")
    assert code in (2, 3)


def test_a_link_header_sends_the_verifier_to_any_host(
    hostile: Recorder, keypair: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """registry._next_link resolves `Link: <url>; rel="next"` against the request URL and the
    client follows it wherever it points (registry.py _referrers_api_call / list_tags pass the
    absolute URL to Transport.request, which only withholds credentials): a hostile registry
    makes the gate send GETs to any host and port its network reaches (cloud metadata,
    internal services) — blind SSRF from every CI job that verifies its image."""
    with Recorder() as internal:
        internal.reply(200, {"manifests": []}, {"Content-Type": OCI_INDEX})
        subject = _tiny_manifest(-2)
        hostile.reply(200, subject, {"Content-Type": OCI_MANIFEST}, path="/v2/evil/app/manifests/1")
        hostile.reply(404, b"", path=r"/v2/evil/app/manifests/sha256-.*\.sig")
        hostile.reply(
            200, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []},
            {"Content-Type": OCI_INDEX,
             "Link": f'<http://127.0.0.1:{internal.port}/latest/meta-data/iam>; rel="next"'},
            path="/v2/evil/app/referrers/.*",
        )  # fmt: skip
        host = f"127.0.0.1:{hostile.port}"
        main(["verify", f"{host}/evil/app:1", "--key", keypair[1], "-o", "json"])
        capsys.readouterr()
        assert internal.requests == [], (
            f"the verifier fetched {[r.target for r in internal.requests]} from another host"
        )
