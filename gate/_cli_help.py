"""Help text polish applied to the finished parser: an example per subcommand, every default.

Kept apart from ``gate.cli`` so the parser reads as the list of options; a
test walks the tree and fails when a subcommand lacks an example or an
option lacks help.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping

_DIGEST = "ghcr.io/acme/app@sha256:…"
_IDENTITY = (
    "--certificate-identity https://github.com/acme/app/.github/workflows/release.yml"
    "@refs/heads/main --certificate-oidc-issuer https://token.actions.githubusercontent.com"
)

EXAMPLES: Mapping[str, str] = {
    "keys generate": "SEALGATE_KEY_PASSWORD=… sealgate keys generate --out ci",
    "sign": "sealgate sign ghcr.io/acme/app:1.0 --key ci.key",
    "verify": f"sealgate verify {_DIGEST} --key ci.pub -o json",
    "gate": "sealgate gate deploy/ compose.yaml --policy policy.yaml --report-dir reports/",
    "pin": "sealgate pin compose.yaml k8s/",
    "untrust": f"sealgate untrust {_DIGEST} --key ci.key --reason 'built from a leaked key'",
    "unsupport": f"sealgate unsupport {_DIGEST} --key ci.key --reason 'use app:2.0'",
    "ledger verify": "sealgate ledger verify --key ci.pub",
    "ledger proof": "sealgate ledger proof sha256:… > proof.json",
    "ledger check-proof": "sealgate ledger check-proof proof.json --key ci.pub",
    "ledger export": "sealgate ledger export ledger.jsonl",
    "ledger import": "sealgate ledger import ledger.jsonl --key ci.pub",
    "ledger witness export": "sealgate ledger witness export witness.json",
    "ledger witness import": "sealgate ledger witness import witness.json --key ci.pub",
    "watch": "sealgate watch --policy policy.yaml --alert-file /run/secrets/alerts "
    "--metrics-addr 127.0.0.1:9105",
    "demo": "sealgate demo",
    "verify-blob": f"sealgate verify-blob app.tar --bundle app.sigstore.json {_IDENTITY}",
    "trust-root show": "sealgate trust-root show",
    "trust-root import": "sealgate trust-root import trusted_root.json",
    "trust-root update": "sealgate trust-root update",
    "policy check": "sealgate policy check policy.yaml",
    "policy explain": f"sealgate policy explain policy.yaml {_DIGEST}",
    "completion": 'eval "$(sealgate completion bash)"',
    # subcommands landing on main beside this change (admission, keyless policy init)
    "admission serve": "sealgate admission serve --policy policy.yaml --tls-cert tls.crt "
    "--tls-key tls.key --addr 0.0.0.0:8443",
    "admission manifests": "sealgate admission manifests --policy policy.yaml "
    "--image ghcr.io/acme/sealgate@sha256:… > admission.yaml",
    "policy init": "sealgate policy init --from-github acme/app/release.yml -o policy.yaml",
}


def polish(parser: argparse.ArgumentParser) -> None:
    """Add each subcommand's example and each option's default to its help."""
    for path, node in walk(parser):
        example = EXAMPLES.get(path)
        if example:
            node.epilog = f"example:\n  {example}"
            node.formatter_class = argparse.RawDescriptionHelpFormatter
        for action in node._actions:
            if action.help in (None, argparse.SUPPRESS) or not action.option_strings:
                continue
            default = action.default
            if default in (None, False, [], argparse.SUPPRESS) or "default" in action.help:
                continue
            action.help = f"{action.help} (default: {default})"


Node = tuple[str, argparse.ArgumentParser]


def walk(parser: argparse.ArgumentParser, path: str = "") -> Iterator[Node]:
    """``(path, parser)`` for the parser and every subcommand under it, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from walk(child, f"{path} {name}".strip())


def leaves(parser: argparse.ArgumentParser) -> Iterator[Node]:
    """The subcommands that run something (they have a handler)."""
    for path, node in walk(parser):
        if node.get_default("handler") is not None:
            yield path, node
