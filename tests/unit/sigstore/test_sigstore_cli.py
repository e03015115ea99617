"""``sealgate verify-blob`` and ``sealgate trust-root``: exit codes, messages, files."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from gate.cli import main

BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GITHUB = "https://token.actions.githubusercontent.com"


@pytest.fixture
def cases(vectors: Path) -> Path:
    return vectors / "sigstore-conformance" / "bundle-verify"


@pytest.fixture(autouse=True)
def trust_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "trust"
    monkeypatch.setenv("SEALGATE_TRUST_DIR", str(directory))
    return directory


def _keyless(cases: Path, case: str, *extra: str) -> list[str]:
    return [
        "verify-blob",
        str(cases / "a.txt"),
        "--bundle",
        str(cases / case / "bundle.sigstore.json"),
        "--certificate-oidc-issuer",
        GITHUB,
        *extra,
    ]


def test_verified_prints_who_and_when(cases: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_keyless(cases, "happy-path-v0.2", "--certificate-identity", BEACON)) == 0
    out = capsys.readouterr().out
    assert out.startswith("VERIFIED ") and BEACON in out and "log index" in out


def test_json_output_names_the_claims(cases: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = _keyless(cases, "happy-path-v0.3", "--certificate-identity-regexp", ".*", "-o", "json")
    argv += ["--certificate-claim", "runner_environment=github-hosted"]
    digest = "sha256:" + hashlib.sha256((cases / "a.txt").read_bytes()).hexdigest()
    argv[1] = digest
    assert main(argv) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert (
        result["identity"] == BEACON
        and result["extensions"]["runner_environment"] == "github-hosted"
    )


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--certificate-identity", "https://evil.example/x"], 1, "is not 'https://evil"),
        (["--certificate-identity-regexp", "("], 2, "does not compile"),
        (
            ["--certificate-identity", BEACON, "--certificate-claim", "oops"],
            2,
            "must be NAME=VALUE",
        ),
        (
            ["--certificate-identity", BEACON, "--trusted-root", "staging"],
            1,
            "not signed by the CA",
        ),
    ],
)
def test_rejections_and_usage_errors(
    cases: Path, capsys: pytest.CaptureFixture[str], extra: list[str], code: int, message: str
) -> None:
    assert main(_keyless(cases, "happy-path-v0.1", *extra)) == code
    err = capsys.readouterr().err
    assert err.startswith("sealgate: error: ") and message in err and "Traceback" not in err


def test_missing_issuer_and_missing_files_are_usage_errors(
    cases: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = str(cases / "happy-path-v0.1" / "bundle.sigstore.json")
    assert (
        main(
            [
                "verify-blob",
                str(cases / "a.txt"),
                "--bundle",
                bundle,
                "--certificate-identity",
                BEACON,
            ]
        )
        == 2
    )
    assert main(["verify-blob", "/nonexistent", "--bundle", bundle, "--key", "x.pub"]) == 2
    assert (
        main(
            [
                "verify-blob",
                str(cases / "a.txt"),
                "--bundle",
                "/nonexistent",
                "--certificate-identity",
                BEACON,
                "--certificate-oidc-issuer",
                GITHUB,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "--certificate-oidc-issuer is required" in err and "cannot read the bundle" in err


def test_key_signed_bundle(cases: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = cases / "managed-key-happy-path"
    argv = [
        "verify-blob",
        str(cases / "a.txt"),
        "--bundle",
        str(case / "bundle.sigstore.json"),
        "--key",
        str(case / "key.pub"),
    ]
    assert main(argv) == 0
    assert "signed by key " in capsys.readouterr().out


def test_trust_root_import_show_and_default(
    cases: Path, vectors: Path, trust_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    staging = vectors / "sigstore-trust-roots" / "staging.trusted_root.json"
    wrong_instance = _keyless(
        cases, "bundle-from-wrong-instance_fail", "--certificate-identity", BEACON
    )
    assert main(wrong_instance) == 1  # the default is the embedded public-good root
    assert main(["trust-root", "import", str(staging)]) == 0
    assert (trust_dir / "staging.trusted_root.json").read_bytes() == staging.read_bytes()
    assert main(wrong_instance) == 0  # imported roots join the default
    assert main(["trust-root", "show"]) == 0
    out = capsys.readouterr().out
    assert "public-good: embedded" in out and "https://fulcio.sigstage.dev" in out


def test_trust_root_import_refuses_other_files(
    cases: Path, trust_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trust-root", "import", str(cases / "a.txt")]) == 2
    assert "is not a trusted root" in capsys.readouterr().err
    assert not trust_dir.exists()


def test_trust_root_update_never_fetches(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trust-root", "update"]) == 3
    err = capsys.readouterr().err
    assert "needs Sigstore's TUF repository over the network" in err and "trust-root import" in err


def test_dsse_bundle_with_predicate_type_and_issuer_regexp(
    cases: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = cases / "happy-path-intoto-in-dsse-v3"
    argv = ["verify-blob", str(cases / "a.txt"), "--bundle", str(case / "bundle.sigstore.json")]
    argv += [
        "--certificate-identity",
        BEACON,
        "--certificate-oidc-issuer-regexp",
        r"https://token\.actions\..*",
    ]
    envelope = json.loads((case / "bundle.sigstore.json").read_text())["dsseEnvelope"]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert main([*argv, "--predicate-type", statement["predicateType"]]) == 0
    assert f"predicate {statement['predicateType']}" in capsys.readouterr().out
    assert main([*argv, "--predicate-type", "https://example.com/other"]) == 1
    assert "predicate type is not https://example.com/other" in capsys.readouterr().err
