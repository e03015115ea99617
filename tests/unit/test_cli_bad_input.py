"""Every subcommand, fed bad paths and bad values: one sentence on stderr, exit 2 or 3.

Nothing here needs a network, a registry or an engine: each input fails
before any of them would be asked. A traceback, a Python exception name or
exit 0/1 is a bug.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gate._cli_help import leaves
from gate.cli import build_parser, main

D = "sha256:" + "ab" * 32


def cases(tmp: Path) -> dict[str, list[list[str]]]:
    """Bad invocations per subcommand path (every leaf of the parser is covered)."""
    afile = tmp / "a-file"
    afile.write_text("x")
    # Reads of MISSING find nothing; writes under it cannot create it (its parent is a file),
    # so no case leaves anything outside tmp.
    MISSING = str(afile / "absent")
    garbage = tmp / "garbage.yaml"
    garbage.write_text("{{{ not: [yaml")
    pub = tmp / "not-a-key.pub"
    pub.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    return {
        "keys generate": [
            ["keys", "generate", "--no-password", "--out", f"{MISSING}/k"],
            ["keys", "generate", "--no-password", "--type", "dsa"],
        ],
        "sign": [
            ["sign", "127.0.0.1:1/a:b", "--key", MISSING],
            ["sign", "127.0.0.1:1/a:b", "--key", str(garbage)],
            ["sign", "Not//A Ref", "--key", str(pub)],
            ["sign", "127.0.0.1:1/a:b", "--key", "env://SEALGATE_TEST_UNSET_VARIABLE"],
        ],
        "verify": [
            ["verify", "127.0.0.1:1/a:b", "--key", MISSING],
            ["verify", "127.0.0.1:1/a:b", "--key", str(pub)],
            ["verify", "127.0.0.1:1/a:b", "--policy", str(garbage)],
            ["verify", "127.0.0.1:1/a:b"],
            ["verify", "127.0.0.1:1/a:b", "--key", str(pub), "--timeout", "soon"],
            ["verify", "oci:" + MISSING, "--key", str(pub)],
        ],
        "gate": [
            ["gate", MISSING, "--policy", MISSING],
            ["gate", str(garbage), "--policy", str(garbage)],
            ["gate", MISSING, "--policy", str(garbage), "--report-dir", str(afile)],
            ["gate", MISSING, "--policy", str(garbage), "--fail-on", "sometimes"],
        ],
        "pin": [["pin", MISSING], ["pin", str(garbage)]],
        "untrust": [["untrust", "127.0.0.1:1/a@" + D, "--key", MISSING, "--reason", "r"]],
        "unsupport": [["unsupport", "x", "--key", str(garbage), "--reason", "r"]],
        "ledger verify": [["--ledger", f"{MISSING}/l.db", "ledger", "verify"]],
        "ledger proof": [["ledger", "proof", "not-a-digest", "--ledger", f"{MISSING}/l.db"]],
        "ledger check-proof": [
            ["ledger", "check-proof", MISSING, "--key", str(pub)],
            ["ledger", "check-proof", str(garbage), "--key", MISSING],
        ],
        "ledger export": [["ledger", "export", f"{MISSING}/out", "--ledger", f"{MISSING}/l"]],
        "ledger import": [["ledger", "import", MISSING, "--ledger", str(tmp / "l.db")]],
        "ledger witness export": [
            ["ledger", "witness", "export", f"{MISSING}/w", "--ledger", f"{MISSING}/l"]
        ],
        "ledger witness import": [
            ["ledger", "witness", "import", str(garbage), "--ledger", str(tmp / "l2.db")]
        ],
        "watch": [
            ["watch", "--key", str(pub), "--interval", "-1", "--state-dir", str(tmp / "s")],
            ["watch", "--key", str(pub), "--metrics-addr", "nowhere", "--state-dir", str(tmp)],
            ["watch", "--key", str(pub), "--interval", "often"],
            ["watch", "--policy", str(garbage), "--state-dir", str(tmp / "s")],
            ["watch", "--key", str(pub), "--state-dir", str(afile)],
        ],
        "demo": [["demo", "--registry", "not a host name"]],
        "verify-blob": [
            ["verify-blob", MISSING, "--bundle", MISSING, "--key", str(pub)],
            ["verify-blob", str(afile), "--bundle", str(garbage), "--key", MISSING],
            ["verify-blob", str(afile), "--bundle", str(afile)],
        ],
        "trust-root show": [["trust-root", "show", MISSING], ["trust-root", "show", str(garbage)]],
        "trust-root import": [["trust-root", "import", str(garbage)]],
        "trust-root update": [["trust-root", "update", "--state-dir", str(afile)]],
        "policy check": [["policy", "check", MISSING], ["policy", "check", str(garbage)]],
        "policy explain": [["policy", "explain", MISSING, "x"]],
        "completion": [["completion", "tcsh"], ["completion"]],
        # subcommands landing on main beside this change: ready for the merge
        "admission serve": [
            [
                "admission",
                "serve",
                "--policy",
                MISSING,
                "--tls-cert",
                MISSING,
                "--tls-key",
                MISSING,
            ],
            [
                "admission",
                "serve",
                "--policy",
                str(garbage),
                "--tls-cert",
                str(afile),
                "--tls-key",
                str(afile),
                "--addr",
                "nowhere",
            ],
        ],
        "admission manifests": [["admission", "manifests", "--policy", MISSING]],
        "policy init": [
            ["policy", "init", "--from-github", "not a repository"],
            ["policy", "init", "--from-github", "acme/app", "-o", f"{MISSING}/policy.yaml"],
        ],
    }


def test_every_subcommand_is_covered(tmp_path: Path) -> None:
    assert {path for path, _ in leaves(build_parser())} <= set(cases(tmp_path))


def test_bad_input_is_one_sentence_and_exit_2_or_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEALGATE_LEDGER", str(tmp_path / "default-ledger.db"))
    monkeypatch.setenv("SEALGATE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")  # an error, not a hang
    monkeypatch.delenv("SEALGATE_KEY_PASSWORD", raising=False)
    problems = []
    for path, runs in cases(tmp_path).items():
        for argv in runs:
            try:
                code = main(argv)
            except SystemExit as e:
                code = int(e.code or 0)
            _out, err = capsys.readouterr()
            lines = [line for line in err.splitlines() if line.strip()]
            why = None
            if code not in (2, 3):
                why = f"exit {code}"
            elif "Traceback" in err or "could not finish" in err:
                why = "a traceback or an unexpected error"
            elif not lines or not lines[0].startswith("sealgate"):
                why = "no 'sealgate…: error' line"
            elif len([x for x in lines if "error" in x]) != 1 or len(lines) > 2:
                why = "more than one sentence (and a hint)"
            if why:
                problems.append(f"{path}: {argv}: {why}:\n{err}")
    assert not problems, "\n".join(problems)
