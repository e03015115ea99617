"""Every sigstore-conformance ``bundle-verify`` case through ``tests/conformance/sigstore-client``.

Each case runs twice: with the artifact as a file and as ``sha256:<hex>``.
A case directory ending in ``_fail`` must be rejected (any non-zero exit),
every other one verified (exit 0). The cases are in
tests/assets/vectors/sigstore-conformance (INDEX.md §F).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import VECTORS

CLIENT = Path(__file__).with_name("sigstore-client")
CASES = VECTORS / "sigstore-conformance" / "bundle-verify"
DEFAULT_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"


def _cases() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if p.is_dir())


def _argv(case: Path, form: str) -> list[str]:
    artifact = case / "artifact" if (case / "artifact").exists() else CASES / "a.txt"
    target = str(artifact)
    if form == "digest":
        target = "sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest()
    argv = ["verify-bundle", "--bundle", str(case / "bundle.sigstore.json")]
    if (case / "key.pub").exists():
        argv += ["--key", str(case / "key.pub")]
    else:
        identity = case / "identity"
        issuer = case / "issuer"
        argv += [
            "--certificate-identity",
            identity.read_text().strip() if identity.exists() else DEFAULT_IDENTITY,
            "--certificate-oidc-issuer",
            issuer.read_text().strip() if issuer.exists() else DEFAULT_ISSUER,
        ]
    if (case / "trusted_root.json").exists():
        argv += ["--trusted-root", str(case / "trusted_root.json")]
    return [*argv, target]


def test_there_are_70_cases() -> None:
    assert len(_cases()) == 70


@pytest.mark.parametrize("form", ["file", "digest"])
@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.name)
def test_bundle_verify(case: Path, form: str) -> None:
    done = subprocess.run(
        [sys.executable, str(CLIENT), *_argv(case, form)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    if case.name.endswith("_fail"):
        assert done.returncode != 0, f"accepted: {done.stdout}"
        assert done.stderr.startswith("sealgate: error: "), done.stderr
    else:
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("VERIFIED "), done.stdout


def test_staging_flag_selects_the_embedded_staging_root() -> None:
    # The production-rejected staging bundle verifies once the client is told --staging.
    case = CASES / "bundle-from-wrong-instance_fail"
    argv = _argv(case, "file")
    done = subprocess.run(
        [sys.executable, str(CLIENT), argv[0], "--staging", *argv[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
