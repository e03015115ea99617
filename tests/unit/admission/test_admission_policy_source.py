"""The webhook's PolicySource: a policy change always arrives, even one made in pieces.

A ConfigMap (the policy) and a Secret (its keys) are synced by the kubelet
separately; whatever order and timing they arrive in, the webhook must end up
on the policy the files say, never stuck on the one before.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gate import keys, policy
from gate.admission import PolicySource


def _write(path: Path, key: str) -> None:
    path.write_text(
        f"version: 1\nsigners:\n  - name: ci\n    key: {key}\n"
        'rules:\n  - match: "**"\n    require: {signers: [ci]}\n'
    )


def test_a_policy_naming_a_key_not_there_yet_loads_once_the_key_arrives(tmp_path: Path) -> None:
    (tmp_path / "old.pub").write_bytes(keys.generate().public_key.pem)
    path = tmp_path / "policy.yaml"
    _write(path, "old.pub")
    source = PolicySource(str(path), every=0)
    first = source.current()
    _write(path, "new.pub")  # the ConfigMap came first...
    assert source.current() is first  # ...so the last good policy stays
    (tmp_path / "new.pub").write_bytes(keys.generate().public_key.pem)  # then the Secret
    assert source.current().files[0] == str(tmp_path / "new.pub")


def test_a_key_that_changes_while_the_policy_loads_is_seen_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "ci.pub"
    key.write_bytes(keys.generate().public_key.pem)
    path = tmp_path / "policy.yaml"
    _write(path, "ci.pub")
    source = PolicySource(str(path), every=0)
    real = policy.load
    rotated = keys.generate().public_key.pem

    def load_then_rotate(name: str) -> policy.Policy:
        loaded = real(name)
        key.write_bytes(rotated)  # a writer that lands just after the key was read
        return loaded

    _write(path, "./ci.pub")  # a change, so the source loads
    monkeypatch.setattr(policy, "load", load_then_rotate)
    stale = source.current()
    monkeypatch.setattr(policy, "load", real)
    assert source.current().version != stale.version
    assert source.current().version == real(str(path)).version
