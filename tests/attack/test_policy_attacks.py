"""Hostile policy files: every invalid policy is a clear error (exit 2), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.cli import main


@pytest.mark.parametrize(
    "command", [["policy", "check"], ["verify", "127.0.0.1:1/x/y:1", "--policy"]]
)
def test_deeply_nested_policy_is_a_traceback(tmp_path: Path, command: list[str]) -> None:
    """policy.loads catches yaml.MarkedYAMLError/YAMLError/UnicodeDecodeError around
    yaml.compose; PyYAML's composer recurses once per nesting level, so 5,000 '[' (10 KB, far
    under MAX_POLICY_BYTES) raise RecursionError out of cli.main."""
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nsigners: " + "[" * 5000 + "]" * 5000 + "\n")
    args = [*command[:2], str(path)] if command[0] == "policy" else [*command, str(path)]
    try:
        code = main(args)
    except RecursionError:
        pytest.fail("a 10 KB policy file raised RecursionError out of main()")
    assert code == 2
