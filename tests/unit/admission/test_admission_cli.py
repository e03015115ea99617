"""``sealgate admission``: bad input is one sentence and exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gate import keys
from gate.cli import main


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    (tmp_path / "ci.pub").write_bytes(keys.generate().public_key.pem)
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\nsigners: [{name: ci, key: ci.pub}]\n"
        "rules: [{match: '**', require: {signers: [ci]}}]\n"
    )
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_serve_refuses_a_bad_tls_pair_and_a_bad_policy(
    policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate")
    code, _, err = _run(capsys, "admission", "serve", "--policy", str(policy_file),
                        "--tls-cert", str(tmp_path / "junk.pem"), "--tls-key",
                        str(tmp_path / "junk.pem"), "--addr", "127.0.0.1:0")  # fmt: skip
    assert code == 2 and "cannot use the TLS certificate" in err and "Traceback" not in err
    code, _, err = _run(capsys, "admission", "serve", "--policy", str(tmp_path / "none.yaml"),
                        "--tls-cert", "c", "--tls-key", "k")  # fmt: skip
    assert code == 2 and "cannot read the policy" in err
    code, _, err = _run(capsys, "admission", "serve", "--policy", str(policy_file),
                        "--tls-cert", "c", "--tls-key", "k", "--cache-ttl", "-1")  # fmt: skip
    assert code == 2 and "--cache-ttl must be from 0 to 86400" in err


def test_manifests_embed_the_policy_and_refuse_what_would_crash_the_webhook(
    policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "admission", "manifests", "--namespace", "sec", "--policy",
                        str(policy_file), "--mode", "enforce", "--no-mutate")  # fmt: skip
    assert code == 0
    docs = {d["kind"]: d for d in yaml.safe_load_all(out) if d}
    assert docs["ConfigMap"]["data"]["policy.yaml"] == policy_file.read_text()
    assert "MutatingWebhookConfiguration" not in docs
    args = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--mode=enforce" in args and "--mutate" not in args
    (tmp_path / "broken.yaml").write_text("version: 1\n")
    code, out, err = _run(
        capsys, "admission", "manifests", "--policy", str(tmp_path / "broken.yaml")
    )
    assert (code, out) == (2, "") and "policy has no" in err
    code, out, err = _run(capsys, "admission", "manifests", "--ca-bundle", str(tmp_path / "nope"))
    assert (code, out) == (2, "") and "cannot read the CA bundle" in err


def test_serve_refuses_kubernetes_api_settings_it_cannot_use(
    policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from tests.admission_wire import CA

    CA.create(tmp_path).issue(tmp_path / "tls.crt", tmp_path / "tls.key")
    base = ["admission", "serve", "--policy", str(policy_file), "--tls-cert",
            str(tmp_path / "tls.crt"), "--tls-key", str(tmp_path / "tls.key"),
            "--addr", "127.0.0.1:0"]  # fmt: skip
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    code, _, err = _run(capsys, *base, "--in-cluster")
    assert code == 2 and "--in-cluster needs KUBERNETES_SERVICE_HOST" in err
    code, _, err = _run(capsys, *base, "--kubeconfig", str(tmp_path / "none"))
    assert code == 2 and "cannot read the kubeconfig" in err and "Traceback" not in err
    code, _, err = _run(capsys, *base, "--kube-context", "prod")
    assert code == 2 and "--kube-context needs --kubeconfig FILE" in err
    code, _, err = _run(capsys, *base, "--in-cluster", "--kubeconfig", "k")
    assert code == 2 and "--kubeconfig: not allowed with argument --in-cluster" in err


def test_manifests_pull_secrets_flag_adds_the_token_and_the_role(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(capsys, "admission", "manifests", "--pull-secrets")
    assert code == 0
    docs = {d["kind"]: d for d in yaml.safe_load_all(out) if d}
    assert {"ClusterRole", "ClusterRoleBinding"} <= set(docs)
    assert docs["Deployment"]["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
