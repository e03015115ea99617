"""The handlers behind ``sealgate``'s subcommands (``gate.cli`` builds the parser).

Each takes the parsed arguments, calls the library, prints results to stdout
and returns an exit code. They import what they need when they run, so that
``import gate.cli`` stays light (no cryptography, requests or docker).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gate import __version__
from gate.errors import UsageError

if TYPE_CHECKING:
    from gate import commands
    from gate.keys import PublicKey
    from gate.ledger import Ledger
    from gate.result import Result

log = logging.getLogger("sealgate")


def keys_generate(args: argparse.Namespace) -> int:
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


def sign(args: argparse.Namespace) -> int:
    from gate import commands, keys
    from gate.sign import SignatureFormat

    annotations = _parse_annotations(args.annotation)
    key = keys.load_private_key(args.key)
    ctx = _context(args)
    done = commands.sign(
        ctx,
        args.images,
        key,
        annotations=annotations,
        fmt=SignatureFormat(args.format),
        recursive=args.recursive,
        push=args.push,
    )
    for signed in done:
        print(f"Signed {signed.image}")
        for where in signed.written:
            log.info("  wrote %s", where)
    if args.provenance:
        from gate import attest

        local = ("docker://", "oci:", "docker-archive:")
        pairs = [(s.image, s.digest) for s in done if not s.image.startswith(local)]
        made = attest.provenance(
            ctx.client,
            pairs,
            key,
            env=os.environ,
            directory=Path(args.report_dir) if args.report_dir else None,
        )
        print(
            f"Attached signed SLSA provenance to {len(pairs)} image(s)"
            + (f"; wrote {made.path}" if made.path else "")
        )
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


def verify(args: argparse.Namespace) -> int:
    from gate import commands
    from gate.result import exit_code

    pol = commands.load_policy(args.policy, args.key)
    results = commands.verify(_context(args), args.images, pol, attestations=args.attestation)
    _emit(results, args, "verify")
    return exit_code(results)


def gate(args: argparse.Namespace) -> int:
    from gate import commands, keys, policy
    from gate.result import FailOn, exit_code

    pol = policy.load(args.policy)
    # A bad key fails before any work.
    signer = keys.load_private_key(args.key) if args.key else None
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

        summary = attest.verification_report(
            run.results,
            pol,
            Path(args.report_dir),
            key=signer,
            fail_on=FailOn(args.fail_on),
            paths=args.paths,
        )
        if summary is not None:
            log.info(
                "wrote the %s verification summary %s",
                "signed" if summary.signed else "unsigned",
                summary.path,
            )
    elif args.key:
        raise UsageError(
            "--key signs the verification summary in --report-dir; give --report-dir too"
        )
    _emit(run.results, args, "gate")
    return exit_code(run.results, FailOn(args.fail_on))


def revoke(args: argparse.Namespace) -> int:
    from gate import commands, keys

    key = keys.load_private_key(args.key)
    done = commands.revoke(_context(args), args.image, key, args.action, args.reason)
    verb = "Untrusted" if args.action == "untrust" else "Marked unsupported"
    for digest in done.digests:
        print(f"{verb} {digest} ({args.image})")
    for where in done.written:
        log.info("  wrote %s", where)
    return 0


def _open_ledger(create: bool = False) -> Ledger:
    from gate import commands

    ledger = commands.Context(ledger_path=os.environ.get("SEALGATE_LEDGER")).ledger(create=create)
    if ledger is None:
        from gate.ledger import default_path

        raise UsageError(
            f"there is no ledger at {default_path()}; sign something first or pass --ledger PATH"
        )
    return ledger


def _writer_keys(args: argparse.Namespace) -> list[PublicKey] | None:
    """The checkpoint writers ``--key`` names; None (any writer) when it names none."""
    from gate import keys

    return [keys.load_public_key(k) for k in args.key] or None


def ledger_verify(args: argparse.Namespace) -> int:
    trusted = _writer_keys(args)
    with _open_ledger() as ledger:
        report = ledger.verify(trusted)
    print(
        f"{ledger.path}: OK: {report.entries} entries, {report.checkpoints} checkpoints, "
        f"root {report.root}"
    )
    print(f"checkpoint writers: {', '.join(k[:16] for k in report.writers) or 'none'}")
    return 0


def ledger_proof(args: argparse.Namespace) -> int:
    import json

    from gate import refs

    with _open_ledger() as ledger:
        proof = ledger.inclusion_proof(refs.parse_digest(args.digest))
    print(json.dumps(proof, indent=2))
    return 0


def ledger_check_proof(args: argparse.Namespace) -> int:
    """A third party's check: the proof and the writer's public key, nothing else."""
    import json

    from gate import keys
    from gate.ledger import verify_inclusion_proof

    key = keys.load_public_key(args.key)
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        proof = json.loads(text)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read a proof from {args.file}: {e}") from e
    if not isinstance(proof, dict) or not verify_inclusion_proof(proof, key):
        print(
            f"{args.file}: INVALID: not an inclusion proof that verifies under key {key.short_id}"
        )
        return 1
    entry, checkpoint = proof["entry"], proof["checkpoint"]
    print(
        f"{args.file}: OK: entry {proof['leaf_index']} ({entry.get('kind')} "
        f"{entry.get('subject')}) is in the log of {proof['tree_size']} entries "
        f"whose checkpoint key {key.short_id} signed at {checkpoint.get('timestamp')}"
    )
    return 0


def ledger_export(args: argparse.Namespace) -> int:
    with _open_ledger() as ledger:
        count = ledger.export(args.file)
    print(f"Exported {count} entries to {args.file}")
    return 0


def ledger_import(args: argparse.Namespace) -> int:
    trusted = _writer_keys(args)
    with _open_ledger(create=True) as ledger:
        count = ledger.import_(args.file, trusted_keys=trusted)
    print(f"Imported {count} new entries from {args.file}")
    return 0


def watch(args: argparse.Namespace) -> int:
    import signal
    import threading
    from pathlib import Path

    from gate import commands
    from gate.ledger import default_path
    from gate.watch import Enforcement, WatchOptions
    from gate.watch._config import urls

    state_dir = Path(
        args.state_dir or os.environ.get("SEALGATE_STATE_DIR") or default_path().parent / "watch"
    )
    for name, value in (("--interval", args.interval), ("--refresh", args.refresh)):
        if not value > 0:
            raise UsageError(f"{name} must be a positive number of seconds, not {value:g}")
    options = WatchOptions(
        interval=args.interval,
        refresh=args.refresh,
        realert_after=args.realert_after,
        on_untrusted=Enforcement(args.on_untrusted),
        state_dir=state_dir,
        labels=tuple(args.label),
    )
    alerts = urls(args.alert, args.alert_file, "SEALGATE_ALERT_URLS") or ["log:"]
    influx = urls(args.influx, args.influx_file, "SEALGATE_INFLUX_URLS")
    dog, server = commands.watchdog(
        _context(args),
        args.policy,
        args.key,
        alerts=alerts,
        influx=influx,
        metrics_addr=args.metrics_addr,
        options=options,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if server is not None:
        everywhere = server.host in ("0.0.0.0", "::")
        log.warning(
            "serving metrics on %s%s",
            server.url,
            " (every interface: anyone who can reach this host can read them)"
            if everywhere
            else "",
        )
    try:
        dog.run(stop, once=args.once)
    finally:
        if server is not None:
            server.close()
    return 0


def demo(args: argparse.Namespace) -> int:
    from gate.demo import run_demo

    return run_demo(args.registry)


def pin(args: argparse.Namespace) -> int:
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


def policy_check(args: argparse.Namespace) -> int:
    from gate import policy

    pol = policy.load(args.file)
    print(
        f"{args.file}: valid ({len(pol.signers)} signers, {len(pol.rules)} rules, "
        f"default {'deny' if pol.default is None else 'rule'})"
    )
    return 0


def policy_explain(args: argparse.Namespace) -> int:
    from gate import policy, refs

    pol = policy.load(args.file)
    ref = refs.parse(args.image)
    print(f"Image:     {ref}")
    if not pol.registry_allowed(ref):
        allowed = ", ".join(pol.registries or ())
        print(f"Registry:  {ref.registry} is NOT in the allowed registries ({allowed})")
    rule = pol.rule_for(ref)
    if rule is None:
        print("Rule:      none matches; the default is deny, so this image is UNTRUSTED")
        return 0
    where = f"{args.file}:{rule.line}" if rule.line else "default rule"
    print(f"Rule:      match '{rule.match}' ({where})")
    print(f"Signers:   {rule.threshold} of [{', '.join(rule.signers)}]")
    for name in rule.signers:
        s = pol.signers[name]
        label = " - " + s.label if s.label else ""
        print(f"           - {name}: key {s.key.short_id}, level {s.level}{label}")
    if rule.min_level is not None:
        print(f"Min level: {rule.min_level}")
    if rule.max_age is not None:
        print(f"Max age:   {rule.max_age.days} days")
    pinned = " (this reference is pinned)" if ref.pinned else " (this reference is NOT pinned)"
    print(f"Pinned:    {rule.pinned}{pinned}")
    print(f"Unsupported images: {rule.unsupported}")
    for check in rule.attestations:
        print(
            f"Requires:  {check.predicate_type}"
            + (f" from builder {check.builder}" if check.builder else "")
            + (f" of source {check.source}" if check.source else "")
        )
    return 0
