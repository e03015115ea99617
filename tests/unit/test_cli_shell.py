"""The command line as a shell user meets it: help, examples, completion, colour, global options.

Completion scripts are run by the real bash, zsh and fish.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gate._cli_help import EXAMPLES, leaves, walk
from gate._cli_style import plain, use_color
from gate.cli import build_parser, main
from tests.conftest import ROOT, require


def test_every_subcommand_has_an_example_and_every_option_help() -> None:
    parser = build_parser()
    for path, node in leaves(parser):
        assert path in EXAMPLES and node.epilog and EXAMPLES[path] in node.epilog, path
        assert EXAMPLES[path].startswith(("sealgate ", "SEALGATE_", "eval ")), path
        for action in node._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert action.help, f"{path}: {action.option_strings or action.dest} has no help"
    # every subcommand has one (a few are ready for subcommands landing on main at once)
    assert {p for p, _ in leaves(parser)} <= set(EXAMPLES)


def test_help_states_defaults() -> None:
    parser = build_parser()
    for path, node in walk(parser):
        for action in node._actions:
            meaningful = action.default not in (None, False, [], argparse.SUPPRESS)
            if action.option_strings and meaningful and action.help != argparse.SUPPRESS:
                assert "default" in str(action.help), f"{path} {action.option_strings}"
    text = subprocess.run(
        [sys.executable, "-m", "gate.cli", "watch", "--help"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "(default: 60.0)" in text and "example:\n  sealgate watch --policy" in text


@pytest.mark.parametrize(
    "argv",
    [
        ["-v", "--ledger", "L", "ledger", "verify"],
        ["ledger", "verify", "-v", "--ledger", "L"],
        ["ledger", "-v", "verify", "--ledger", "L"],
    ],
)
def test_global_options_before_or_after_the_subcommand(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.verbose is True and args.ledger == "L"


def test_registry_options_before_or_after_and_defaults_kept() -> None:
    parser = build_parser()
    before = parser.parse_args(["--insecure-registry", "a", "--timeout", "5", "verify", "x"])
    after = parser.parse_args(["verify", "x", "--insecure-registry", "a", "--timeout", "5"])
    for args in (before, after):
        assert args.insecure_registry == ["a"] and args.timeout == 5.0
    bare = parser.parse_args(["verify", "x"])
    assert bare.insecure_registry == [] and bare.timeout is None and bare.color == "auto"
    assert parser.parse_args(["demo", "--registry", "r"]).registry == "r"  # demo's own meaning
    watch = parser.parse_args(["--state-dir", "g", "watch", "--state-dir", "w"])
    assert (watch.global_state_dir, watch.state_dir) == ("g", "w")


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_color_follows_the_flag_the_terminal_and_no_color() -> None:
    tty, pipe = _Stream(True), _Stream(False)
    assert use_color("auto", tty, {}) and not use_color("auto", pipe, {})  # type: ignore[arg-type]
    assert not use_color("auto", tty, {"NO_COLOR": "1"})  # type: ignore[arg-type]
    assert use_color("auto", tty, {"NO_COLOR": ""})  # type: ignore[arg-type]
    assert use_color("always", pipe, {"NO_COLOR": "1"})  # type: ignore[arg-type]
    assert not use_color("never", tty, {})  # type: ignore[arg-type]
    assert plain("✅ 3 of 3 images trusted") == "3 of 3 images trusted"
    assert plain("⚠️ no images checked") == "no images checked"


def test_completion_takes_global_options_after_it(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["completion", "bash", "--color", "never"])
    out = capsys.readouterr().out
    assert code == 0 and "complete -o filenames -F _sealgate sealgate" in out


def _script(shell: str, tmp_path: Path) -> Path:
    path = tmp_path / f"sealgate.{shell}"
    done = subprocess.run(
        [sys.executable, "-m", "gate.cli", "completion", shell],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    path.write_text(done.stdout)
    return path


def _home(directory: Path) -> dict[str, str]:
    """The shell's dot files (zsh's .zcompdump, fish's history) go to ``directory``."""
    return {
        **os.environ,
        "HOME": str(directory),
        "XDG_CONFIG_HOME": str(directory / "config"),
        "XDG_DATA_HOME": str(directory / "data"),
        "XDG_CACHE_HOME": str(directory / "cache"),
    }


def _bashlike(shell: str, script: Path, words: list[str]) -> list[str]:
    setup = "autoload -U compinit && compinit -u; " if shell == "zsh" else ""
    quoted = " ".join(f"'{w}'" for w in words)
    program = (
        f"{setup}source {script}; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
        '_sealgate; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    if shell == "zsh":
        program = program.replace("_sealgate;", "setopt ksharrays; _sealgate;")
    done = subprocess.run(
        [shell, "-c", program],
        capture_output=True, text=True, timeout=30, cwd=ROOT, env=_home(script.parent),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_bash_and_zsh_complete_subcommands_options_and_choices(shell: str, tmp_path: Path) -> None:
    require(shutil.which(shell) is not None, f"{shell} (apt-get install {shell})")
    script = _script(shell, tmp_path)
    complete = _bashlike
    assert {"verify", "verify-blob"} <= set(complete(shell, script, ["sealgate", "ver"]))
    if shell == "bash":  # zsh filters by the prefix itself, after the function
        assert complete(shell, script, ["sealgate", "ver"]) == ["verify", "verify-blob"]
        assert complete(shell, script, ["sealgate", "ledger", "w"]) == ["witness"]
        assert complete(shell, script, ["sealgate", "-v", "gate", "--fa"]) == ["--fail-on"]
    assert "html" in complete(shell, script, ["sealgate", "verify", "x", "-o", ""])
    assert set(complete(shell, script, ["sealgate", "completion", ""])) == {"bash", "zsh", "fish"}
    assert "--metrics-addr" in complete(shell, script, ["sealgate", "watch", "--"])


def test_fish_completes_subcommands_options_and_choices(tmp_path: Path) -> None:
    require(shutil.which("fish") is not None, "fish (apt-get install fish)")
    script = _script("fish", tmp_path)

    def complete(line: str) -> list[str]:
        done = subprocess.run(
            ["fish", "--no-config", "-c", f"source {script}; complete -C '{line}'"],
            capture_output=True, text=True, timeout=30, cwd=tmp_path, env=_home(tmp_path),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return [row.split("\t")[0] for row in done.stdout.splitlines()]

    assert complete("sealgate ver") == ["verify", "verify-blob"]
    assert complete("sealgate ledger witness ") == ["export", "import"]
    assert {"html", "json", "sarif"} <= set(complete("sealgate verify x --output "))
    assert "--fail-on" in complete("sealgate gate --fa")
