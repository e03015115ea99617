"""The command line: keys, policy check/explain, usage errors, and a light start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gate import keys
from gate.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_start_up_imports_nothing_heavy() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import gate.cli"],
        capture_output=True,
        text=True,
        check=True,
    )
    modules = {
        line.split("|")[-1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if "|" in line
    }
    assert not modules & {
        "cryptography",
        "requests",
        "docker",
        "yaml",
        "jinja2",
        "nacl",
        "github",
        "gitlab",
    }


def test_keys_generate_needs_a_password_or_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SEALGATE_KEY_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, _, err = run(capsys, "keys", "generate", "--out", str(tmp_path / "k"))
    assert code == 2 and "SEALGATE_KEY_PASSWORD" in err
    assert not list(tmp_path.iterdir())
    monkeypatch.setenv("SEALGATE_KEY_PASSWORD", "correct horse")
    code, out, _ = run(
        capsys, "keys", "generate", "--out", str(tmp_path / "k"), "--type", "ed25519"
    )
    assert code == 0 and "key ID" in out
    key = keys.load_private_key(str(tmp_path / "k.key"))
    assert key.public_key.key_id == keys.load_public_key(str(tmp_path / "k.pub")).key_id
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "k.key").read_bytes()
    code, _, err = run(capsys, "keys", "generate", "--out", str(tmp_path / "k"))
    assert code == 2 and "exist" in err


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    (tmp_path / "ci.pub").write_bytes(keys.generate().public_key.pem)
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\nsigners:\n  - name: ci\n    key: ci.pub\n    level: 2 - release\n"
        "registries: [ghcr.io]\nrules:\n  - match: 'ghcr.io/acme/**'\n"
        "    min_level: 2\n    max_age: 30d\n"
        "    attestations:\n      - type: slsaprovenance\n        builder: https://ci.example/b\n"
    )
    return path


def test_policy_check_and_explain(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "check", str(policy_file))
    assert code == 0 and "valid (1 signer, 1 rule, default deny)" in out
    code, out, _ = run(capsys, "policy", "explain", str(policy_file), "ghcr.io/acme/api:1.0")
    assert code == 0
    assert "match 'ghcr.io/acme/**'" in out and f"{policy_file}:8" in out
    assert "Min level: 2" in out and "Max age:   30 days" in out and "NOT pinned" in out
    assert "Requires:  slsaprovenance from builder https://ci.example/b" in out
    code, out, _ = run(capsys, "policy", "explain", str(policy_file), "docker.io/library/nginx")
    assert "NOT in the allowed registries" in out and "none matches" in out


def test_policy_check_invalid(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy_file.write_text(policy_file.read_text().replace("max_age: 30d", "max_age: thirty"))
    code, _, err = run(capsys, "policy", "check", str(policy_file))
    assert code == 2 and f"{policy_file}:10: 'thirty' is not a duration" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["verify", "nginx", "--key", "a.pub", "--policy", "p.yaml"],
            "either a policy or public keys",
        ),
        (["sign", "nginx", "--key", "/nonexistent/key"], "nonexistent"),
        (["sign", "nginx", "--key", "env://SEALGATE_TEST_UNSET_VAR"], "SEALGATE_TEST_UNSET_VAR"),
        (["untrust", "sha256:" + "0" * 64, "--key", "k", "--reason", " "], "--reason"),
        (["gate", "x.yaml", "--policy", "p.yaml", "--key", "k"], ""),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "k").write_bytes(keys.generate().to_pem(None))
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and err.startswith("sealgate: error:")
