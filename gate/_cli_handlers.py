"""The handlers behind ``sealgate``'s subcommands (``gate.cli`` builds the parser).

Each takes the parsed arguments, calls the library, prints results to stdout
and returns an exit code. They import what they need when they run, so that
``import gate.cli`` stays light (no cryptography, requests or docker).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate import __version__
from gate.errors import UsageError

if TYPE_CHECKING:
    from gate import attest_keyless, commands, manifests
    from gate._cli_progress import Ticker
    from gate.keys import PrivateKey
    from gate.policy import Policy
    from gate.result import Result
    from gate.sigstore import Identity, KeylessSigner
    from gate.usecase import Checker

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
    private, public = keys.write_key_pair(
        args.out, key, password, force=args.force, key_format=args.format
    )
    print(f"Private key written to {private}")
    print(f"Public key written to {public} (key ID {key.public_key.short_id})")
    return 0


def _context(args: argparse.Namespace, images: Sequence[str] | None = None) -> commands.Context:
    """The registry options of ``_add_registry_options``; ``images`` (sign, untrust) lets
    explicit credentials default to the images' registry."""
    from gate import commands

    password = os.environ.get("SEALGATE_REGISTRY_PASSWORD")
    if getattr(args, "registry_password_stdin", False):
        password = sys.stdin.readline().rstrip("\n")
    options = commands.RegistryOptions(
        tuple(args.insecure_registry),
        args.ca_bundle,
        args.registry_username,
        password,
        registry=getattr(args, "registry", None),
    )
    if getattr(args, "timeout", None) is not None:
        options = dataclasses.replace(options, timeout=args.timeout)
    if getattr(args, "concurrency", None) is not None:
        options = dataclasses.replace(options, concurrency=args.concurrency)
    if images is not None:
        options = options.for_images(images)
    options.check()
    return commands.Context(
        options,
        ledger_path=args.ledger,
        state_dir=args.global_state_dir,
    )


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
    key = _signing_key(args)
    if args.provenance and args.report_dir:
        _report_dir(args.report_dir)  # before a signature is pushed, not after
    ctx = _context(args, args.images)
    keyless_provenance: list[attest_keyless.Made] = []

    def make_provenance(pairs: list[tuple[str, str]]) -> None:
        """Keyless: sign and log the provenance before any signature is pushed."""
        from gate import attest_keyless

        assert not isinstance(key, keys.PrivateKey)
        keyless_provenance.append(attest_keyless.make(key, pairs, env=os.environ))

    keyless = not isinstance(key, keys.PrivateKey)
    with _progress(f"signing {_count(len(args.images), 'image')}"):
        done = commands.sign(
            ctx,
            args.images,
            key,
            annotations=annotations,
            fmt=SignatureFormat(args.format) if args.format else None,
            recursive=args.recursive,
            push=args.push,
            before_attach=make_provenance if keyless and args.provenance else None,
        )
    for signed in done:
        print(f"Signed {signed.image}")
        for where in signed.written:
            log.info("  wrote %s", where)
    if not isinstance(key, keys.PrivateKey):
        from gate.sigstore import describe_keyless

        print(describe_keyless(key))
    if not args.provenance:
        return 0
    directory = Path(args.report_dir) if args.report_dir else None
    if keyless_provenance:
        from gate import attest_keyless

        made = attest_keyless.attach(ctx.client, keyless_provenance[0], directory)
        count = len(keyless_provenance[0].images)
    else:
        from gate import attest

        assert isinstance(key, keys.PrivateKey)
        local = ("docker://", "oci:", "docker-archive:")
        pairs = [(s.image, s.digest) for s in done if not s.image.startswith(local)]
        made = attest.provenance(ctx.client, pairs, key, env=os.environ, directory=directory)
        count = len(pairs)
    print(
        f"Attached signed SLSA provenance to {_count(count, 'image')}"
        + (f"; wrote {made.path}" if made.path else "")
    )
    return 0


def _signing_key(args: argparse.Namespace) -> PrivateKey | KeylessSigner:
    """--key, or a keyless signer whose certificate is fetched now (before any image is read)."""
    from gate import keys

    if args.keyless == bool(args.key):
        raise UsageError("give exactly one of --key KEY or --keyless")
    if args.key:
        return keys.load_private_key(args.key)
    from gate import refs

    for text in args.images:  # before the token is spent on a certificate
        if refs.parse_source(text).reference is None:
            raise UsageError(f"keyless signing signs registry images; push {text} and sign that")
    if args.provenance:
        from gate.provenance import BuildContext

        BuildContext.from_environment(os.environ)  # outside CI: exit 2 before a token is used
    return _keyless_signer(args, args.trusted_root)


def _keyless_signer(
    args: argparse.Namespace, roots: Sequence[str], *, certify_now: bool = True
) -> KeylessSigner:
    from gate.sigstore import keyless_signer

    return keyless_signer(
        token=args.identity_token,
        fulcio_url=args.fulcio_url,
        rekor_url=args.rekor_url,
        signing_config=args.signing_config,
        trusted_roots=roots,
        env=os.environ,
        tsa_url=args.tsa_url,
        certify_now=certify_now,
    )


_KEYLESS_SIGNING_FLAGS = ("identity_token", "fulcio_url", "rekor_url", "tsa_url", "signing_config")


def _vsa_signer(args: argparse.Namespace, pol: Policy) -> PrivateKey | KeylessSigner | None:
    """The gate's VSA signer: ``--key``, ``--keyless`` (certified when signing), or none.

    Loaded before any image is read, so a bad key or a missing token costs nothing.
    """
    from gate import keys

    given = [f"--{n.replace('_', '-')}" for n in _KEYLESS_SIGNING_FLAGS if getattr(args, n)]
    if args.key and args.keyless:
        raise UsageError("give one of --key KEY or --keyless to sign the verification summary")
    if given and not args.keyless:
        raise UsageError(f"{given[0]} is for signing the verification summary; add --keyless")
    if args.key:
        return keys.load_private_key(args.key)
    if not args.keyless:
        return None
    if not args.report_dir:
        raise UsageError(
            "the verification summary is signed into the report directory; give --report-dir too"
        )
    # The roots the verification trusts also check Rekor's answers for the VSA.
    return _keyless_signer(args, pol.trust_roots, certify_now=False)


def _report_dir(path: str) -> Path:
    """``--report-dir``, created and known writable before any work is done."""
    from gate.report import prepare_dir

    return prepare_dir(Path(path))


def _manifest_options(args: argparse.Namespace) -> manifests.Options:
    from gate import manifests

    env_files = tuple(args.env_file) if args.env_file else None
    return manifests.Options(follow_symlinks=args.follow_symlinks, env_files=env_files)


def _emit(results: Sequence[Result], args: argparse.Namespace, command: str) -> None:
    from gate._cli_style import use_color
    from gate.report import OutputFormat, ReportContext, render
    from gate.result import FailOn

    ctx = ReportContext(
        command=command,
        tool_version=__version__,
        policy=getattr(args, "policy", None),
        fail_on=FailOn(getattr(args, "fail_on", FailOn.UNKNOWN.value)),  # the exit code's rule
    )
    color = args.output == "text" and use_color(args.color, sys.stdout)
    text = render(results, OutputFormat(args.output), ctx, color=color)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _checker(
    args: argparse.Namespace,
    pol: Policy,
    signing_key: PrivateKey | KeylessSigner | None = None,
) -> Checker:
    """The use case both ``verify`` and ``gate`` run, configured from the flags once."""
    from gate.report import ReportContext
    from gate.result import FailOn
    from gate.usecase import Checker, Reporting

    directory = getattr(args, "report_dir", None)
    reporting = Reporting(
        directory=Path(directory) if directory else None,
        signing_key=signing_key,
        fail_on=FailOn(getattr(args, "fail_on", FailOn.UNKNOWN.value)),
        context=ReportContext(tool_version=__version__, policy=getattr(args, "policy", None)),
    )
    return Checker(_context(args), pol, reporting)


def verify(args: argparse.Namespace) -> int:
    pol = _policy(args, args.key)
    checker = _checker(args, pol)
    with _progress(f"verifying {_count(len(args.images), 'image')}"):
        checked = checker.verify(args.images, attestations=args.attestation)
    _emit(checked.results, args, "verify")
    return checked.exit_code


def gate(args: argparse.Namespace) -> int:
    if not args.policy and not (args.certificate_identity or args.certificate_identity_regexp):
        raise UsageError(
            "gate needs --policy FILE, or a keyless signer "
            "(--certificate-identity I --certificate-oidc-issuer U)"
        )
    pol = _policy(args)
    checker = _checker(args, pol, signing_key=_vsa_signer(args, pol))
    with _progress("checking the images in " + ", ".join(args.paths)[:60]):
        checked = checker.gate(
            args.paths,
            stdin=sys.stdin,
            allow_empty=args.allow_empty,
            options=_manifest_options(args),
        )
    if not checked.results:
        print("No images found; nothing to check (--allow-empty).")
        return 0
    summary = checked.summary
    if summary is not None:
        log.info(
            "wrote the %s verification summary %s",
            f"signed ({summary.signer})" if summary.signed else "unsigned",
            summary.path,
        )
        if summary.rekor_url:
            print(
                f"Verification summary signed as {summary.signer}; Rekor entry: "
                f"{summary.rekor_url}; bundle: {summary.bundle_path}",
                file=sys.stderr,
            )
    _emit(checked.results, args, "gate")
    return checked.exit_code


def revoke(args: argparse.Namespace) -> int:
    from gate import commands, keys

    key = keys.load_private_key(args.key)
    done = commands.revoke(_context(args, [args.image]), args.image, key, args.action, args.reason)
    verb = "Untrusted" if args.action == "untrust" else "Marked unsupported"
    for digest in done.digests:
        print(f"{verb} {digest} ({args.image})")
    for where in done.written:
        log.info("  wrote %s", where)
    return 0


def watch(args: argparse.Namespace) -> int:
    import signal
    import threading
    from pathlib import Path

    from gate import commands
    from gate.ledger import state_dir as default_state_dir
    from gate.watch import Enforcement, WatchOptions
    from gate.watch._config import urls

    chosen = args.state_dir or args.global_state_dir
    state_dir = Path(chosen) if chosen else default_state_dir()
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
    ctx = _context(args)
    ctx.state_dir = str(state_dir)  # the ledger's witness lives with the watchdog's state
    dog, server = commands.watchdog(
        ctx,
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
    print(f"sealgate: {_watching(dog, args, server)}", file=sys.stderr, flush=True)
    if server is not None and server.host in ("0.0.0.0", "::"):
        log.warning(
            "serving metrics and the status page on every interface: "
            "anyone who can reach this host can read them"
        )
    try:
        dog.run(stop, once=args.once)
    finally:
        if server is not None:
            server.close()
    from gate.watch._page import checked_line

    print(checked_line(dog.board.snapshot()), flush=True)
    return dog.board.exit_code() if args.once else 0


def _watching(dog: Any, args: argparse.Namespace, server: Any) -> str:
    """One line at start: what is watched, against what, and where results go."""
    scope = f"containers labelled {', '.join(args.label)}" if args.label else "every container"
    trust = f"policy {args.policy}" if args.policy else f"{_count(len(args.key), 'key')}"
    sinks = [w.name for w in dog.alerts] or ["nowhere"]
    line = (
        f"watching {scope} on {dog.engine.where} ({'one sweep' if args.once else 'events'}"
        f"{'' if args.once else f', a sweep every {args.interval:g} s'}) against {trust}; "
        f"alerts to {', '.join(sinks)}"
    )
    if dog.metrics_sinks:
        line += f"; results to {', '.join(w.name for w in dog.metrics_sinks)}"
    if server is not None:
        base = server.url.removesuffix("metrics")
        line += f"; status page {base}, metrics {server.url}"
    return line


def _progress(what: str) -> Ticker:
    """A ticker on stderr while a long run works (a terminal only; see gate._cli_progress)."""
    from gate._cli_progress import Ticker

    return Ticker(what, sys.stderr)


def _count(n: int, noun: str, plural: str | None = None) -> str:
    from gate.report import counted

    return counted(n, noun, plural)


def demo(args: argparse.Namespace) -> int:
    from gate.demo import run_demo

    return run_demo(args.registry)


def pin(args: argparse.Namespace) -> int:
    """Exit 0 all pinned (or now pinned), 1 something is left unpinned, 2/3 as errors say."""
    from gate import manifests

    client = _context(args).client
    changes = manifests.pin_files(
        args.paths,
        lambda ref: client.get_manifest(ref.repository, ref.identifier).digest,
        check=args.check,
        options=_manifest_options(args),
    )
    left = 0
    for change in changes:
        where = f"{change.location.file}:{change.location.line}"
        if not change.in_place:
            left += 1
            print(f"{where}: cannot pin {change.old} in place; pin it by hand as {change.new}")
        elif args.check:
            left += 1
            print(f"{where}: unpinned {change.old} -> {change.new}")
        else:
            print(f"{where}: pinned {change.old} -> {change.new}")
    if left:
        fix = "run `sealgate pin` or pin them by hand" if args.check else "pin them by hand"
        are = "is" if left == 1 else "are"
        print(f"{_count(left, 'image reference')} {are} not pinned; {fix}.")
        return 1
    if not changes:
        print("Every image reference is already pinned.")
    return 0


def policy_check(args: argparse.Namespace) -> int:
    from gate import policy

    pol = policy.load(args.file)
    narrowed = sum(1 for r in (*pol.rules, pol.default) if r is not None and r.namespaces)
    limited = f" ({narrowed} limited to namespaces at admission)" if narrowed else ""
    print(
        f"{args.file}: valid ({_count(len(pol.signers), 'signer')}, "
        f"{_count(len(pol.rules), 'rule')}{limited}, "
        f"default {'deny' if pol.default is None else 'rule'})"
    )
    return 0


def policy_init(args: argparse.Namespace) -> int:
    from gate.policy_init import from_github

    text = from_github(args.from_github, args.ref, root=args.trusted_root)
    if not args.output:
        sys.stdout.write(text)
        return 0
    target = Path(args.output)
    if target.exists() and not args.force:
        raise UsageError(f"{target} exists; pass --force to overwrite it")
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {target}: {e.strerror}") from None
    print(f"Wrote {target}")
    return 0


def policy_explain(args: argparse.Namespace) -> int:
    from gate import policy, refs

    pol = policy.load(args.file)
    ref = refs.parse(args.image)
    print(f"Image:     {ref}")
    if not pol.registry_allowed(ref):
        allowed = ", ".join(pol.registries or ())
        print(f"Registry:  {ref.registry} is NOT in the allowed registries ({allowed})")
    namespace = getattr(args, "namespace", None)
    narrowed = [r for r in (*pol.rules, pol.default) if r is not None and r.namespaces]
    if namespace is None and narrowed:
        print(
            f"Note:      rules limited to namespaces (admission only): {len(narrowed)}; "
            "--namespace NS shows the rule admission picks there"
        )
    if namespace is not None:
        if not pol.scope.covers(namespace, {}):
            print(f"Namespace: {namespace} is outside the policy's namespaces: admission skips it")
        pol = pol.in_namespace(namespace)
    rule = pol.rule_for(ref)
    if rule is None:
        print("Rule:      none matches; the default is deny, so this image is UNTRUSTED")
        return 0
    where = f"{args.file}:{rule.line}" if rule.line else "default rule"
    print(f"Rule:      match '{rule.match}' ({where})")
    if rule.namespaces is not None:
        how = (
            f"applies in namespace {namespace}"
            if namespace is not None
            else "admission only; the gate and the watchdog ignore it"
        )
        print(f"Namespaces: {rule.namespaces.describe()} ({how})")
    print(f"Signers:   {rule.threshold} of [{', '.join(rule.signers)}]")
    for name in rule.signers:
        s = pol.signers[name]
        label = " - " + s.label if s.label else ""
        who = (
            f"key {s.key.short_id}"
            if s.key
            else "keyless " + (s.identity.describe() if s.identity else "?")
        )
        print(f"           - {name}: {who}, level {s.level}{label}")
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


def _keyless_identity(args: argparse.Namespace) -> Identity | None:
    """``verify-blob``: exactly one of ``--key`` and a keyless identity; None means the key."""
    identity = _identity_flags(args)
    if args.key and identity is not None:
        raise UsageError("give --key or a keyless identity (--certificate-identity), not both")
    if not args.key and identity is None:
        raise UsageError(
            "give --key PUB, or --certificate-identity I with --certificate-oidc-issuer U"
        )
    return identity


def _identity_flags(args: argparse.Namespace) -> Identity | None:
    """cosign's keyless flags as one identity; None when none of them is given."""
    from gate.sigstore import Identity

    subject_given = args.certificate_identity or args.certificate_identity_regexp
    issuer_given = args.certificate_oidc_issuer or args.certificate_oidc_issuer_regexp
    if not subject_given and not issuer_given and not args.certificate_claim:
        return None
    if not subject_given:
        raise UsageError("a keyless signer needs --certificate-identity (or its -regexp form)")
    if not issuer_given:
        raise UsageError("--certificate-oidc-issuer is required with --certificate-identity")
    claims = {}
    for item in args.certificate_claim:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--certificate-claim '{item}' must be NAME=VALUE")
        claims[name] = value
    return Identity(
        issuer=args.certificate_oidc_issuer,
        issuer_regex=args.certificate_oidc_issuer_regexp,
        subject=args.certificate_identity,
        subject_regex=args.certificate_identity_regexp,
        claims=claims,
    )


def _policy(args: argparse.Namespace, public_keys: Sequence[str] = ()) -> Policy:
    """A policy file, the keys of ``--key``, or the keyless signer of the identity flags."""
    from gate import commands

    identity = _identity_flags(args)
    if identity is None:
        if args.trusted_root:
            raise UsageError("--trusted-root goes with --certificate-identity and its issuer")
        return commands.load_policy(args.policy, public_keys)
    if args.policy or public_keys:
        raise UsageError(
            "give a policy, public keys, or a keyless identity (--certificate-identity), "
            "not several"
        )
    from gate import policy

    return policy.from_identity(identity, args.trusted_root)


def verify_blob(args: argparse.Namespace) -> int:
    import json

    from gate import keys
    from gate.sigstore import resolve_roots, verify_blob

    identity = _keyless_identity(args)
    key = keys.load_public_key(args.key) if args.key else None
    results = verify_blob(
        args.target,
        args.bundle,
        identity=identity,
        key=key,
        roots=resolve_roots(args.trusted_root),
        require_tlog=args.require_tlog,
        predicate_type=args.predicate_type,
    )
    if args.output == "json":
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return 0
    for r in results:
        who = f"{r.identity} ({r.issuer})" if r.identity else f"key {r.key_id}"
        where = f", log index {r.log_index}" if r.log_index is not None else ""
        what = f", predicate {r.predicate_type}" if r.predicate_type else ""
        print(
            f"VERIFIED {args.target}: signed by {who} at "
            f"{r.signed_time:%Y-%m-%dT%H:%M:%SZ} ({r.time_source}{where}{what})"
        )
    return 0


def trust_root_show(args: argparse.Namespace) -> int:
    from gate.sigstore import describe_roots

    print(describe_roots(args.files))
    return 0


def trust_root_import(args: argparse.Namespace) -> int:
    from gate.sigstore import import_root

    target, root = import_root(args.file)
    names = ", ".join(i.name for i in root.instances)
    print(f"imported {args.file} ({len(root.instances)} root(s): {names}) to {target}")
    return 0


def trust_root_update(args: argparse.Namespace) -> int:
    from gate.errors import UnavailableError

    raise UnavailableError(
        "trust-root update needs Sigstore's TUF repository over the network, "
        "which this build does not fetch",
        hint="on a connected machine run `cosign initialize` and copy trusted_root.json from "
        "its TUF cache under ~/.sigstore/root/, or run `gh attestation trusted-root > "
        "github.jsonl`; then `sealgate trust-root import FILE` here",
    )
