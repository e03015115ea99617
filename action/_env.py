"""The action's inputs: ``SEALGATE_*`` variables, the names the GitLab template uses too.

``action.yml`` maps each input to one of these in ``runs.env``; when a variable is
unset the runner's own ``INPUT_<NAME>`` (upper-cased, hyphens kept, FORMATS.md §8.5)
is read, so a step that sets only ``with:`` still works. Values are trimmed, as the
toolkit's ``getInput`` does; an empty value is an unset one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gate.errors import UsageError
from gate.result import FailOn

COMMANDS = ("sign", "verify", "gate", "pin-check", "attest")
DEFAULT_REPORT_DIR = "sealgate-reports"

SECRET_INPUTS = (
    "key",
    "key-password",
    "registry-password",
    "github-token",
    "gitlab-token",
    "identity-token",
)
"""Inputs whose values are masked in the log and scrubbed from everything written."""

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


def variable(name: str) -> str:
    """``key-password`` → ``SEALGATE_KEY_PASSWORD``."""
    return "SEALGATE_" + name.upper().replace("-", "_")


def raw(env: Mapping[str, str], name: str) -> str:
    """The input's text: ``SEALGATE_*`` first, then ``INPUT_*``; "" when unset."""
    value = env.get(variable(name), "")
    if not value.strip():
        value = env.get("INPUT_" + name.upper().replace(" ", "_"), "")
    return value.strip()


def secrets(env: Mapping[str, str]) -> list[str]:
    """Every secret value present, for ``::add-mask::`` and scrubbing."""
    found = []
    for name in SECRET_INPUTS:
        for text in (env.get(variable(name), ""), env.get("INPUT_" + name.upper(), "")):
            if text.strip() and text.strip() not in found:
                found.append(text.strip())
    # GitLab's `id_tokens:` entry for keyless signing is not masked by GitLab itself.
    oidc = env.get("SIGSTORE_ID_TOKEN", "").strip()
    if oidc and oidc not in found:
        found.append(oidc)
    return found


def split_list(text: str) -> tuple[str, ...]:
    """Newline- or comma-separated items, blank ones dropped (``images``, ``manifests``)."""
    return tuple(item.strip() for item in re.split(r"[\n,]", text) if item.strip())


def split_keys(text: str) -> tuple[str, ...]:
    """Public keys: PEM blocks pasted inline, or paths / ``env://`` references one a line."""
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(text)]
    if blocks:
        return tuple(blocks)
    return split_list(text)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    text = raw(env, name).lower()
    if not text:
        return default
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise UsageError(f"input '{name}' must be true or false, not '{text[:20]}'")


@dataclass(frozen=True)
class Inputs:
    """One run's configuration, checked before anything touches a registry."""

    command: str
    images: tuple[str, ...] = ()
    manifests: tuple[str, ...] = ()
    policy: str | None = None
    key: str | None = field(default=None, repr=False)
    """A ``gate.keys`` reference: the pasted PEM itself, a file path, or ``env://NAME``."""
    public_keys: tuple[str, ...] = ()
    attestations: tuple[str, ...] = ()
    registry_username: str | None = None
    registry_password: str | None = field(default=None, repr=False)
    registry: str | None = None
    """The one registry host ``registry-username``/``registry-password`` are for."""
    insecure_registries: tuple[str, ...] = ()
    github_token: str | None = field(default=None, repr=False)
    gitlab_token: str | None = field(default=None, repr=False)
    status_context: str = ""
    fail_on: FailOn = FailOn.UNKNOWN
    summary: bool = True
    provenance: bool = True
    report_dir: str = DEFAULT_REPORT_DIR
    identity_token: str | None = field(default=None, repr=False)
    """Keyless signing (no ``key``): else SIGSTORE_ID_TOKEN or GitHub's token endpoint."""
    fulcio_url: str | None = None
    rekor_url: str | None = None
    tsa_url: str | None = None
    signing_config: str | None = None
    trusted_root: tuple[str, ...] = ()
    keyless_vsa: bool = False
    """gate with ``keyless: true``: sign the verification summary with the job's identity."""

    @property
    def keyless(self) -> bool:
        return self.command in ("sign", "attest") and not self.key


def read(env: Mapping[str, str]) -> Inputs:
    """Parse and check the inputs; raises UsageError naming the input at fault."""
    command = raw(env, "command").lower()
    if not command:
        raise UsageError(f"input 'command' is required: one of {', '.join(COMMANDS)}")
    if command not in COMMANDS:
        shown = command[:40].replace("\n", " ")
        raise UsageError(f"unknown command '{shown}': use one of {', '.join(COMMANDS)}")
    fail_on_text = raw(env, "fail-on").lower() or FailOn.UNKNOWN.value
    try:
        fail_on = FailOn(fail_on_text)
    except ValueError:
        choices = ", ".join(f.value for f in FailOn)
        raise UsageError(f"input 'fail-on' must be one of {choices}") from None
    # Pasted PEM is handed to gate.keys as inline text: the unencrypted key is never
    # written to disk. Anything else is a file path (a GitLab "File" variable) or env://NAME.
    key = raw(env, "key") or None
    inputs = Inputs(
        command=command,
        images=split_list(raw(env, "images")),
        manifests=split_list(raw(env, "manifests")),
        policy=raw(env, "policy") or None,
        key=key,
        public_keys=split_keys(raw(env, "public-keys")),
        attestations=split_list(raw(env, "attestations")),
        registry_username=raw(env, "registry-username") or None,
        registry_password=raw(env, "registry-password") or None,
        registry=raw(env, "registry") or None,
        insecure_registries=split_list(raw(env, "insecure-registries")),
        github_token=raw(env, "github-token") or None,
        gitlab_token=raw(env, "gitlab-token") or None,
        status_context=raw(env, "status-context") or f"sealgate/{command}",
        fail_on=fail_on,
        summary=_bool(env, "summary", True),
        provenance=_bool(env, "provenance", command == "sign"),
        report_dir=raw(env, "report-dir") or DEFAULT_REPORT_DIR,
        identity_token=raw(env, "identity-token") or None,
        fulcio_url=raw(env, "fulcio-url") or None,
        rekor_url=raw(env, "rekor-url") or None,
        tsa_url=raw(env, "tsa-url") or None,
        signing_config=raw(env, "signing-config") or None,
        trusted_root=split_list(raw(env, "trusted-root")),
        keyless_vsa=command == "gate" and _bool(env, "keyless", False),
    )
    _require(inputs)
    return inputs


def key_password(env: Mapping[str, str]) -> bytes | None:
    """The key's passphrase, or None to let ``gate.keys`` decide (unencrypted keys need none)."""
    text = env.get(variable("key-password")) or env.get("INPUT_KEY-PASSWORD") or ""
    return text.encode("utf-8") if text else None


def _require(inputs: Inputs) -> None:
    """Each command's required inputs, named as the workflow author wrote them."""
    need: list[str] = []
    if inputs.command in ("sign", "verify", "attest") and not inputs.images:
        need.append("images")

    if inputs.command in ("gate", "pin-check") and not inputs.manifests:
        need.append("manifests")
    if inputs.command == "gate" and not inputs.policy:
        need.append("policy")
    if inputs.command == "verify" and not (inputs.policy or inputs.public_keys):
        need.append("policy or public-keys")
    explicit = inputs.registry_username or inputs.registry_password
    if inputs.command in ("verify", "gate", "pin-check") and explicit and not inputs.registry:
        # Manifests and images can name any registry: the password goes to the one named here.
        need.append("registry")
    if inputs.keyless_vsa and inputs.key:
        raise UsageError("give input 'key' or 'keyless: true' to sign the summary, not both")
    if need:
        raise UsageError(
            f"command '{inputs.command}' needs input{'s' if len(need) > 1 else ''} "
            + ", ".join(f"'{n}'" for n in need)
        )
