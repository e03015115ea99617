"""action._workflow and action._env: workflow commands, environment files, inputs."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from action import _env
from action._workflow import (
    MAX_ANNOTATIONS,
    GitHubRunner,
    PlainRunner,
    Scrubber,
    escape_data,
    escape_property,
)
from gate.errors import UsageError
from gate.result import FailOn

PEM = (
    "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\nAwEHBG0wawIBAQQg\n"
    "-----END PRIVATE KEY-----"
)


def parse_output_file(text: str) -> dict[str, str]:
    """Read ``$GITHUB_OUTPUT`` as the runner does: ``name<<DELIM`` … ``DELIM`` blocks."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines) and lines[index]:
        name, _, delimiter = lines[index].partition("<<")
        end = lines.index(delimiter, index + 1)
        outputs[name] = "\n".join(lines[index + 1 : end])
        index = end + 1
    return outputs


def test_escaping_follows_the_toolkit() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_annotations_carry_escaped_file_line_and_title() -> None:
    out = io.StringIO()
    runner = GitHubRunner(out, Scrubber([]))
    runner.error("bad\nthing", file="deploy/a,b:c.yaml", line=7, title="Sealgate: UNKNOWN")
    assert out.getvalue() == (
        "::error file=deploy/a%2Cb%3Ac.yaml,line=7,title=Sealgate%3A UNKNOWN::bad%0Athing\n"
    )


def test_at_most_ten_errors_are_annotated() -> None:
    out = io.StringIO()
    runner = GitHubRunner(out, Scrubber([]))
    shown = [runner.error(f"e{i}", file="f", line=i + 1) for i in range(13)]
    assert shown.count(True) == MAX_ANNOTATIONS
    assert out.getvalue().count("::error ") == MAX_ANNOTATIONS
    assert runner.suppressed == (3, 0)


def test_outputs_use_a_random_heredoc_delimiter(tmp_path: Path) -> None:
    output = tmp_path / "output"
    runner = GitHubRunner(io.StringIO(), Scrubber([]), output_file=str(output))
    runner.set_output("digests", '{"a": "sha256:1"}')
    runner.set_output("multi", "line one\nline two")
    text = output.read_text()
    delimiters = re.findall(r"<<(ghadelimiter_[0-9a-f-]{36})\n", text)
    assert len(set(delimiters)) == 2
    assert parse_output_file(text) == {
        "digests": '{"a": "sha256:1"}',
        "multi": "line one\nline two",
    }


def test_secrets_are_masked_line_by_line_and_scrubbed_everywhere(tmp_path: Path) -> None:
    out = io.StringIO()
    summary = tmp_path / "summary.md"
    scrub = Scrubber([PEM, "hunter2"])
    runner = GitHubRunner(out, scrub, summary_file=str(summary))
    runner.mask(PEM)
    runner.mask("hunter2")
    masks = [line for line in out.getvalue().splitlines() if line.startswith("::add-mask::")]
    assert "::add-mask::MIGHAgEAMBMGByqGSM49AgEGCCqGSM49" in masks
    assert "::add-mask::hunter2" in masks
    assert all("-----BEGIN" not in m.split("%0A")[0] or "%0A" in m for m in masks)

    out.truncate(0)
    runner.info("password hunter2 leaked")
    runner.error("key AwEHBG0wawIBAQQg here", file="x", line=1)
    runner.write_summary("| hunter2 |")
    assert "hunter2" not in out.getvalue() and "AwEHBG0wawIBAQQg" not in out.getvalue()
    assert summary.read_text() == "| *** |\n"


def test_info_cannot_start_a_workflow_command_line() -> None:
    out = io.StringIO()
    GitHubRunner(out, Scrubber([])).info("image x\n::error::forged")
    assert out.getvalue() == "image x ::error::forged\n"


def test_groups_close_even_on_error() -> None:
    out = io.StringIO()
    runner = GitHubRunner(out, Scrubber([]))
    with pytest.raises(RuntimeError), runner.group("Signing"):
        raise RuntimeError("boom")
    assert out.getvalue() == "::group::Signing\n::endgroup::\n"


def test_unwritable_summary_is_a_usage_error(tmp_path: Path) -> None:
    runner = GitHubRunner(io.StringIO(), Scrubber([]), summary_file=str(tmp_path / "no" / "x.md"))
    with pytest.raises(UsageError, match="cannot write GITHUB_STEP_SUMMARY"):
        runner.check_summary()


def test_plain_runner_writes_dotenv(tmp_path: Path) -> None:
    out = io.StringIO()
    runner = PlainRunner(out, Scrubber([]))
    runner.set_output("result", "failure")
    runner.set_output("report-dir", "sealgate-reports")
    runner.error("nope", file="a.yaml", line=2)
    runner.write_dotenv(tmp_path / "sealgate.env", "SEALGATE_GATE_")
    assert (tmp_path / "sealgate.env").read_text() == (
        "SEALGATE_GATE_RESULT=failure\nSEALGATE_GATE_REPORT_DIR=sealgate-reports\n"
    )
    assert out.getvalue() == "error: a.yaml:2: nope\n"


# --- inputs ---------------------------------------------------------------------------------


def test_sealgate_variables_win_and_input_variables_are_the_fallback() -> None:
    env = {
        "SEALGATE_COMMAND": "gate",
        "INPUT_COMMAND": "sign",
        "INPUT_MANIFESTS": "a.yaml, b.yaml",
        "SEALGATE_POLICY": "",
        "INPUT_POLICY": "policy.yaml",
        "INPUT_FAIL-ON": "untrusted",
    }
    inputs = _env.read(env)
    assert inputs.command == "gate"
    assert inputs.manifests == ("a.yaml", "b.yaml")
    assert inputs.policy == "policy.yaml"
    assert inputs.fail_on is FailOn.UNTRUSTED
    assert inputs.status_context == "sealgate/gate"
    assert inputs.provenance is False


def test_pasted_pem_is_read_from_the_environment_never_a_file() -> None:
    inputs = _env.read(
        {"SEALGATE_COMMAND": "sign", "SEALGATE_IMAGES": "r/a:1\nr/b:2", "SEALGATE_KEY": PEM}
    )
    assert inputs.key == PEM
    assert inputs.images == ("r/a:1", "r/b:2")
    assert inputs.provenance is True
    assert "MIGHAgEAMBMG" not in repr(inputs)


def test_public_keys_split_into_pem_blocks() -> None:
    pub = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
    assert _env.split_keys(f"{pub}\n{pub.replace('AAAA', 'BBBB')}") == (
        pub,
        pub.replace("AAAA", "BBBB"),
    )
    assert _env.split_keys("keys/a.pub\nenv://PUB") == ("keys/a.pub", "env://PUB")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "input 'command' is required"),
        ({"SEALGATE_COMMAND": "deploy"}, "unknown command 'deploy'"),
        ({"SEALGATE_COMMAND": "sign"}, "needs input 'images'"),
        ({"SEALGATE_COMMAND": "attest"}, "needs input 'images'"),
        ({"SEALGATE_COMMAND": "gate", "SEALGATE_MANIFESTS": "a"}, "needs input 'policy'"),
        ({"SEALGATE_COMMAND": "verify", "SEALGATE_IMAGES": "a"}, "'policy or public-keys'"),
        ({"SEALGATE_COMMAND": "gate", "SEALGATE_FAIL_ON": "sometimes"}, "'fail-on' must be"),
        ({"SEALGATE_COMMAND": "sign", "SEALGATE_SUMMARY": "maybe"}, "'summary' must be true"),
        (
            {
                "SEALGATE_COMMAND": "gate",
                "SEALGATE_MANIFESTS": "a",
                "SEALGATE_POLICY": "p",
                "SEALGATE_KEY": "k.key",
                "SEALGATE_KEYLESS": "true",
            },
            "give input 'key' or 'keyless: true'",
        ),
        ({"SEALGATE_COMMAND": "gate", "SEALGATE_KEYLESS": "perhaps"}, "'keyless' must be true"),
    ],
)
def test_bad_inputs_name_the_input(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        _env.read(env)
