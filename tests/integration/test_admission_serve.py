"""``sealgate admission serve`` as users run it: its own process, real TLS, SIGTERM to stop.

Checks the command's wiring that the in-process tests do not: flags, the
mounted docker config (``--docker-config``) reaching a Basic-auth registry,
the plain-HTTP ``--metrics-addr`` endpoint, and a clean exit.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from gate import keys
from gate.sign import sign_image
from tests.admission_wire import CA, check_response, pod, review

from ..conftest import ROOT
from .conftest import RegistryServer, free_port, push_random_image

pytestmark = pytest.mark.integration


def test_serve_answers_over_tls_with_registry_credentials_from_docker_config(
    basic_registry: RegistryServer, tmp_path: Path, isolated_docker_config: Path
) -> None:
    key = keys.generate()
    with basic_registry.client() as client:
        signed = push_random_image(
            basic_registry, f"adm/serve/{tmp_path.name[-20:]}", "1.0", client=client
        )
        sign_image(client, signed, key)
    (tmp_path / "ci.pub").write_bytes(key.public_key.pem)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nsigners: [{name: ci, key: ci.pub}]\n"
        "rules: [{match: '**', require: {signers: [ci]}, pinned: warn}]\n"
    )
    auth = base64.b64encode(f"{basic_registry.username}:{basic_registry.password}".encode())
    mounted = tmp_path / "mounted" / "config.json"
    mounted.parent.mkdir()
    mounted.write_text(json.dumps({"auths": {basic_registry.host: {"auth": auth.decode()}}}))
    ca = CA.create(tmp_path)
    ca.issue(tmp_path / "tls.crt", tmp_path / "tls.key")
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SEALGATE_LEDGER": str(tmp_path / "l.db"),
           "SEALGATE_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    command = [sys.executable, "-m", "gate.cli", "admission", "serve", "--policy", str(policy),
               "--tls-cert", str(tmp_path / "tls.crt"), "--tls-key", str(tmp_path / "tls.key"),
               "--addr", f"127.0.0.1:{port}", "--mutate", "--docker-config", str(mounted),
               "--metrics-addr", f"127.0.0.1:{metrics_port}", "--drain-seconds", "2"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    session = requests.Session()
    session.trust_env, session.verify = False, str(ca.bundle)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if session.get(f"https://127.0.0.1:{port}/readyz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        tag = f"{signed.name}:1.0"
        request = review(pod("web", tag))
        body = session.post(f"https://127.0.0.1:{port}/mutate", json=request, timeout=30).json()
        check_response(body, request)
        answer = body["response"]
        assert answer["allowed"] is True, answer
        patch = json.loads(base64.b64decode(answer["patch"]))
        assert patch[0]["value"] == f"{tag}@{signed.digest}"
        scraped = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert (
            'sealgate_admissions_total{dry_run="false",endpoint="mutate",verdict="allowed"} 1.0'
            in scraped
        )
        # SIGTERM: unready at once, still answering while the endpoint goes away, then exit 0.
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert session.get(f"https://127.0.0.1:{port}/readyz", timeout=5).status_code == 503
        late = session.post(f"https://127.0.0.1:{port}/validate", json=request, timeout=30)
        assert late.status_code == 200 and late.json()["response"]["allowed"] is True
    finally:
        session.close()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert "Traceback" not in err
