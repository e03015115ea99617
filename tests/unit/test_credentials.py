"""Credential lookup: flags, SEALGATE_* environment, docker config.json, credential helpers."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from gate.credentials import (
    DOCKER_HUB_INDEX,
    IDENTITY_TOKEN_USERNAME,
    Credentials,
    DockerConfig,
    run_helper,
)
from gate.errors import UsageError


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _write_config(directory: Path, config: dict[str, object]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def helper_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``docker-credential-test`` on PATH that logs its stdin and answers per server."""
    directory = tmp_path / "bin"
    directory.mkdir()
    script = directory / "docker-credential-test"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 2\n'
        "read -r server\n"
        f'echo "$server" >> "{tmp_path}/helper.log"\n'
        'case "$server" in\n'
        "  helped.example) echo "
        '\'{"ServerURL":"helped.example","Username":"h-user","Secret":"h-pass"}\' ;;\n'
        f'  "{DOCKER_HUB_INDEX}") echo \'{{"Username":"hub-user","Secret":"hub-pass"}}\' ;;\n'
        '  tokened.example) echo \'{"Username":"<token>","Secret":"refresh-me"}\' ;;\n'
        '  garbage.example) echo "not json" ;;\n'
        '  *) echo "credentials not found in native keychain"; exit 1 ;;\n'
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "helper.log"


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """An environment with an empty DOCKER_CONFIG and no SEALGATE_* variables."""
    return {"DOCKER_CONFIG": str(tmp_path / "empty")}


def test_nothing_configured_is_anonymous(clean_env: dict[str, str]) -> None:
    creds = Credentials.from_environment(env=clean_env)
    assert creds.for_registry("ghcr.io") is None
    assert Credentials().for_registry("ghcr.io") is None


def test_flags_go_to_the_named_registry_only_the_rest_get_their_own(tmp_path: Path) -> None:
    config = _write_config(
        tmp_path / "d",
        {
            "auths": {
                "ghcr.io": {"auth": _auth("file", "f")},
                "evil.example": {"auth": _auth("e", "e")},
            }
        },
    )
    creds = Credentials.from_environment(
        "flag-user", "flag-pass", config, registry="127.0.0.1:5000", env={}
    )
    assert creds.for_registry("127.0.0.1:5000") == ("flag-user", "flag-pass")
    # Every other host: only what the docker config files under its own name, or nothing.
    assert creds.for_registry("ghcr.io") == ("file", "f")
    assert creds.for_registry("evil.example") == ("e", "e")
    assert creds.for_registry("127.0.0.1:5001") is None
    assert creds.for_registry("127.0.0.1") is None
    assert creds.for_registry("attacker.example") is None


def test_explicit_credentials_without_a_registry_are_refused(clean_env: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="--registry HOST") as caught:
        Credentials.from_environment("u", "s3cret-pw", env=clean_env)
    assert "s3cret-pw" not in str(caught.value)
    with pytest.raises(UsageError, match="SEALGATE_REGISTRY"):
        Credentials("u", "p")
    env = {**clean_env, "SEALGATE_REGISTRY_USERNAME": "u", "SEALGATE_REGISTRY_PASSWORD": "p"}
    with pytest.raises(UsageError, match="--registry HOST"):
        Credentials.from_environment(env=env)
    bound = Credentials.from_environment(env={**env, "SEALGATE_REGISTRY": "ghcr.io"})
    assert bound.registry == "ghcr.io" and bound.for_registry("ghcr.io") == ("u", "p")


@pytest.mark.parametrize(
    ("given", "host", "bound"),
    [
        ("ghcr.io", "GHCR.io", True),
        ("https://ghcr.io/", "ghcr.io", True),
        ("https://index.docker.io/v1/", "docker.io", True),
        ("docker.io", "registry-1.docker.io", True),
        ("127.0.0.1:5000", "127.0.0.1:5000", True),
        ("127.0.0.1:5000", "127.0.0.1:5001", False),
        ("ghcr.io", "ghcr.io.evil.example", False),
        ("ghcr.io", "evil.example", False),
    ],
)
def test_registry_names_compare_like_references(given: str, host: str, bound: bool) -> None:
    assert Credentials("u", "p", given).holds(host) is bound
    assert (Credentials("u", "p", given).for_registry(host) is not None) is bound


@pytest.mark.parametrize("bad", ["", "ghcr.io/acme/app", "a b", "user@ghcr.io"])
def test_a_registry_that_is_not_a_host_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="--registry takes a registry host"):
        Credentials("u", "p", bad)


def test_environment_beats_config_and_flags_beat_environment(tmp_path: Path) -> None:
    config_dir = tmp_path / "d"
    _write_config(config_dir, {"auths": {"ghcr.io": {"auth": _auth("file", "f")}}})
    env = {
        "DOCKER_CONFIG": str(config_dir),
        "SEALGATE_REGISTRY": "ghcr.io",
        "SEALGATE_REGISTRY_USERNAME": "env-user",
        "SEALGATE_REGISTRY_PASSWORD": "env-pass",
    }
    assert Credentials.from_environment(env=env).for_registry("ghcr.io") == ("env-user", "env-pass")
    assert Credentials.from_environment("u", "p", env=env).for_registry("ghcr.io") == ("u", "p")
    # A flag for the user with the password from the environment is fine.
    assert Credentials.from_environment("u", env=env).for_registry("ghcr.io") == ("u", "env-pass")
    # The flag for the registry beats the environment's.
    other = Credentials.from_environment("u", env=env, registry="quay.io")
    assert other.for_registry("quay.io") == ("u", "env-pass")
    assert other.for_registry("ghcr.io") == ("file", "f")


def test_half_a_credential_is_a_usage_error(clean_env: dict[str, str]) -> None:
    with pytest.raises(UsageError, match="password is missing"):
        Credentials.from_environment(username="u", env=clean_env)
    with pytest.raises(UsageError, match="username is missing"):
        Credentials.from_environment(env={**clean_env, "SEALGATE_REGISTRY_PASSWORD": "p"})


def test_auths_by_host_and_by_url(tmp_path: Path) -> None:
    config = _write_config(
        tmp_path,
        {
            "auths": {
                "127.0.0.1:5000": {"auth": _auth("local", "l-pass")},
                "https://registry.example.com/v2/": {"auth": _auth("url", "u:with:colons")},
                DOCKER_HUB_INDEX: {"auth": _auth("hub", "hub-pass")},
                "legacy.example": {"username": "old", "password": "old-pass"},
                "empty.example": {},
            }
        },
    )
    creds = Credentials.from_environment(config_path=config, env={})
    assert creds.for_registry("127.0.0.1:5000") == ("local", "l-pass")
    assert creds.for_registry("registry.example.com") == ("url", "u:with:colons")
    assert creds.for_registry("docker.io") == ("hub", "hub-pass")
    assert creds.for_registry("index.docker.io") == ("hub", "hub-pass")
    assert creds.for_registry("legacy.example") == ("old", "old-pass")
    assert creds.for_registry("empty.example") is None
    assert creds.for_registry("127.0.0.1:5001") is None


def test_identity_token_in_auths(tmp_path: Path) -> None:
    config = _write_config(
        tmp_path, {"auths": {"ghcr.io": {"auth": _auth("me", ""), "identitytoken": "refresh"}}}
    )
    creds = Credentials.from_environment(config_path=config, env={})
    assert creds.for_registry("ghcr.io") == (IDENTITY_TOKEN_USERNAME, "refresh")


def test_docker_config_env_and_directory_argument(tmp_path: Path) -> None:
    _write_config(tmp_path / "cfg", {"auths": {"ghcr.io": {"auth": _auth("a", "b")}}})
    by_env = Credentials.from_environment(env={"DOCKER_CONFIG": str(tmp_path / "cfg")})
    by_dir = Credentials.from_environment(config_path=tmp_path / "cfg", env={})
    assert by_env.for_registry("ghcr.io") == by_dir.for_registry("ghcr.io") == ("a", "b")


def test_home_docker_config_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    _write_config(tmp_path / ".docker", {"auths": {"ghcr.io": {"auth": _auth("home", "h")}}})
    assert Credentials.from_environment(env={}).for_registry("ghcr.io") == ("home", "h")


def test_cred_helper_wins_over_store_and_auths(tmp_path: Path, helper_bin: Path) -> None:
    config = _write_config(
        tmp_path / "d",
        {
            "credHelpers": {"helped.example": "test"},
            "credsStore": "missing-store",
            "auths": {"helped.example": {"auth": _auth("file", "f")}},
        },
    )
    creds = Credentials.from_environment(config_path=config, env={})
    assert creds.for_registry("helped.example") == ("h-user", "h-pass")
    assert helper_bin.read_text().splitlines() == ["helped.example"]


def test_creds_store_then_auths(tmp_path: Path, helper_bin: Path) -> None:
    config = _write_config(
        tmp_path / "d",
        {
            "credsStore": "test",
            "auths": {"other.example": {"auth": _auth("file", "f")}},
        },
    )
    creds = Credentials.from_environment(config_path=config, env={})
    assert creds.for_registry("helped.example") == ("h-user", "h-pass")
    # Docker Hub is asked of the helper by its index URL.
    assert creds.for_registry("docker.io") == ("hub-user", "hub-pass")
    # The store has nothing (exit 1): fall through to auths.
    assert creds.for_registry("other.example") == ("file", "f")
    assert creds.for_registry("nowhere.example") is None
    assert helper_bin.read_text().splitlines() == [
        "helped.example",
        DOCKER_HUB_INDEX,
        "other.example",
        "nowhere.example",
    ]


def test_helper_identity_token_and_garbage(helper_bin: Path) -> None:
    assert run_helper("test", "tokened.example") == (IDENTITY_TOKEN_USERNAME, "refresh-me")
    assert run_helper("test", "garbage.example") is None
    assert run_helper("does-not-exist-anywhere", "x") is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "not valid JSON"),
        ("[]", "not a JSON object"),
        ('{"auths": ["x"]}', "must be objects"),
        ('{"credsStore": 3}', "must be a string"),
    ],
)
def test_broken_config_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        DockerConfig.load(path)


def test_broken_auth_value_is_a_usage_error(tmp_path: Path) -> None:
    config = _write_config(tmp_path, {"auths": {"x.example": {"auth": _auth("nocolon", "")[:-4]}}})
    creds = Credentials.from_environment(config_path=config, env={})
    with pytest.raises(UsageError, match="run docker login again"):
        creds.for_registry("x.example")


def test_secrets_stay_out_of_repr(tmp_path: Path) -> None:
    config = _write_config(tmp_path, {"auths": {"x.example": {"auth": _auth("u", "s3cret-file")}}})
    creds = Credentials.from_environment(
        "user", "s3cret-flag", config, registry="x.example", env={}
    )
    text = repr(creds)
    assert "s3cret" not in text and _auth("u", "s3cret-file") not in text
