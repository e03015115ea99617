"""Links, odd files and what errors may quote: a deploy file may point at a secret.

``gate`` and ``pin`` run in CI on files a pull request can change; a symlink
named ``images.txt`` pointing at ``~/.docker/config.json`` or a credentials
file used to get the secret printed in the error.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gate import keys
from gate.cli import main
from gate.errors import ManifestError
from gate.manifests import Options, find_images

SECRET = "ghp_" + "Zq8xK2mN4pR7tV1wY3aB5cD6eF9gH0jL2nP4"
FOLLOW = Options(follow_symlinks=True)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "private" / "credentials"
    path.parent.mkdir()
    path.write_text(f"https://ci-bot:{SECRET}@github.com\n")
    return path


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    (tmp_path / "ci.pub").write_bytes(keys.generate().public_key.pem)
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: 1\nsigners:\n  - name: ci\n    key: ci.pub\nrules:\n  - match: '**'\n"
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["gate", "pin"])
@pytest.mark.parametrize("follow", [False, True])
def test_a_link_to_a_secret_never_prints_it(
    tmp_path: Path,
    secret_file: Path,
    policy: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    follow: bool,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "images.txt").symlink_to(secret_file)
    argv = [command, str(repo / "images.txt")]
    if command == "gate":
        argv += ["--policy", str(policy)]
    if follow:
        argv.append("--follow-symlinks")
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert SECRET not in out + err and SECRET[:12] not in out + err
    assert len(err.splitlines()) <= 2  # the error and, for links, a hint
    if follow:
        # read through the link, the line is not an image reference: quoted short, at its line
        assert "images.txt:1: 'https://ci-bot:ghp_Zq8x…' is not an image reference" in err
    else:
        assert "images.txt: is a symbolic link" in err
        assert "--follow-symlinks" in err


def test_links_found_while_walking_are_errors_unless_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "compose.yaml").write_text("services:\n  a:\n    image: a:1\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "own.yaml").write_text("services:\n  b:\n    image: b:1\n")
    (repo / "linked.yaml").symlink_to(real / "compose.yaml")
    with pytest.raises(ManifestError, match=r"linked\.yaml: is a symbolic link"):
        find_images([str(repo)])
    (repo / "linked.yaml").unlink()
    (repo / "shared").symlink_to(real, target_is_directory=True)
    with pytest.raises(ManifestError, match=r"shared: is a symbolic link"):
        find_images([str(repo)])
    # followed, a linked directory is read once even when a loop leads back to it
    (real / "loop").symlink_to(repo, target_is_directory=True)
    found = [str(f.reference) for f in find_images([str(repo)], options=FOLLOW)]
    assert found == ["docker.io/library/b:1", "docker.io/library/a:1"]


def test_a_named_directory_link_needs_follow(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "compose.yaml").write_text("services:\n  a:\n    image: a:1\n")
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    for given in (str(tmp_path / "link"), str(tmp_path / "link") + "/"):
        with pytest.raises(ManifestError, match="is a symbolic link"):
            find_images([given])
    assert len(find_images([str(tmp_path / "link")], options=FOLLOW)) == 1


def test_devices_and_directories_are_not_read(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="is not a regular file"):
        find_images(["/dev/zero"])
    (tmp_path / "x.yaml").mkdir()
    (tmp_path / "x.yaml" / "compose.yaml").write_text("services: {}\n")
    assert find_images([str(tmp_path)]) == []


def test_a_pipe_can_be_read(tmp_path: Path) -> None:
    fifo = tmp_path / "rendered.yaml"
    os.mkfifo(fifo)
    pid = os.fork()
    if pid == 0:  # the writer, as `helm template > fifo` would be
        try:
            with open(fifo, "w") as out:
                out.write("kind: Pod\nspec:\n  containers:\n  - {name: a, image: nginx:1.25}\n")
        finally:
            os._exit(0)
    try:
        assert [str(f.reference) for f in find_images([str(fifo)])] == [
            "docker.io/library/nginx:1.25"
        ]
    finally:
        os.waitpid(pid, 0)


@pytest.mark.parametrize(
    ("content", "shown"),
    [
        ("services:\n  a:\n    image: 'Not:Valid'\n", "'Not:Valid' is not an image reference: "),
        (
            f"services:\n  a:\n    image: 'x/{SECRET}:tag with spaces'\n",
            "'x/ghp_Zq8xK2mN4pR7tV1wY…' is not an image reference",
        ),
    ],
)
def test_errors_quote_only_a_short_token(tmp_path: Path, content: str, shown: str) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text(content)
    with pytest.raises(ManifestError) as info:
        find_images([str(path)])
    assert shown in info.value.message
    assert SECRET not in info.value.message


# -- the gate fails closed where it cannot tell ---------------------------------------------


def test_places_whose_image_cannot_be_told_are_error_results(
    tmp_path: Path,
    policy: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    monkeypatch.delenv("TAG", raising=False)
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: nginx:${TAG}\n")
    (tmp_path / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\n")
    code, out, err = run(capsys, "gate", str(tmp_path), "--policy", str(policy), "-o", "json")
    assert code == 3 and err == ""
    results = json.loads(out)
    assert [(r["status"], r["image"], r["sources"][0]["line"]) for r in results] == [
        ("ERROR", "${BASE}", 2),
        ("ERROR", "nginx:${TAG}", 3),
    ]
    assert results[1]["reason"] == (
        "cannot tell which image this pulls: ${TAG} is not set and has no default"
    )
    # --allow-empty does not turn them into a pass, nor does --fail-on never
    code, *_ = run(capsys, "gate", str(tmp_path), "--policy", str(policy), "--allow-empty")
    assert code == 3
    code, *_ = run(capsys, "gate", str(tmp_path), "--policy", str(policy), "--fail-on", "never")
    assert code == 3
    # with the variables given (an env file, as docker compose --env-file), the places resolve
    (tmp_path / "Dockerfile").unlink()
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: 127.0.0.1:9/acme/web:${TAG}\n"  # nothing listens on 9
    )
    (tmp_path / "prod.env").write_text("TAG=1.25\n")
    monkeypatch.setenv("SEALGATE_WORKERS", "1")
    code, out, _ = run(
        capsys,
        "gate",
        str(tmp_path / "compose.yaml"),
        "--policy",
        str(policy),
        "--env-file",
        str(tmp_path / "prod.env"),
        "-o",
        "json",
    )
    (result,) = json.loads(out)
    assert result["image"] == "127.0.0.1:9/acme/web:1.25"
    assert "cannot tell" not in result["reason"]


@pytest.mark.parametrize("as_file", [True, False])
def test_a_bad_report_dir_is_one_line_before_any_work(
    tmp_path: Path, policy: Path, capsys: pytest.CaptureFixture[str], as_file: bool
) -> None:
    (tmp_path / "list.txt").write_text("127.0.0.1:9/never/contacted:1\n")
    blocker = tmp_path / "reports"
    blocker.write_text("a file")
    target = blocker if as_file else blocker / "sub"
    code, out, err = run(
        capsys,
        "gate",
        str(tmp_path / "list.txt"),
        "--policy",
        str(policy),
        "--report-dir",
        str(target),
    )
    assert code == 2 and out == ""
    (line,) = err.splitlines()
    expected = "is a file, not a directory" if as_file else "a part of its path is a file"
    assert line.startswith("sealgate: error: ") and expected in line


def test_sign_checks_the_report_dir_before_pushing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = keys.generate()
    keys.write_key_pair(str(tmp_path / "k"), key, None)
    (tmp_path / "reports").write_text("a file")
    # nothing listens on port 9: had sign started, the error would be about the registry
    code, out, err = run(
        capsys,
        "sign",
        "127.0.0.1:9/acme/app@sha256:" + "a" * 64,
        "--key",
        str(tmp_path / "k.key"),
        "--provenance",
        "--report-dir",
        str(tmp_path / "reports"),
    )
    assert code == 2 and out == ""
    assert (
        err
        == f"sealgate: error: the report directory {tmp_path}/reports is a file, not a directory\n"
    )
