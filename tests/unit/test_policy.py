"""The trust policy: loading, errors at file:line, and which rule applies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gate import keys, policy
from gate.errors import PolicyError
from gate.policy import Pinned, Unsupported
from gate.refs import parse

DIGEST = "sha256:" + "a" * 64


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    for name in ("ci", "release"):
        (tmp_path / f"{name}.pub").write_bytes(keys.generate().public_key.pem)
    (tmp_path / "private.key").write_bytes(keys.generate().to_pem(None))
    return tmp_path


GOOD = """\
version: 1
signers:
  - name: ci
    key: ci.pub
    level: 1
  - name: release
    key: release.pub
    level: "2 - release"
registries: [ghcr.io, 127.0.0.1:5000]
rules:
  - match: "ghcr.io/acme/payments/**"
    require: {signers: [ci, release], threshold: 2}
    min_level: 2
    max_age: 90d
    pinned: required
    unsupported: deny
    attestations:
      - type: slsaprovenance
        builder: https://github.com/acme/payments/.github/workflows/release.yml@refs/heads/main
  - match: "**"
    require: {signers: [ci, release], threshold: 1}
    pinned: warn
default: deny
"""


def _write(dir: Path, text: str) -> Path:
    path = dir / "policy.yaml"
    path.write_text(text)
    return path


def test_full_policy_loads(keydir: Path) -> None:
    pol = policy.load(_write(keydir, GOOD))
    assert set(pol.signers) == {"ci", "release"}
    assert pol.signers["release"].level == 2 and pol.signers["release"].label == "release"
    first, second = pol.rules
    assert first.threshold == 2 and first.min_level == 2 and first.max_age == timedelta(days=90)
    assert first.unsupported is Unsupported.DENY and first.line == 11
    assert first.attestations[0].predicate_type == "slsaprovenance"
    assert second.pinned is Pinned.WARN
    assert pol.digest and pol.digest.startswith("sha256:")


def test_rule_matching_first_wins_and_globs(keydir: Path) -> None:
    pol = policy.load(_write(keydir, GOOD))
    assert pol.rule_for(parse(f"ghcr.io/acme/payments/api@{DIGEST}")) is pol.rules[0]
    assert pol.rule_for(parse(f"ghcr.io/acme/web@{DIGEST}")) is pol.rules[1]
    assert pol.registry_allowed(parse("127.0.0.1:5000/x"))
    assert not pol.registry_allowed(parse("nginx"))


def test_single_star_does_not_cross_slash(keydir: Path) -> None:
    text = GOOD.replace('"ghcr.io/acme/payments/**"', '"ghcr.io/acme/*"').replace(
        '  - match: "**"\n', '  - match: "docker.io/**"\n'
    )
    pol = policy.load(_write(keydir, text))
    assert pol.rule_for(parse(f"ghcr.io/acme/web@{DIGEST}")) is pol.rules[0]
    assert pol.rule_for(parse(f"ghcr.io/acme/payments/api@{DIGEST}")) is None


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            ("pinned: warn", "pinned: sometimes"),
            r"policy.yaml:22: pinned is 'sometimes'; allowed: required, warn, off",
        ),
        (
            ("threshold: 2}", "threshold: 3}"),
            r"policy.yaml:12: threshold 3 is more than the 2 signers",
        ),
        (
            ("signers: [ci, release], threshold: 1", "signers: [ci, bob], threshold: 1"),
            r"policy.yaml:21: unknown signer 'bob'",
        ),
        (("max_age: 90d", "max_age: soon"), r"policy.yaml:14: 'soon' is not a duration"),
        (
            ("min_level: 2", "min_levle: 2"),
            r"policy.yaml:13: unknown key 'min_levle' in a rule; allowed: match",
        ),
        (("key: ci.pub", "key: private.key"), r"policy.yaml:4: signer 'ci': .*private key"),
        (("key: ci.pub", "key: missing.pub"), r"policy.yaml:4: signer 'ci':"),
        (("version: 1", "version: 2"), r"policy.yaml:1: policy version must be 1"),
        (("default: deny", "default: allow"), r"policy.yaml:23: default must be 'deny'"),
        (("rules:", "rules: ["), r"policy.yaml:\d+: policy is not valid YAML"),
    ],
)
def test_errors_name_file_line_and_key(keydir: Path, change: tuple[str, str], match: str) -> None:
    path = _write(keydir, GOOD.replace(*change))
    with pytest.raises(PolicyError, match=match):
        policy.load(path)


def test_unreadable_and_empty_policies(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy"):
        policy.load(tmp_path / "nope.yaml")
    with pytest.raises(PolicyError, match="policy is empty"):
        policy.load(_write(tmp_path, ""))
    with pytest.raises(PolicyError, match="must be a mapping"):
        policy.load(_write(tmp_path, "- just a list\n"))


def test_yaml_bomb_does_not_expand(tmp_path: Path) -> None:
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
    for i in range(1, 12):
        prev, cur = chr(96 + i), chr(97 + i)
        bomb += f"{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev}]\n"
    with pytest.raises(PolicyError, match="unknown key 'a'"):
        policy.load(_write(tmp_path, bomb))


def test_inline_and_env_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pem = keys.generate().public_key.pem.decode()
    monkeypatch.setenv("RELEASE_PUB", pem)
    inline = "\n".join("      " + line for line in pem.strip().splitlines())
    text = (
        f"version: 1\nsigners:\n  - name: a\n    key: |\n{inline}\n"
        "  - name: b\n    key: env://RELEASE_PUB\nrules:\n  - match: '**'\n"
    )
    pol = policy.load(_write(tmp_path, text))
    assert pol.signers["a"].key.key_id == pol.signers["b"].key.key_id
    assert pol.rules[0].signers == ("a", "b")


def test_implicit_policy_from_keys() -> None:
    pol = policy.from_keys([keys.generate().public_key])
    rule = pol.rule_for(parse("anything:tag"))
    assert rule is not None and rule.pinned is Pinned.OFF and not pol.explicit


def test_a_rotated_key_file_changes_the_version_and_the_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Caches key verdicts by version and reload on stamp: both must see a key file change."""
    monkeypatch.setenv("SOME_PEM", keys.generate().public_key.pem.decode())
    key_file = tmp_path / "ci.pub"
    key_file.write_bytes(keys.generate().public_key.pem)
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\nsigners:\n  - name: ci\n    key: ci.pub\n"
        "  - name: env\n    key: env://SOME_PEM\n"
        'rules:\n  - match: "**"\n    require: {signers: [ci]}\n'
    )
    before = policy.load(path)
    assert before.files[0] == str(key_file)  # env:// and inline keys are no files
    assert not any("SOME_PEM" in f for f in before.files)
    stamp = policy.stamp(str(path), before)
    key_file.write_bytes(keys.generate().public_key.pem)
    after = policy.load(path)
    assert before.digest == after.digest  # the policy file did not change...
    assert before.version != after.version  # ...but what it trusts did
    assert policy.stamp(str(path), before) != stamp
    key_file.unlink()
    assert policy.stamp(str(path), before)[1][0] == "missing"


def test_an_imported_trust_root_changes_the_version_and_the_stamp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keyless policy without ``trust:`` trusts the embedded root plus every imported one:
    importing, replacing or removing one must reach a running webhook or watchdog."""
    from gate.sigstore import import_root

    roots = Path(__file__).parents[1] / "assets" / "vectors"
    trust = tmp_path / "trust"
    monkeypatch.setenv("SEALGATE_TRUST_DIR", str(trust))
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\nsigners:\n  - name: r\n"
        "    keyless: {issuer: 'https://issuer.example', subject: 'me@example.com'}\n"
        "rules:\n  - match: '**'\n"
    )
    seen = [policy.load(path)]
    stamps = [policy.stamp(str(path), seen[0])]
    staging = roots / "sigstore-trust-roots" / "staging.trusted_root.json"
    other = roots / "github-attestations" / "cli-testdata-trusted_root.json"
    (tmp_path / "mine.json").write_bytes(staging.read_bytes())
    import_root(str(tmp_path / "mine.json"))  # a new root
    (tmp_path / "mine.json").write_bytes(other.read_bytes())
    for change in (lambda: import_root(str(tmp_path / "mine.json")), (trust / "mine.json").unlink):
        stamps.append(policy.stamp(str(path), seen[-1]))
        seen.append(policy.load(path))
        change()  # replaced in place, then removed
    stamps.append(policy.stamp(str(path), seen[-1]))
    seen.append(policy.load(path))
    versions = [p.version for p in seen]
    assert len(set(versions[:3])) == 3 and versions[3] == versions[0], versions
    assert len(set(stamps)) == 4, stamps
