"""The ``sealgate`` command line: argparse, thin handlers, one ``except``.

Handlers import what they need when they run, so ``sealgate --help`` stays
fast (no cryptography, requests or docker at start-up). Results go to stdout,
logs and errors to stderr. Exit codes: 0 pass, 1 policy failure, 2 bad usage
or configuration, 3 could not verify.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gate import __version__
from gate.errors import SealgateError, UsageError

if TYPE_CHECKING:
    from gate import commands
    from gate.result import Result

log = logging.getLogger("sealgate")

OUTPUTS = ("text", "json", "markdown", "junit", "sarif")


def _add_registry_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("registry")
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


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-o", "--output", choices=OUTPUTS, default="text", help="output format (default: text)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sealgate",
        description="Keep untrusted container images off your hosts: sign, gate, watch.",
    )
    parser.add_argument("--version", action="version", version=f"sealgate {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what is happening to stderr"
    )
    parser.add_argument(
        "--ledger",
        metavar="PATH",
        help="ledger file (default: $SEALGATE_LEDGER, else one in your data directory)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    keys = sub.add_parser("keys", help="generate signing keys").add_subparsers(
        dest="keys_command", required=True
    )
    gen = keys.add_parser("generate", help="write PREFIX.key (encrypted PKCS#8) and PREFIX.pub")
    gen.add_argument("--type", default="ecdsa-p256", choices=("ecdsa-p256", "ed25519", "rsa-3072"))
    gen.add_argument("--out", default="sealgate", metavar="PREFIX")
    gen.add_argument("--no-password", action="store_true", help="write an unencrypted private key")
    gen.add_argument("--force", action="store_true", help="overwrite existing files")
    gen.set_defaults(handler=_keys_generate)

    sign = sub.add_parser("sign", help="sign images (cosign-compatible)")
    sign.add_argument("images", nargs="+", metavar="IMAGE")
    sign.add_argument(
        "--key", required=True, metavar="KEY", help="private key: a path or env://NAME"
    )
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
        default="legacy",
        help="legacy .sig tag (default), cosign v3 bundle referrer, or both",
    )
    sign.add_argument(
        "--push",
        action="store_true",
        help="for docker:// images, also sign in the registry of each repo digest",
    )
    sign.add_argument("--provenance", action="store_true",
                      help="also attach signed SLSA v1 provenance from the CI environment (cosign .att)")
    sign.add_argument("--report-dir", metavar="DIR", help="write provenance.intoto.jsonl there")
    _add_registry_options(sign)
    sign.set_defaults(handler=_sign)

    verify = sub.add_parser("verify", help="verify images against keys or a policy")
    verify.add_argument("images", nargs="+", metavar="IMAGE")
    verify.add_argument(
        "--key", action="append", default=[], metavar="PUB", help="trusted public key (repeatable)"
    )
    verify.add_argument("--policy", metavar="FILE", help="trust policy (instead of --key)")
    verify.add_argument(
        "--attestation",
        action="append",
        default=[],
        metavar="TYPE",
        help="require a signed attestation of this predicate type (e.g. slsaprovenance)",
    )
    _add_output(verify)
    _add_registry_options(verify)
    verify.set_defaults(handler=_verify)

    gate = sub.add_parser("gate", help="check every image in deploy manifests against a policy")
    gate.add_argument("paths", nargs="+", metavar="PATH", help="files, directories, or - for stdin")
    gate.add_argument("--policy", required=True, metavar="FILE")
    gate.add_argument("--report-dir", metavar="DIR", help="write every report format there")
    gate.add_argument(
        "--fail-on", choices=("untrusted", "unknown", "unsupported", "never"), default="unknown"
    )
    gate.add_argument("--allow-empty", action="store_true", help="pass when no image is found")
    gate.add_argument(
        "--key", metavar="KEY", help="sign the verification summary (VSA) with this key"
    )
    _add_output(gate)
    _add_registry_options(gate)
    gate.set_defaults(handler=_gate)

    pin = sub.add_parser("pin", help="pin image tags to digests in manifests, in place")
    pin.add_argument("paths", nargs="+", metavar="PATH")
    pin.add_argument(
        "--check", action="store_true", help="exit 1 if anything is unpinned; write nothing"
    )
    _add_registry_options(pin)
    pin.set_defaults(handler=_pin)

    for action, what in (("untrust", "mark an image bad everywhere (UNTRUSTED)"),
                         ("unsupport", "mark an image deprecated (UNSUPPORTED)")):
        revoke = sub.add_parser(action, help=what)
        revoke.add_argument("image", metavar="IMAGE|DIGEST")
        revoke.add_argument("--key", required=True, metavar="KEY", help="private key of a trusted signer")
        revoke.add_argument("--reason", required=True, help="why, for whoever reads the result later")
        _add_registry_options(revoke)
        revoke.set_defaults(handler=_revoke, action=action)

    ledger = sub.add_parser("ledger", help="check, prove, export and import the embedded ledger")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True)
    lv = ledger_sub.add_parser("verify", help="recompute every entry, tree and checkpoint")
    lv.add_argument("--key", action="append", default=[], metavar="PUB",
                    help="only accept checkpoints written by these keys (repeatable)")
    lv.set_defaults(handler=_ledger_verify)
    lp = ledger_sub.add_parser("proof", help="print an inclusion proof for the newest entry about DIGEST")
    lp.add_argument("digest")
    lp.set_defaults(handler=_ledger_proof)
    le = ledger_sub.add_parser("export", help="write every entry and checkpoint to FILE (JSON Lines)")
    le.add_argument("file")
    le.set_defaults(handler=_ledger_export)
    li = ledger_sub.add_parser("import", help="append entries from FILE after checking them; refuses a fork")
    li.add_argument("file")
    li.add_argument("--key", action="append", default=[], metavar="PUB",
                    help="only accept checkpoints written by these keys (repeatable)")
    li.set_defaults(handler=_ledger_import)

    watch = sub.add_parser("watch", help="verify every running container, continuously; alert on change")
    watch.add_argument("--policy", metavar="FILE", help="trust policy (reloaded when it changes)")
    watch.add_argument("--key", action="append", default=[], metavar="PUB", help="trusted public key (repeatable)")
    watch.add_argument("--interval", type=float, default=60.0, metavar="S", help="seconds between sweeps (60)")
    watch.add_argument("--alert", action="append", default=[], metavar="URL",
                       help="alert sink: https://hooks.slack.com/..., http(s):// webhook, log: or log:PATH")
    watch.add_argument("--influx", action="append", default=[], metavar="URL",
                       help="InfluxDB: influx://HOST:PORT/DB (v1) or influx2://HOST:PORT?org=O&bucket=B (v2)")
    watch.add_argument("--metrics-addr", metavar="ADDR", help="serve Prometheus /metrics, e.g. 127.0.0.1:9105")
    watch.add_argument("--on-untrusted", choices=("alert", "stop", "kill", "pause"), default="alert")
    watch.add_argument("--realert-after", type=float, metavar="S", help="repeat alerts for still-failing containers")
    watch.add_argument("--cache-ttl", type=float, default=300.0, metavar="S", help="reuse a result this long (300)")
    watch.add_argument("--state-dir", metavar="DIR",
                       help="spools and container state (default: $SEALGATE_STATE_DIR, else the data directory)")
    watch.add_argument("--label", action="append", default=[], metavar="KEY[=VALUE]",
                       help="only watch containers with this label (repeatable)")
    watch.add_argument("--once", action="store_true", help="one sweep, then exit (cron, tests)")
    _add_registry_options(watch)
    watch.set_defaults(handler=_watch)

    demo = sub.add_parser("demo", help="sign, verify, gate and watch on this machine, then clean up")
    demo.add_argument("--registry", metavar="HOST", help="use this registry instead of a throwaway one")
    demo.set_defaults(handler=_demo)

    policy = sub.add_parser("policy", help="check or explain a trust policy").add_subparsers(
        dest="policy_command", required=True
    )
    check = policy.add_parser("check", help="validate a policy file")
    check.add_argument("file")
    check.set_defaults(handler=_policy_check)
    explain = policy.add_parser("explain", help="say which rule applies to an image and why")
    explain.add_argument("file")
    explain.add_argument("image")
    explain.set_defaults(handler=_policy_explain)
    return parser


# --- handlers -------------------------------------------------------------------------------


def _keys_generate(args: argparse.Namespace) -> int:
    from gate import keys

    password: bytes | None = None
    if not args.no_password:
        text = os.environ.get("SEALGATE_KEY_PASSWORD")
        if text is None:
            if not sys.stdin.isatty():
                raise UsageError(
                    "set SEALGATE_KEY_PASSWORD to encrypt the key, or pass --no-password"
                )
            import getpass

            text = getpass.getpass("Passphrase for the new key: ")
            if text != getpass.getpass("Again: "):
                raise UsageError("the passphrases differ")
        if not text:
            raise UsageError("an empty passphrase needs --no-password")
        password = text.encode()
    key = keys.generate(args.type)
    private, public = keys.write_key_pair(args.out, key, password, force=args.force)
    print(f"Private key written to {private}")
    print(f"Public key written to {public} (key ID {key.public_key.short_id})")
    return 0


def _context(args: argparse.Namespace) -> commands.Context:
    from gate import commands

    password = os.environ.get("SEALGATE_REGISTRY_PASSWORD")
    if getattr(args, "registry_password_stdin", False):
        password = sys.stdin.readline().rstrip("\n")
    options = commands.RegistryOptions(
        tuple(args.insecure_registry), args.ca_bundle, args.registry_username, password
    )
    return commands.Context(options)


def _parse_annotations(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"annotation '{item}' must be KEY=VALUE")
        out[name] = value
    return out


def _sign(args: argparse.Namespace) -> int:
    from gate import commands, keys
    from gate.sign import SignatureFormat

    annotations = _parse_annotations(args.annotation)
    key = keys.load_private_key(args.key)
    ctx = _context(args)
    done = commands.sign(ctx, args.images, key, annotations=annotations, fmt=SignatureFormat(args.format),
                         recursive=args.recursive, push=args.push)
    for signed in done:
        print(f"Signed {signed.image}")
        for where in signed.written:
            log.info("  wrote %s", where)
    if args.provenance:
        from pathlib import Path

        from gate import attest

        local = ("docker://", "oci:", "docker-archive:")
        pairs = [(s.image, s.digest) for s in done if not s.image.startswith(local)]
        made = attest.provenance(ctx.client, pairs, key, env=os.environ,
                                 directory=Path(args.report_dir) if args.report_dir else None)
        print(f"Attached signed SLSA provenance to {len(pairs)} image(s)"
              + (f"; wrote {made.path}" if made.path else ""))
    return 0


def _emit(results: Sequence[Result], args: argparse.Namespace, command: str) -> None:
    from gate.report import OutputFormat, ReportContext, render

    ctx = ReportContext(
        command=command, tool_version=__version__, policy=getattr(args, "policy", None)
    )
    text = render(
        results, OutputFormat(args.output), ctx, color=sys.stdout.isatty() and args.output == "text"
    )
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _verify(args: argparse.Namespace) -> int:
    from gate import commands
    from gate.result import exit_code

    pol = commands.load_policy(args.policy, args.key)
    results = commands.verify(_context(args), args.images, pol, attestations=args.attestation)
    _emit(results, args, "verify")
    return exit_code(results)


def _gate(args: argparse.Namespace) -> int:
    from gate import commands, policy
    from gate.result import FailOn, exit_code

    pol = policy.load(args.policy)
    from gate import keys

    signer = keys.load_private_key(args.key) if args.key else None  # a bad key fails before any work
    run = commands.gate(
        _context(args), args.paths, pol, stdin=sys.stdin, allow_empty=args.allow_empty
    )
    for finding in run.skipped:
        log.warning(
            "%s:%s: skipped %s: %s",
            finding.location.file,
            finding.location.line,
            finding.text,
            finding.problem,
        )
    if not run.results:
        print("No images found; nothing to check (--allow-empty).")
        return 0
    if args.report_dir:
        from pathlib import Path

        from gate.report import ReportContext, write_all

        write_all(
            run.results,
            Path(args.report_dir),
            ReportContext(
                command="gate",
                tool_version=__version__,
                policy=args.policy,
                fail_on=FailOn(args.fail_on),
            ),
        )
        from gate import attest

        summary = attest.verification_report(run.results, pol, Path(args.report_dir), key=signer,
                                             fail_on=FailOn(args.fail_on), paths=args.paths)
        if summary is not None:
            log.info("wrote the %s verification summary %s", "signed" if summary.signed else "unsigned",
                     summary.path)
    elif args.key:
        raise UsageError("--key signs the verification summary in --report-dir; give --report-dir too")
    _emit(run.results, args, "gate")
    return exit_code(run.results, FailOn(args.fail_on))


def _revoke(args: argparse.Namespace) -> int:
    from gate import commands, keys

    key = keys.load_private_key(args.key)
    done = commands.revoke(_context(args), args.image, key, args.action, args.reason)
    verb = "Untrusted" if args.action == "untrust" else "Marked unsupported"
    for digest in done.digests:
        print(f"{verb} {digest} ({args.image})")
    for where in done.written:
        log.info("  wrote %s", where)
    return 0


def _open_ledger(create: bool = False) -> Any:
    from gate import commands

    ledger = commands.Context(ledger_path=os.environ.get("SEALGATE_LEDGER")).ledger(create=create)
    if ledger is None:
        from gate.ledger import default_path

        raise UsageError(f"there is no ledger at {default_path()}; sign something first or pass --ledger PATH")
    return ledger


def _ledger_verify(args: argparse.Namespace) -> int:
    from gate import keys

    trusted = [keys.load_public_key(k) for k in args.key] or None
    with _open_ledger() as ledger:
        report = ledger.verify(trusted)
    print(f"{ledger.path}: OK: {report.entries} entries, {report.checkpoints} checkpoints, root {report.root}")
    print(f"checkpoint writers: {', '.join(k[:16] for k in report.writers) or 'none'}")
    return 0


def _ledger_proof(args: argparse.Namespace) -> int:
    import json

    from gate import refs

    with _open_ledger() as ledger:
        proof = ledger.inclusion_proof(refs.parse_digest(args.digest))
    print(json.dumps(proof, indent=2))
    return 0


def _ledger_export(args: argparse.Namespace) -> int:
    with _open_ledger() as ledger:
        count = ledger.export(args.file)
    print(f"Exported {count} entries to {args.file}")
    return 0


def _ledger_import(args: argparse.Namespace) -> int:
    from gate import keys

    trusted = [keys.load_public_key(k) for k in args.key] or None
    with _open_ledger(create=True) as ledger:
        count = ledger.import_(args.file, trusted_keys=trusted)
    print(f"Imported {count} new entries from {args.file}")
    return 0


def _watch(args: argparse.Namespace) -> int:
    import signal
    import threading
    from pathlib import Path

    from gate import commands
    from gate.ledger import default_path
    from gate.watch import Enforcement, WatchOptions

    state_dir = Path(args.state_dir or os.environ.get("SEALGATE_STATE_DIR") or default_path().parent / "watch")
    options = WatchOptions(interval=args.interval, cache_ttl=args.cache_ttl, realert_after=args.realert_after,
                           on_untrusted=Enforcement(args.on_untrusted), state_dir=state_dir,
                           labels=tuple(args.label))
    if not args.alert:
        args.alert = ["log:"]
    dog, server = commands.watchdog(_context(args), args.policy, args.key, alerts=args.alert, influx=args.influx,
                                    metrics_addr=args.metrics_addr, options=options)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if server is not None:
        log.warning("serving metrics on %s", server.url)
    try:
        dog.run(stop, once=args.once)
    finally:
        if server is not None:
            server.close()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from gate.demo import run_demo

    return run_demo(args.registry)


def _pin(args: argparse.Namespace) -> int:
    from gate import manifests

    client = _context(args).client
    changes = manifests.pin_files(
        args.paths,
        lambda ref: client.get_manifest(ref.repository, ref.identifier).digest,
        check=args.check,
    )
    for change in changes:
        verb = "unpinned" if args.check else "pinned"
        print(f"{change.location.file}:{change.location.line}: {verb} {change.old} -> {change.new}")
    if args.check and changes:
        print(f"{len(changes)} image reference(s) are not pinned; run `sealgate pin` to pin them.")
        return 1
    if not changes:
        print("Every image reference is already pinned.")
    return 0


def _policy_check(args: argparse.Namespace) -> int:
    from gate import policy

    pol = policy.load(args.file)
    print(
        f"{args.file}: valid ({len(pol.signers)} signers, {len(pol.rules)} rules, "
        f"default {'deny' if pol.default is None else 'rule'})"
    )
    return 0


def _policy_explain(args: argparse.Namespace) -> int:
    from gate import policy, refs

    pol = policy.load(args.file)
    ref = refs.parse(args.image)
    print(f"Image:     {ref}")
    if not pol.registry_allowed(ref):
        print(
            f"Registry:  {ref.registry} is NOT in the allowed registries ({', '.join(pol.registries or ())})"
        )
    rule = pol.rule_for(ref)
    if rule is None:
        print("Rule:      none matches; the default is deny, so this image is UNTRUSTED")
        return 0
    where = f"{args.file}:{rule.line}" if rule.line else "default rule"
    print(f"Rule:      match '{rule.match}' ({where})")
    print(f"Signers:   {rule.threshold} of [{', '.join(rule.signers)}]")
    for name in rule.signers:
        s = pol.signers[name]
        print(
            f"           - {name}: key {s.key.short_id}, level {s.level}{' - ' + s.label if s.label else ''}"
        )
    if rule.min_level is not None:
        print(f"Min level: {rule.min_level}")
    if rule.max_age is not None:
        print(f"Max age:   {rule.max_age.days} days")
    print(
        f"Pinned:    {rule.pinned}{' (this reference is pinned)' if ref.pinned else ' (this reference is NOT pinned)'}"
    )
    print(f"Unsupported images: {rule.unsupported}")
    for check in rule.attestations:
        print(
            f"Requires:  {check.predicate_type}"
            + (f" from builder {check.builder}" if check.builder else "")
            + (f" of source {check.source}" if check.source else "")
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="sealgate: %(message)s",
        stream=sys.stderr,
    )
    if args.ledger:
        os.environ["SEALGATE_LEDGER"] = args.ledger
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


if __name__ == "__main__":
    sys.exit(main())
