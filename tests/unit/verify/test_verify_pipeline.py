"""The pipeline on local sources and the ledger: precheck for every subject, proven digests.

Each test here is a way the landed build said TRUSTED where it must not.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gate import keys, policy, signatures
from gate.ledger import Ledger
from gate.refs import parse, parse_source
from gate.result import Status
from gate.sign import sign_local
from gate.sources import open_local
from gate.verify import Claim, ClaimKind, Evidence, Facts, LedgerStore, Target, Verifier, decide
from tests.imagefiles import OCI_MANIFEST, docker_save_oci, make_image

KEY = keys.generate()


def _policy(text: str = "") -> policy.Policy:
    pem = KEY.public_key.pem.decode().replace("\n", "\n      ")
    return policy.loads(
        (
            "version: 1\n"
            f"signers:\n  - name: ci\n    key: |\n      {pem}\n"
            + (text or "rules:\n  - match: '**'\n    require: {signers: [ci]}\n")
        ).encode()
    )


def _verify(pol: policy.Policy, ledger: Ledger, source: str) -> tuple[Status, str | None, str]:
    verifier = Verifier(pol, client=None, stores=[LedgerStore(ledger)])
    result = verifier.run([Target(parse_source(source))])[0]
    return result.status, result.digest, result.reason


def test_local_subject_gets_the_precheck(tmp_path: Path) -> None:
    """An archive named after a registry the policy does not allow is not TRUSTED."""
    ledger = Ledger.open(tmp_path / "ledger.db")
    path = tmp_path / "image.tar"
    docker_save_oci(path, make_image(), ["evil.example/acme/app:1"])
    sign_local(ledger, open_local(parse_source(f"docker-archive:{path}")), KEY)
    allowed = _policy("registries: [ghcr.io]\nrules:\n  - match: '**'\n")
    status, _, reason = _verify(allowed, ledger, f"docker-archive:{path}")
    assert status is Status.UNTRUSTED and "evil.example is not allowed" in reason
    assert _verify(_policy(), ledger, f"docker-archive:{path}")[0] is Status.TRUSTED


def test_every_name_of_a_local_image_must_satisfy_its_rule(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "ledger.db")
    path = tmp_path / "image.tar"
    docker_save_oci(path, make_image(), ["ghcr.io/acme/sandbox:1", "ghcr.io/acme/prod:1"])
    sign_local(ledger, open_local(parse_source(f"docker-archive:{path}")), KEY)
    lax_and_strict = _policy(
        "rules:\n  - match: ghcr.io/acme/sandbox\n  - match: ghcr.io/acme/prod\n    max_age: 0s\n"
    )
    status, _, reason = _verify(lax_and_strict, ledger, f"docker-archive:{path}")
    assert status is Status.UNTRUSTED and "older than" in reason


def test_archive_naming_a_signed_foreign_digest_is_not_trusted(tmp_path: Path) -> None:
    """The attacker's tarball's index.json names the victim's signed digest."""
    ledger = Ledger.open(tmp_path / "ledger.db")
    victim, mine = make_image("victim"), make_image("attacker")
    victim_archive = tmp_path / "victim.tar"
    docker_save_oci(victim_archive, victim, ["ghcr.io/acme/app:1"])
    sign_local(ledger, open_local(parse_source(f"docker-archive:{victim_archive}")), KEY)

    evil = tmp_path / "evil.tar"
    named = {"mediaType": OCI_MANIFEST, "digest": victim.digest, "size": len(victim.manifest)}
    docker_save_oci(
        evil, mine, ["ghcr.io/acme/app:1"], index_manifests=[named],
        extra_blobs={victim.digest: victim.manifest},
    )  # fmt: skip
    status, digest, _ = _verify(_policy(), ledger, f"docker-archive:{evil}")
    assert (status, digest) == (Status.UNKNOWN, mine.image_id)
    # ... and signing it signs only what is provably its own
    other = Ledger.open(tmp_path / "other.db")
    sign_local(other, open_local(parse_source(f"docker-archive:{evil}")), KEY)
    assert [e.subject for e in other.entries_for(victim.digest)] == []
    assert [e.subject for e in other.entries_for(mine.image_id)] == [mine.image_id]


def test_rules_match_the_repository_never_the_tag() -> None:
    pol = _policy(
        "rules:\n"
        "  - match: '127.0.0.1:5000/acme/app:*-sandbox'\n    pinned: off\n"
        "  - match: '**'\n    require: {signers: [ci]}\n    max_age: 1d\n"
    )
    strict = pol.rules[1]
    assert pol.rule_for(parse("127.0.0.1:5000/acme/app:try-sandbox")) is strict
    assert pol.rule_for(parse("127.0.0.1:5000/acme/app:1.0")) is strict


def test_double_star_covers_the_repository_itself() -> None:
    pol = _policy("rules:\n  - match: 'ghcr.io/acme/payments/**'\n")
    assert pol.rule_for(parse("ghcr.io/acme/payments:1")) is pol.rules[0]
    assert pol.rule_for(parse("ghcr.io/acme/payments/api:1")) is pol.rules[0]
    assert pol.rule_for(parse("ghcr.io/acme/paymentsx:1")) is None


def test_a_signature_from_the_future_does_not_count() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    digest = "sha256:" + "1" * 64
    ref = parse("ghcr.io/acme/app@" + digest)
    pol = _policy("rules:\n  - match: '**'\n    max_age: 1d\n")

    def facts(at: datetime) -> Facts:
        payload = signatures.make_payload(digest, ref.name, {"timestamp": int(at.timestamp())})
        claim = Claim("sig", ClaimKind.SIMPLE_SIGNING, payload, payload, (KEY.sign(payload),))
        return Facts(ref, digest, Evidence(signatures=(claim,)))

    ahead = decide(facts(now + timedelta(days=36500)), pol, pol.rules[0], now)
    assert ahead.status is Status.UNTRUSTED and "in the future" in ahead.reason
    skewed = decide(facts(now + timedelta(minutes=3)), pol, pol.rules[0], now)
    assert skewed.status is Status.TRUSTED


def test_decide_imports_nothing_that_does_io() -> None:
    """The decision is pure: importable with requests, sqlite3 and docker blocked."""
    code = (
        "import sys\n"
        "BLOCKED = ('requests', 'sqlite3', '_sqlite3', 'docker', 'urllib3')\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import gate.verify._decide, gate.verify._precheck, gate.verify._evidence\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False,
        cwd=Path(__file__).resolve().parents[3],
    )  # fmt: skip
    assert done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize(
    "payload",
    [
        b'{"critical": {"type": "cosign container image signature"}, "critical": {}}',
        b"[" * 10000 + b"]" * 10000,
        b'{"critical": {"identity": {"docker-reference": 1}, "image": {"docker-manifest-digest":'
        b' 5}, "type": "cosign container image signature"}, "optional": null}',
        b'{"critical": {"identity": {"docker-reference": "x"}, "image": {"docker-manifest-digest":'
        b' "sha256:' + b"1" * 64 + b'"}, "type": "cosign container image signature"},'
        b' "optional": {"timestamp": 1e300}}',
    ],
)
def test_signed_but_malformed_payloads_never_crash(payload: bytes) -> None:
    digest = "sha256:" + "1" * 64
    claim = Claim("sig", ClaimKind.SIMPLE_SIGNING, payload, payload, (KEY.sign(payload),))
    pol = _policy()
    result = decide(
        Facts(parse("ghcr.io/a/b@" + digest), digest, Evidence(signatures=(claim,))),
        pol,
        pol.rules[0],
        datetime.now(UTC),
    )
    assert result.status in (Status.UNTRUSTED, Status.TRUSTED)
    assert result.reason
