"""RegistryOptions and the Action's inputs: which registry explicit credentials are for,
the deadline and the concurrency, and every bad value as one sentence."""

from __future__ import annotations

import pytest

from action import _env
from gate.commands import RegistryOptions
from gate.errors import UsageError


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in (
        "SEALGATE_REGISTRY",
        "SEALGATE_REGISTRY_USERNAME",
        "SEALGATE_REGISTRY_PASSWORD",
        "SEALGATE_TIMEOUT",
        "SEALGATE_CONCURRENCY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))


def test_defaults_are_a_minute_and_32_in_flight() -> None:
    options = RegistryOptions()
    assert (options.timeout, options.concurrency) == (60.0, 32)
    with options.client() as client:
        assert (client.concurrency, client.timeout) == (32, 60.0)


def test_environment_sets_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALGATE_TIMEOUT", "7.5")
    monkeypatch.setenv("SEALGATE_CONCURRENCY", "8")
    options = RegistryOptions(("127.0.0.1:9",))
    assert (options.timeout, options.concurrency) == (7.5, 8)
    with options.client() as client:
        assert client.concurrency == 8


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SEALGATE_TIMEOUT", "soon", "SEALGATE_TIMEOUT must be a number"),
        ("SEALGATE_TIMEOUT", "0", "--timeout (SEALGATE_TIMEOUT) must be more than 0"),
        ("SEALGATE_TIMEOUT", "nan", "must be more than 0"),
        ("SEALGATE_CONCURRENCY", "2.5", "SEALGATE_CONCURRENCY must be a whole number"),
        ("SEALGATE_CONCURRENCY", "0", "--concurrency (SEALGATE_CONCURRENCY) must be from 1"),
        ("SEALGATE_CONCURRENCY", "1000", "must be from 1 to 256"),
    ],
)
def test_bad_limits_are_one_sentence(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(UsageError) as caught:
        RegistryOptions()
    assert message in str(caught.value)


def test_explicit_credentials_need_a_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match=r"--registry HOST \(or SEALGATE_REGISTRY\)"):
        RegistryOptions(username="u", password="p").check()
    monkeypatch.setenv("SEALGATE_REGISTRY_USERNAME", "u")
    monkeypatch.setenv("SEALGATE_REGISTRY_PASSWORD", "p")
    with pytest.raises(UsageError, match="--registry HOST"):
        RegistryOptions().check()
    monkeypatch.setenv("SEALGATE_REGISTRY", "ghcr.io")
    RegistryOptions().check()
    with RegistryOptions().client() as client:
        assert client._http.credentials.for_registry("ghcr.io") == ("u", "p")
        assert client._http.credentials.for_registry("quay.io") is None


def test_a_bad_registry_fails_before_any_work() -> None:
    with pytest.raises(UsageError, match="--registry takes a registry host"):
        RegistryOptions(registry="https://ghcr.io/acme/app").check()


def test_sign_defaults_to_the_images_registry() -> None:
    options = RegistryOptions(username="u", password="p")
    assert options.for_images(["ghcr.io/acme/app:1", "ghcr.io/acme/db:2"]).registry == "ghcr.io"
    assert options.for_images(["nginx"]).registry == "docker.io"
    # Local images name no registry: nothing to default to, so check() asks for one.
    local = options.for_images(["docker://app:1"])
    with pytest.raises(UsageError, match="--registry HOST"):
        local.check()
    # Given explicitly, --registry wins.
    named = RegistryOptions(username="u", password="p", registry="quay.io")
    assert named.for_images(["ghcr.io/acme/app:1"]).registry == "quay.io"
    # No explicit credentials: nothing to bind.
    assert RegistryOptions().for_images(["ghcr.io/a/b:1"]).registry is None


def test_images_in_several_registries_need_registry() -> None:
    options = RegistryOptions(username="u", password="p")
    with pytest.raises(UsageError) as caught:
        options.for_images(["ghcr.io/acme/app:1", "127.0.0.1:5000/acme/app:1"])
    assert str(caught.value) == (
        "the images are in several registries (127.0.0.1:5000, ghcr.io): "
        "name the one the credentials are for with --registry HOST"
    )


BASE = {"SEALGATE_MANIFESTS": "deploy/compose.yaml", "SEALGATE_POLICY": "policy.yaml"}


@pytest.mark.parametrize("command", ["gate", "verify", "pin-check"])
def test_action_needs_the_registry_input_with_a_password(command: str) -> None:
    env = {
        **BASE,
        "SEALGATE_COMMAND": command,
        "SEALGATE_IMAGES": "ghcr.io/acme/app:1",
        "SEALGATE_PUBLIC_KEYS": "k.pub",
        "SEALGATE_REGISTRY_USERNAME": "robot",
        "SEALGATE_REGISTRY_PASSWORD": "pw",
    }
    with pytest.raises(UsageError, match="'registry'"):
        _env.read(env)
    assert _env.read({**env, "INPUT_REGISTRY": "ghcr.io"}).registry == "ghcr.io"


def test_action_sign_needs_no_registry_input() -> None:
    inputs = _env.read(
        {
            "SEALGATE_COMMAND": "sign",
            "SEALGATE_IMAGES": "ghcr.io/acme/app:1",
            "SEALGATE_KEY": "k.key",
            "SEALGATE_REGISTRY_PASSWORD": "pw",
            "SEALGATE_REGISTRY_USERNAME": "robot",
        }
    )
    assert inputs.registry is None
