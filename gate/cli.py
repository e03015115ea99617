"""The ``sealgate`` command line: argparse, thin handlers, one ``except``.

The handlers live in ``gate._cli_handlers`` and import what they need when
they run, so ``sealgate --help`` stays fast (no cryptography, requests or
docker at start-up). Results go to stdout, logs and errors to stderr. Exit
codes: 0 pass, 1 policy failure, 2 bad usage or configuration, 3 could not
verify.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from gate import __version__, _cli_admission, _cli_ledger
from gate import _cli_handlers as handlers
from gate._cli_completion import SHELLS, script
from gate._cli_help import polish
from gate._cli_style import CHOICES
from gate.errors import SealgateError

OUTPUTS = ("text", "json", "markdown", "html", "junit", "sarif")
_TRUSTED_KEYS_HELP = "trusted public key (repeatable)"
_IMAGE_HELP = "REGISTRY/REPO:TAG, REPO@sha256:…, docker://NAME, oci:DIR or docker-archive:FILE"
_WRITER_KEYS_HELP = "only accept checkpoints written by these keys (repeatable)"


def _add_global_options(p: argparse.ArgumentParser) -> None:
    """Options every subcommand takes, before or after its name (see ``_share_globals``)."""
    p.add_argument(
        "-v", "--verbose", action="store_true", help="log what is happening to stderr (off)"
    )
    p.add_argument(
        "--color",
        choices=CHOICES,
        default="auto",
        help="colour and emoji in text output: auto (default) means on a terminal, "
        "unless NO_COLOR is set",
    )
    p.add_argument(
        "--ledger",
        metavar="PATH",
        help="ledger file (default: $SEALGATE_LEDGER, else one in your data directory)",
    )
    p.add_argument(
        "--state-dir",
        dest="global_state_dir",
        metavar="DIR",
        help="state directory: the ledger's witness, the watchdog's state "
        "(default: $SEALGATE_STATE_DIR, else watch/ next to the default ledger)",
    )


def _share_globals(parser: argparse.ArgumentParser) -> None:
    """Let every subcommand take the global and registry options after its name too.

    Each subparser gets copies with ``default=SUPPRESS``: given after the
    subcommand they win, absent they leave the value parsed before it (or the
    top-level default) alone. A subcommand's own option of the same name
    (``watch --state-dir``, ``demo --registry``) keeps its meaning.
    """
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in set(action.choices.values()):
            for own in child._actions:
                if getattr(own.container, "title", None) == _REGISTRY_GROUP:
                    own.default = argparse.SUPPRESS  # the top level holds the default
            shared = _Parser(add_help=False, argument_default=argparse.SUPPRESS)
            _add_global_options(shared)
            group = child.add_argument_group("global options (also before the subcommand)")
            for option in shared._actions:
                if not any(o in child._option_string_actions for o in option.option_strings):
                    group._add_action(option)
            _share_globals(child)


_REGISTRY_GROUP = "registry"


def _add_registry_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(_REGISTRY_GROUP)
    g.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="speak plain HTTP to HOST (127.0.0.0/8 and localhost always are)",
    )
    g.add_argument("--ca-bundle", metavar="FILE", help="CA certificates for HTTPS registries")
    g.add_argument(
        "--registry-username",
        default=os.environ.get("SEALGATE_REGISTRY_USERNAME"),
        help="registry user (default: $SEALGATE_REGISTRY_USERNAME, else docker config)",
    )
    g.add_argument(
        "--registry-password-stdin",
        action="store_true",
        help="read the registry password from stdin (else $SEALGATE_REGISTRY_PASSWORD)",
    )
    g.add_argument(
        "--registry",
        metavar="HOST",
        default=os.environ.get("SEALGATE_REGISTRY") or None,
        help="the one registry the username and password are for; every other registry "
        "gets only what your docker config holds for it (default: $SEALGATE_REGISTRY; "
        "for sign, the images' registry)",
    )
    g.add_argument(
        "--timeout",
        type=_number,
        metavar="SECONDS",
        help="overall limit for each registry request, body included "
        "(default: $SEALGATE_TIMEOUT, else 60)",
    )
    g.add_argument(
        "--concurrency",
        type=_whole_number,
        metavar="N",
        help="requests in flight per registry (default: $SEALGATE_CONCURRENCY, else 32)",
    )


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text[:20]}' is not a number") from None


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text[:20]}' is not a whole number") from None


def _add_manifest_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("manifests")
    g.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="read through symbolic links (by default a link is an error: it may point anywhere)",
    )
    g.add_argument(
        "--env-file",
        action="append",
        metavar="FILE",
        help="Compose variables from FILE instead of the .env next to each Compose file "
        "(repeatable; the environment still wins, as in docker compose)",
    )


def _add_public_keys(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--key", action="append", default=[], metavar="PUB", help=help_text)


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=OUTPUTS, default="text", help="output format")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the usage block is one ``--help`` away."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"sealgate: error: {message} (see `{self.prog} --help`)\n")


def _add_keyless_options(
    p: argparse.ArgumentParser,
    title: str = "keyless signing (instead of --key)",
    what: str = "sign",
    trusted_root: bool = True,
) -> None:
    """Keyless signing (issue 12): an identity token, Fulcio and Rekor instead of --key.

    ``gate`` has ``--trusted-root`` already (for verifying); it serves both there.
    """
    k = p.add_argument_group(title)
    k.add_argument(
        "--keyless",
        action="store_true",
        help=f"{what} with a Fulcio certificate for this CI job's identity; log in Rekor",
    )
    k.add_argument(
        "--identity-token",
        metavar="JWT",
        help="OIDC token (default: SIGSTORE_ID_TOKEN, else GitHub Actions' token endpoint)",
    )
    k.add_argument("--fulcio-url", metavar="URL", help="default https://fulcio.sigstore.dev")
    k.add_argument("--rekor-url", metavar="URL", help="default https://rekor.sigstore.dev")
    k.add_argument(
        "--tsa-url",
        metavar="URL",
        help="also get an RFC 3161 timestamp for each signature (e.g. …/api/v1/timestamp)",
    )
    k.add_argument(
        "--signing-config", metavar="FILE", help="a Sigstore signing-config JSON (private stack)"
    )
    if not trusted_root:
        return
    k.add_argument(
        "--trusted-root",
        action="append",
        default=[],
        metavar="FILE",
        help="the root Rekor's answers must verify with (default: public-good + imported)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sealgate",
        description="Keep untrusted container images off your hosts: sign, gate, watch.",
    )
    parser.add_argument("--version", action="version", version=f"sealgate {__version__}")
    _add_global_options(parser)
    _add_registry_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    keys = sub.add_parser("keys", help="generate signing keys").add_subparsers(
        dest="keys_command", required=True
    )
    gen = keys.add_parser("generate", help="write PREFIX.key (encrypted PKCS#8) and PREFIX.pub")
    gen.add_argument(
        "--type",
        default="ecdsa-p256",
        choices=("ecdsa-p256", "ed25519", "rsa-3072"),
        help="key algorithm",
    )
    gen.add_argument("--out", default="sealgate", metavar="PREFIX", help="file name prefix")
    gen.add_argument("--no-password", action="store_true", help="write an unencrypted private key")
    gen.add_argument(
        "--format",
        choices=("pkcs8", "cosign"),
        default="pkcs8",
        help="PREFIX.key as PKCS#8 (default) or cosign's ENCRYPTED SIGSTORE PRIVATE KEY, "
        "which cosign sign --key also reads (passphrase in COSIGN_PASSWORD)",
    )
    gen.add_argument("--force", action="store_true", help="overwrite existing files")
    gen.set_defaults(handler=handlers.keys_generate)

    sign = sub.add_parser("sign", help="sign images (cosign-compatible)")
    sign.add_argument("images", nargs="+", metavar="IMAGE", help=_IMAGE_HELP)
    sign.add_argument(
        "--key", metavar="KEY", help="private key: a path or env://NAME (without one: --keyless)"
    )
    _add_keyless_options(sign)
    sign.add_argument(
        "-a",
        "--annotation",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="annotation recorded in the signed payload",
    )
    sign.add_argument(
        "--recursive", action="store_true", help="also sign each platform of an image index"
    )
    sign.add_argument(
        "--format",
        choices=("legacy", "bundle", "both"),
        default=None,
        help="legacy .sig tag (default), cosign v3 bundle referrer, or both; keyless "
        "signing against Rekor v2 writes the bundle only (default bundle)",
    )
    sign.add_argument(
        "--push",
        action="store_true",
        help="for docker:// images, also sign in the registry of each repo digest",
    )
    sign.add_argument(
        "--provenance",
        action="store_true",
        help="also attach signed SLSA v1 provenance from the CI environment (cosign .att)",
    )
    sign.add_argument("--report-dir", metavar="DIR", help="write provenance.intoto.jsonl there")
    _add_registry_options(sign)
    sign.set_defaults(handler=handlers.sign)

    verify = sub.add_parser("verify", help="verify images against keys or a policy")
    verify.add_argument("images", nargs="+", metavar="IMAGE", help=_IMAGE_HELP)
    _add_public_keys(verify, _TRUSTED_KEYS_HELP)
    verify.add_argument("--policy", metavar="FILE", help="trust policy (instead of --key)")
    verify.add_argument(
        "--attestation",
        action="append",
        default=[],
        metavar="TYPE",
        help="require a signed attestation of this predicate type (e.g. slsaprovenance)",
    )
    _add_output(verify)
    _add_identity_options(verify)
    _add_registry_options(verify)
    verify.set_defaults(handler=handlers.verify)

    gate = sub.add_parser("gate", help="check every image in deploy manifests against a policy")
    gate.add_argument("paths", nargs="+", metavar="PATH", help="files, directories, or - for stdin")
    gate.add_argument(
        "--policy", metavar="FILE", help="trust policy (or the keyless flags below, for one signer)"
    )
    gate.add_argument("--report-dir", metavar="DIR", help="write every report format there")
    gate.add_argument(
        "--fail-on",
        choices=("untrusted", "unknown", "unsupported", "never"),
        default="unknown",
        help="the least status that fails the run (ERROR always fails)",
    )
    gate.add_argument("--allow-empty", action="store_true", help="pass when no image is found")
    gate.add_argument(
        "--key", metavar="KEY", help="sign the verification summary (VSA) with this key"
    )
    _add_manifest_options(gate)
    _add_output(gate)
    _add_identity_options(gate)
    _add_keyless_options(
        gate,
        "keyless signing of the verification summary (instead of --key; --trusted-root "
        "above also checks Rekor's answers)",
        what="sign the verification summary (VSA)",
        trusted_root=False,
    )
    _add_registry_options(gate)
    gate.set_defaults(handler=handlers.gate)

    pin = sub.add_parser("pin", help="pin image tags to digests in manifests, in place")
    pin.add_argument("paths", nargs="+", metavar="PATH", help="files or directories to rewrite")
    pin.add_argument(
        "--check", action="store_true", help="exit 1 if anything is unpinned; write nothing"
    )
    _add_manifest_options(pin)
    _add_registry_options(pin)
    pin.set_defaults(handler=handlers.pin)

    for action, what in (
        ("untrust", "mark an image bad everywhere (UNTRUSTED)"),
        ("unsupport", "mark an image deprecated (UNSUPPORTED)"),
    ):
        revoke = sub.add_parser(action, help=what)
        revoke.add_argument("image", metavar="IMAGE|DIGEST", help="the image, by digest")
        revoke.add_argument(
            "--key", required=True, metavar="KEY", help="private key of a trusted signer"
        )
        revoke.add_argument(
            "--reason", required=True, help="why, for whoever reads the result later"
        )
        _add_registry_options(revoke)
        revoke.set_defaults(handler=handlers.revoke, action=action)

    ledger = sub.add_parser("ledger", help="check, prove, export and import the embedded ledger")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True)
    lv = ledger_sub.add_parser("verify", help="recompute every entry, tree and checkpoint")
    _add_public_keys(lv, _WRITER_KEYS_HELP)
    lv.set_defaults(handler=_cli_ledger.ledger_verify)
    lp = ledger_sub.add_parser(
        "proof", help="print an inclusion proof for the newest entry about DIGEST"
    )
    lp.add_argument("digest", help="sha256:HEX of an image the ledger holds")
    lp.set_defaults(handler=_cli_ledger.ledger_proof)
    lc = ledger_sub.add_parser(
        "check-proof",
        help="check a proof from `ledger proof` with only the writer's public key",
    )
    lc.add_argument("file", help="the proof JSON, or - for stdin")
    lc.add_argument(
        "--key", required=True, metavar="PUB", help="public key of the checkpoint's writer"
    )
    lc.set_defaults(handler=_cli_ledger.ledger_check_proof)
    le = ledger_sub.add_parser(
        "export", help="write every entry and checkpoint to FILE (JSON Lines)"
    )
    le.add_argument("file", help="where to write (JSON Lines)")
    le.set_defaults(handler=_cli_ledger.ledger_export)
    li = ledger_sub.add_parser(
        "import", help="append entries from FILE after checking them; refuses a fork"
    )
    li.add_argument("file", help="a file from `ledger export`")
    _add_public_keys(li, _WRITER_KEYS_HELP)
    li.set_defaults(handler=_cli_ledger.ledger_import)
    lw = ledger_sub.add_parser(
        "witness", help="carry the largest checkpoint seen to another host or a repository"
    ).add_subparsers(dest="witness_command", required=True)
    we = lw.add_parser("export", help="write this ledger's witness to FILE")
    we.add_argument("file", help="where to write the witness")
    we.set_defaults(handler=_cli_ledger.ledger_witness_export)
    wi = lw.add_parser(
        "import", help="hold this ledger to the witness in FILE; refuses one it does not extend"
    )
    wi.add_argument("file", help="a file from `ledger witness export`")
    _add_public_keys(wi, "only accept a witness signed by these writer keys (repeatable)")
    wi.set_defaults(handler=_cli_ledger.ledger_witness_import)

    watch = sub.add_parser(
        "watch", help="verify every running container, continuously; alert on change"
    )
    watch.add_argument("--policy", metavar="FILE", help="trust policy (reloaded when it changes)")
    _add_public_keys(watch, _TRUSTED_KEYS_HELP)
    watch.add_argument(
        "--interval", type=float, default=60.0, metavar="S", help="seconds between sweeps"
    )
    watch.add_argument(
        "--alert",
        action="append",
        default=[],
        metavar="URL",
        help="alert sink: https://hooks.slack.com/..., http(s):// webhook, log: or log:PATH "
        "(visible in `ps`: prefer --alert-file or $SEALGATE_ALERT_URLS for URLs with secrets)",
    )
    watch.add_argument(
        "--alert-file",
        action="append",
        default=[],
        metavar="FILE",
        help="alert URLs, one a line (e.g. a Docker secret under /run/secrets/)",
    )
    watch.add_argument(
        "--influx",
        action="append",
        default=[],
        metavar="URL",
        help="InfluxDB: influx://HOST:PORT/DB (v1) or influx2://HOST:PORT?org=O&bucket=B (v2); "
        "or from --influx-file / $SEALGATE_INFLUX_URLS",
    )
    watch.add_argument(
        "--influx-file",
        action="append",
        default=[],
        metavar="FILE",
        help="InfluxDB URLs, one a line (keeps a password out of `ps`)",
    )
    watch.add_argument(
        "--metrics-addr",
        metavar="ADDR",
        help="serve Prometheus /metrics, the status page (/) and /status.json on HOST:PORT, "
        "e.g. 127.0.0.1:9105; ':PORT' listens on every interface (default: off)",
    )
    watch.add_argument(
        "--on-untrusted",
        choices=("alert", "stop", "kill", "pause"),
        default="alert",
        help="what to do to a running container whose image is UNTRUSTED or UNKNOWN "
        "(never on ERROR, never to the watchdog's own container)",
    )
    watch.add_argument(
        "--realert-after",
        type=float,
        metavar="S",
        help="repeat alerts for still-failing containers",
    )
    watch.add_argument(
        "--refresh",
        type=float,
        default=60.0,
        metavar="S",
        help="verify each image again after this long, so registry-side revocations "
        "reach running containers within S seconds",
    )
    watch.add_argument("--cache-ttl", dest="refresh", type=float, help=argparse.SUPPRESS)
    watch.add_argument(
        "--state-dir",
        metavar="DIR",
        help="spools and container state (default: $SEALGATE_STATE_DIR, else the data directory)",
    )
    watch.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY[=VALUE]",
        help="only watch containers with this label (repeatable)",
    )
    watch.add_argument("--once", action="store_true", help="one sweep, then exit (cron, tests)")
    _add_registry_options(watch)
    watch.set_defaults(handler=handlers.watch)

    demo = sub.add_parser(
        "demo", help="sign, verify, gate and watch on this machine, then clean up"
    )
    demo.add_argument(
        "--registry", metavar="HOST", help="use this registry instead of a throwaway one"
    )
    demo.set_defaults(handler=handlers.demo)

    _add_keyless_commands(sub)
    _cli_admission.add_parser(sub, _add_registry_options)

    completion = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description='Print a completion script: eval "$(sealgate completion bash)" in '
        "~/.bashrc, the same with zsh in ~/.zshrc, or "
        "`sealgate completion fish > ~/.config/fish/completions/sealgate.fish`.",
    )
    completion.add_argument("shell", choices=SHELLS, help="bash, zsh or fish")
    completion.set_defaults(handler=_completion)

    policy = sub.add_parser("policy", help="check or explain a trust policy").add_subparsers(
        dest="policy_command", required=True
    )
    check = policy.add_parser("check", help="validate a policy file")
    check.add_argument("file", help="the policy YAML")
    check.set_defaults(handler=handlers.policy_check)
    explain = policy.add_parser("explain", help="say which rule applies to an image and why")
    explain.add_argument("file", help="the policy YAML")
    explain.add_argument("image", help="an image reference")
    explain.add_argument(
        "--namespace",
        metavar="NS",
        help="pick the rule as admission does for a pod in NS (rule namespaces apply)",
    )
    explain.set_defaults(handler=handlers.policy_explain)
    init = policy.add_parser(
        "init", help="write a policy trusting one GitHub workflow's keyless signatures"
    )
    init.add_argument(
        "--from-github",
        required=True,
        metavar="OWNER/REPO[/WORKFLOW]",
        help="the repository (any workflow) or one workflow file, e.g. acme/app/release.yml",
    )
    init.add_argument(
        "--ref",
        default="refs/heads/main",
        help="git ref signing runs on; may end in * (default refs/heads/main)",
    )
    init.add_argument("--trusted-root", metavar="FILE", help="a trust root to name in the policy")
    init.add_argument("-o", "--output", metavar="FILE", help="write there (default: stdout)")
    init.add_argument("--force", action="store_true", help="overwrite an existing --output")
    init.set_defaults(handler=handlers.policy_init)
    _share_globals(parser)
    polish(parser)
    return parser


def _completion(args: argparse.Namespace) -> int:
    sys.stdout.write(script(build_parser(), args.shell))
    return 0


def _add_identity_options(p: argparse.ArgumentParser) -> None:
    """cosign's keyless flags: trust one identity from a trusted root, without a policy file."""
    g = p.add_argument_group("keyless (Sigstore) signer, instead of keys or a policy")
    who = g.add_mutually_exclusive_group()
    who.add_argument("--certificate-identity", metavar="I", help="the certificate's SAN, exactly")
    who.add_argument(
        "--certificate-identity-regexp",
        metavar="R",
        help="a regexp the whole SAN must match (anchored, unlike cosign's)",
    )
    issuer = g.add_mutually_exclusive_group()
    issuer.add_argument("--certificate-oidc-issuer", metavar="U", help="the OIDC issuer, exactly")
    issuer.add_argument(
        "--certificate-oidc-issuer-regexp",
        metavar="R",
        help="a regexp the whole OIDC issuer must match (anchored)",
    )
    g.add_argument(
        "--certificate-claim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Fulcio claim that must match, e.g. runner_environment=github-hosted (repeatable)",
    )
    g.add_argument(
        "--trusted-root",
        action="append",
        default=[],
        metavar="F",
        help="trusted_root.json or gh's JSONL, or 'public-good'/'staging' (repeatable; "
        "default: the embedded public-good root plus imported roots)",
    )


def _add_keyless_commands(sub: argparse._SubParsersAction[_Parser]) -> None:
    blob = sub.add_parser(
        "verify-blob",
        help="verify a file or digest against a Sigstore bundle (keyless or key)",
        description="Verify FILE (or sha256:HEX, when no such file exists) against a Sigstore "
        "bundle v0.1-v0.3 or a .jsonl of bundles (one that verifies is enough), offline. "
        "Exit 0 verified, 1 rejected, 2 bad usage.",
    )
    blob.add_argument("target", metavar="FILE|sha256:HEX", help="the signed file or its digest")
    blob.add_argument("--bundle", required=True, metavar="B", help="the bundle file")
    blob.add_argument("--key", metavar="PUB", help="public key, for key-signed bundles")
    _add_identity_options(blob)
    blob.add_argument(
        "--require-tlog", action="store_true", help="reject bundles without a log entry"
    )
    blob.add_argument(
        "--predicate-type",
        metavar="URI",
        help="for DSSE bundles: the in-toto predicate type the statement must have",
    )
    blob.add_argument(
        "-o", "--output", choices=("text", "json"), default="text", help="output format"
    )
    blob.set_defaults(handler=handlers.verify_blob)

    roots = sub.add_parser(
        "trust-root",
        help="show, import or update Sigstore trusted roots",
        description="Manage the trusted roots keyless verification uses. Nothing is fetched "
        "unless you ask: 'update' needs network access (this build only prints how to get "
        "the file on a connected machine); 'import' checks a file and keeps a copy.",
    ).add_subparsers(dest="trust_root_command", required=True)
    show = roots.add_parser("show", help="list the roots in use, with their CAs, logs and dates")
    show.add_argument("files", nargs="*", metavar="FILE", help="show these files instead")
    show.set_defaults(handler=handlers.trust_root_show)
    imp = roots.add_parser("import", help="check a trusted_root.json or gh JSONL and keep it")
    imp.add_argument("file", metavar="FILE", help="trusted_root.json or gh's JSONL")
    imp.set_defaults(handler=handlers.trust_root_import)
    upd = roots.add_parser(
        "update", help="refresh from Sigstore's TUF repository (needs network; says how)"
    )
    upd.set_defaults(handler=handlers.trust_root_update)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) and usage errors (2), already printed
        return e.code if isinstance(e.code, int) else 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="sealgate: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.handler(args))
    except SealgateError as e:
        print(f"sealgate: error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"sealgate: hint: {e.hint}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("sealgate: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if args.verbose:
            logging.getLogger("sealgate").exception("unexpected error")
        detail = " ".join(str(e).split())[:200]
        print(
            f"sealgate: error: could not finish ({type(e).__name__}: {detail}); "
            "run with -v for details, and please report it",
            file=sys.stderr,
        )
        return 3


if __name__ == "__main__":
    sys.exit(main())
