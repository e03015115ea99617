"""One error boundary per image: whatever a hostile registry serves, that image alone fails.

A recording server on 127.0.0.1 answers the OCI distribution API with
malformed data (JSON nested thousands deep, an index whose platform list is
not a list, signature layers with absurd fields) while a real registry serves
a good, signed image in the same run. The bad images become ERROR or
UNTRUSTED with one sentence; the good one stays TRUSTED; no traceback.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gate import keys, signatures
from gate.cli import main
from tests.servers.recorder import Recorder

from .conftest import RegistryServer, push_random_image

pytestmark = pytest.mark.integration
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _serve(server: Recorder, repo: str, reference: str, data: bytes, media_type: str) -> str:
    digest = _digest(data)
    headers = {"Content-Type": media_type, "Docker-Content-Digest": digest}
    for ref in (reference, digest):
        server.reply(200, data, headers, path=f"/v2/{repo}/manifests/{ref}")
    return digest


def test_malformed_registry_data_is_that_images_error_only(
    registry: RegistryServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = keys.generate()
    private, public = keys.write_key_pair(str(tmp_path / "ci"), key, None)
    good = push_random_image(registry, "sealgate/hostile-good", "1.0")
    assert main(["sign", str(good), "--key", str(private)]) == 0
    capsys.readouterr()

    with Recorder() as evil:
        evil.reply(404, path=r"/v2/.+")  # rules are tried newest first: this is the fallback
        evil.reply(200, b"{}", {"Content-Type": "application/json"}, path="/v2/")
        host = f"127.0.0.1:{evil.port}"
        deep = b'{"schemaVersion":2,"config":' + b"[" * 5000 + b"]" * 5000 + b"}"
        _serve(evil, "deep", "1.0", deep, OCI_MANIFEST)
        odd_index = json.dumps({"schemaVersion": 2, "manifests": "everything"}).encode()
        _serve(evil, "index", "1.0", odd_index, OCI_INDEX)
        image = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "x", "digest": _digest(b"{}"), "size": 2},
                "layers": [{"mediaType": "x", "digest": _digest(b"y"), "size": 1e300}],
            }
        ).encode()
        digest = _serve(evil, "badsig", "1.0", image, OCI_MANIFEST)
        sig = json.dumps(
            {
                "schemaVersion": 2,
                "layers": [
                    {
                        "mediaType": signatures.SIMPLE_SIGNING_MEDIA_TYPE,
                        "digest": _digest(b"p"),
                        "size": "a lot",
                        "annotations": {"dev.cosignproject.cosign/signature": ["x"]},
                    }
                ],
            }
        ).encode()
        _serve(evil, "badsig", signatures.attachment_tag(digest), sig, OCI_MANIFEST)

        images = [str(good), f"{host}/deep:1.0", f"{host}/index:1.0", f"{host}/badsig:1.0"]
        code = main(["verify", *images, "--key", str(public), "-o", "json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    results = {r["image"]: r for r in json.loads(out)}
    assert code == 3
    assert results[str(good)]["status"] == "TRUSTED"
    assert results[f"{host}/deep:1.0"]["status"] == "ERROR"
    assert "nested more than" in results[f"{host}/deep:1.0"]["reason"]
    assert results[f"{host}/index:1.0"]["status"] == "ERROR"
    assert results[f"{host}/badsig:1.0"]["status"] == "UNTRUSTED", results[f"{host}/badsig:1.0"]
    assert "descriptor is malformed" in results[f"{host}/badsig:1.0"]["reason"]
    for result in results.values():
        assert result["reason"].count("\n") == 0
