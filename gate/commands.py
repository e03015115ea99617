"""What each command does, as library calls the CLI and the GitHub Action share.

The CLI parses arguments and prints; the Action reads ``SEALGATE_*`` variables
and writes summaries; both end up here, so they cannot drift apart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from gate import keys, policy, refs
from gate.errors import SealgateError, UsageError
from gate.ledger import Ledger, Witness, default_path
from gate.policy import Policy
from gate.provenance import AttestationCheck
from gate.registry import RegistryClient
from gate.result import Location, Result, Status
from gate.revoke import Action, Revoked
from gate.revoke import revoke as revoke_image
from gate.sign import SignatureFormat, Signed, Signer, attach, prepare, sign_image, sign_local
from gate.sources import open_local
from gate.verify import LedgerStore, RegistryStore, SignatureStore, Target, Verifier
from gate.verify._stores import MissingLedgerStore

if TYPE_CHECKING:
    from gate.manifests import Finding
    from gate.manifests import Options as ManifestOptions


TIMEOUT_ENV = "SEALGATE_TIMEOUT"
CONCURRENCY_ENV = "SEALGATE_CONCURRENCY"
MAX_CONCURRENCY = 256
MAX_TIMEOUT = 86400.0


def _env_limit(name: str, default: float) -> float:
    """A number from the environment; what it must be is checked in RegistryOptions."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{name} must be a number, not '{text[:20]}'") from None


def _default_timeout() -> float:
    from gate.registry_http import DEFAULT_TIMEOUT

    return _env_limit(TIMEOUT_ENV, DEFAULT_TIMEOUT)


def _default_concurrency() -> int:
    from gate.registry_http import DEFAULT_CONCURRENCY

    value = _env_limit(CONCURRENCY_ENV, DEFAULT_CONCURRENCY)
    if value != int(value):
        raise UsageError(f"{CONCURRENCY_ENV} must be a whole number, not {value:g}")
    return int(value)


@dataclass(frozen=True)
class RegistryOptions:
    """How to reach registries: the same knobs on the CLI, the Action and GitLab."""

    insecure: tuple[str, ...] = ()
    ca_bundle: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    registry: str | None = None
    """The one registry host explicit credentials go to (``--registry``, $SEALGATE_REGISTRY)."""
    timeout: float = field(default_factory=_default_timeout)
    """Overall seconds for one request, body included (``--timeout``, $SEALGATE_TIMEOUT)."""
    concurrency: int = field(default_factory=_default_concurrency)
    """Requests in flight per registry (``--concurrency``, $SEALGATE_CONCURRENCY): size
    worker pools to this, the client never runs more than this per registry at once."""
    docker_config: str | None = None
    """A docker ``config.json`` (or its directory) instead of ``$DOCKER_CONFIG``'s: the
    admission webhook's mounted pull secret (``--docker-config``)."""

    def __post_init__(self) -> None:
        if not 0 < self.timeout <= MAX_TIMEOUT:  # also refuses NaN
            raise UsageError(
                f"--timeout ({TIMEOUT_ENV}) must be more than 0 and at most "
                f"{MAX_TIMEOUT:g} seconds, not {self.timeout:g}"
            )
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise UsageError(
                f"--concurrency ({CONCURRENCY_ENV}) must be from 1 to {MAX_CONCURRENCY}, "
                f"not {self.concurrency}"
            )

    def _explicit(self) -> bool:
        from gate.credentials import PASSWORD_ENV, USERNAME_ENV

        return bool(
            self.username
            or self.password
            or os.environ.get(USERNAME_ENV)
            or os.environ.get(PASSWORD_ENV)
        )

    def _registry(self) -> str | None:
        from gate.credentials import REGISTRY_ENV

        return self.registry or os.environ.get(REGISTRY_ENV, "").strip() or None

    def for_images(self, images: Sequence[str]) -> RegistryOptions:
        """``sign`` and ``untrust``: explicit credentials are for the registry of the images.

        Images in several registries need ``--registry`` to say which one.
        """
        if self._registry() is not None or not self._explicit():
            return self
        hosts: set[str] = set()
        for text in images:
            try:
                reference = refs.parse_source(text).reference
            except UsageError:
                continue  # reported by the command itself, in its own words
            if reference is not None:
                hosts.add(reference.registry)
        if len(hosts) > 1:
            raise UsageError(
                f"the images are in several registries ({', '.join(sorted(hosts))}): "
                "name the one the credentials are for with --registry HOST"
            )
        return replace(self, registry=hosts.pop()) if hosts else self

    def check(self) -> None:
        """Fail before any work when explicit credentials are not bound to a registry."""
        from gate.credentials import UNBOUND, registry_host

        registry = self._registry()
        if registry is not None:
            registry_host(registry)  # a bad --registry is a usage error now, not later
        elif self._explicit():
            raise UsageError(UNBOUND)

    def client(self) -> RegistryClient:
        from gate.credentials import Credentials

        credentials = Credentials.from_environment(
            username=self.username,
            password=self.password,
            config_path=self.docker_config,
            registry=self.registry,
        )
        return RegistryClient(
            credentials=credentials,
            insecure=self.insecure,
            ca_bundle=self.ca_bundle,
            timeout=self.timeout,
            concurrency=self.concurrency,
        )


@dataclass
class Context:
    """Shared state for one run: one registry client, so one pool and one token per scope."""

    registry: RegistryOptions = field(default_factory=RegistryOptions)
    ledger_path: str | None = None
    """None means ``$SEALGATE_LEDGER``, else the file in the user's data directory."""
    state_dir: str | None = None
    """Where the ledger's witness lives; None means ``gate.ledger.state_dir()``."""
    _client: RegistryClient | None = None
    _ledger: Ledger | None = None

    @property
    def workers(self) -> int:
        """Verifications in flight at once: as many as the registry pool lets out."""
        return self.registry.concurrency

    def close(self) -> None:
        """Release the registry connections; the context can be used again afterwards."""
        if self._client is not None:
            self._client.close()
            self._client = None

    @property
    def client(self) -> RegistryClient:
        if self._client is None:
            self._client = self.registry.client()
        return self._client

    def witness(self) -> Witness:
        """The witness of the ledger this run uses, in the state directory."""
        path = Path(self.ledger_path) if self.ledger_path else default_path()
        return Witness.for_ledger(path, Path(self.state_dir) if self.state_dir else None)

    def ledger(self, *, create: bool) -> Ledger | None:
        """The ledger, held to its witness; None when it does not exist and ``create`` is False.

        Verifying never makes one; appending never starts a new one where the
        witness saw entries (RollbackError).
        """
        if self._ledger is None:
            witness = self.witness()
            if not witness.ledger.exists():
                if not create:
                    return None
                gone = witness.missing()
                if gone is not None:
                    raise gone
            self._ledger = Ledger.open(witness.ledger, witness=witness)
        return self._ledger

    def stores(self, pol: Policy | None = None) -> list[SignatureStore]:
        """Every configured store: the registry, and the ledger when there is one (or should be)."""
        found: list[SignatureStore] = [RegistryStore(self.client)]
        ledger = self.ledger(create=False)
        if ledger is not None:
            keys_ = [s.key for s in pol.signers.values() if s.key is not None] if pol else []
            writers = keys_ or None  # a keyless-only policy has no key to vouch for checkpoints
            found.append(LedgerStore(ledger, writers))
        elif (gone := self.witness().missing()) is not None:
            found.append(MissingLedgerStore(gone))
        return found


def load_policy(policy_file: str | None, public_keys: Sequence[str]) -> Policy:
    """A policy file, or the implicit "any of these keys" policy of ``verify --key``."""
    if policy_file and public_keys:
        raise UsageError("give either a policy or public keys, not both")
    if policy_file:
        return policy.load(policy_file)
    if not public_keys:
        raise UsageError(
            "give the trusted public keys with --key PUB (repeatable) "
            "or a policy with --policy FILE"
        )
    return policy.from_keys([keys.load_public_key(k) for k in public_keys])


def sign(
    ctx: Context,
    images: Sequence[str],
    key: keys.PrivateKey | Signer,
    *,
    annotations: Mapping[str, str] | None = None,
    fmt: SignatureFormat | None = None,
    recursive: bool = False,
    push: bool = False,
    before_attach: Callable[[list[tuple[str, str]]], None] | None = None,
) -> list[Signed]:
    """``before_attach`` (keyless only) sees every (image@digest, digest) once all are
    signed and logged, before the first push: keyless provenance is made there."""
    parsed = [refs.parse_source(text) for text in images]  # all valid before anything is written
    if not isinstance(key, keys.PrivateKey):
        return _sign_keyless(ctx, parsed, key, annotations, fmt, recursive, before_attach)
    fmt = fmt or SignatureFormat.LEGACY
    local = {s.text: open_local(s) for s in parsed if s.reference is None}
    out: list[Signed] = []
    for source in parsed:
        if source.reference is not None:
            out.extend(
                sign_image(
                    ctx.client,
                    source.reference,
                    key,
                    annotations=annotations,
                    fmt=fmt,
                    recursive=recursive,
                )
            )
            continue
        image = local[source.text]
        ledger = ctx.ledger(create=True)
        assert ledger is not None
        out.append(sign_local(ledger, image, key, annotations=annotations))
        if push:
            for ref in image.repo_digests:
                out.extend(sign_image(ctx.client, ref, key, annotations=annotations, fmt=fmt))
    return out


def _sign_keyless(
    ctx: Context,
    parsed: Sequence[refs.Source],
    signer: Signer,
    annotations: Mapping[str, str] | None,
    fmt: SignatureFormat | None,
    recursive: bool,
    before_attach: Callable[[list[tuple[str, str]]], None] | None,
) -> list[Signed]:
    """Every image certified and logged first, then attached: a failure attaches nothing."""
    fmt = keyless_format(signer, fmt)
    registry = []
    for source in parsed:
        if source.reference is None:
            raise UsageError(
                f"keyless signing signs registry images; push {source.text} and sign its digest"
            )
        registry.append(source.reference)
    made = [
        (
            ref,
            prepare(ctx.client, ref, signer, annotations=annotations, fmt=fmt, recursive=recursive),
        )
        for ref in registry
    ]
    if before_attach is not None:
        before_attach([(f"{ref.name}@{d}", d) for ref, pending in made for d, _ in pending])
    return [signed for ref, pending in made for signed in attach(ctx.client, ref, pending)]


def keyless_format(signer: Signer, fmt: SignatureFormat | None) -> SignatureFormat:
    """The layouts a keyless signer can write: Rekor v2 entries fit only the bundle.

    ``None`` (no ``--format`` given) is the legacy ``.sig`` form, or the bundle
    with Rekor v2; an explicit ``legacy`` with v2 is a usage error, ``both``
    writes the bundle alone and says so.
    """
    from gate.sigstore._sign import LEGACY_NEEDS_V1

    if not getattr(signer, "bundle_only", False):
        return fmt or SignatureFormat.LEGACY
    if fmt is SignatureFormat.LEGACY:
        raise UsageError(LEGACY_NEEDS_V1)
    if fmt is SignatureFormat.BOTH:
        logging.getLogger("sealgate").warning(
            "Rekor v2 gives no signed entry timestamp for the legacy .sig form: "
            "writing the Sigstore bundle (OCI referrer) only"
        )
    return SignatureFormat.BUNDLE


def revoke(ctx: Context, target: str, key: keys.PrivateKey, action: Action, reason: str) -> Revoked:
    client = (
        ctx.client
        if not target.startswith(("sha256:", "docker://", "oci:", "docker-archive:"))
        else None
    )
    ledger = ctx.ledger(create=True)
    assert ledger is not None
    return revoke_image(target, key, action, reason, ledger=ledger, client=client)


def verify(
    ctx: Context, images: Sequence[str], pol: Policy, *, attestations: Sequence[str] = ()
) -> list[Result]:
    targets = [Target(refs.parse_source(text)) for text in images]
    return _verifier(ctx, pol, attestations).run(targets)


@dataclass(frozen=True)
class GateRun:
    results: list[Result]
    skipped: list[Finding]
    """References whose image cannot be determined; each is also an ERROR result."""


def gate(
    ctx: Context,
    paths: Sequence[str],
    pol: Policy,
    *,
    stdin: TextIO | None = None,
    allow_empty: bool = False,
    options: ManifestOptions | None = None,
) -> GateRun:
    """Every distinct image reference in ``paths``, verified once, with all its locations.

    A place whose image cannot be determined (an unset variable, a template, a
    build arg with no default) is an ERROR result of its own: fail closed.
    """
    from gate import manifests

    findings = manifests.find_images(paths, stdin=stdin, options=options)
    places: dict[str, list[Location]] = {}
    for finding in findings:
        if finding.reference is not None:
            places.setdefault(str(finding.reference), []).append(finding.location)
    unknown = [f for f in findings if f.reference is None]
    if not places and not unknown and not allow_empty:
        raise UsageError(
            "no images found in " + ", ".join(paths), hint="pass --allow-empty if that is expected"
        )
    targets = [
        Target(refs.parse_source(text), tuple(sorted(set(locs)))) for text, locs in places.items()
    ]
    results = _verifier(ctx, pol).run(targets) if targets else []
    errors = {
        (f.location, f.text): Result(
            image=manifests.clip(f.text, 80),
            digest=None,
            status=Status.ERROR,
            reason=f"{manifests.CANNOT_TELL}: {f.problem}",
            sources=(f.location,),
        )
        for f in unknown
    }
    return GateRun(results + list(errors.values()), unknown)


def _verifier(ctx: Context, pol: Policy, attestations: Sequence[str] = ()) -> Verifier:
    checks = [AttestationCheck(a) for a in attestations]
    return Verifier(
        pol,
        client=ctx.client,
        stores=ctx.stores(pol),
        require_attestations=checks,
        workers=ctx.workers,
    )


def watchdog(
    ctx: Context,
    policy_file: str | None,
    public_keys: Sequence[str],
    *,
    alerts: Sequence[str] = (),
    influx: Sequence[str] = (),
    metrics_addr: str | None = None,
    options: Any = None,
) -> tuple[Any, Any]:
    """A Watchdog wired to the gate's own verifier, the sinks and their spools.

    Returns the watchdog and the metrics server (or None) for the caller to
    close. Raises ``UsageError`` (exit 2) for a policy that does not load at
    start or a state directory that cannot be written.
    """
    from gate import notify, sources
    from gate.engine import Engine
    from gate.watch import PolicyFault, Watchdog, WatchOptions, image_verifier
    from gate.watch._config import secret as read_secret

    opts: WatchOptions = options or WatchOptions()
    _check_writable(opts.state_dir)
    engine = Engine()
    engine.ping()
    webhook_secret = read_secret("SEALGATE_WEBHOOK_SECRET")
    influx_token = read_secret("SEALGATE_INFLUX_TOKEN")
    influx_password = read_secret("SEALGATE_INFLUX_PASSWORD")
    spool_dir = opts.state_dir / "spool"

    def spool(sink: notify.Sink) -> notify.Spool:
        return notify.Spool(spool_dir / sink.key, sink)

    def influx_sink(url: str) -> notify.Sink:
        if url.startswith(("http", "influx")):
            return notify.InfluxSink(url, token=influx_token, password=influx_password)
        return notify.sink_for(url)

    alert_spools = [spool(notify.sink_for(u, secret=webhook_secret)) for u in alerts]
    influx_spools = [spool(influx_sink(u)) for u in influx]
    metrics = notify.Metrics() if metrics_addr else None
    if metrics_addr:
        notify.parse_addr(metrics_addr)  # a bad address is exit 2 before anything starts

    def load() -> Policy:
        return load_policy(policy_file, public_keys)

    current: dict[str, Any] = {"policy": load(), "error": None}
    current["good"] = current["policy"]

    def policy_stamp() -> tuple[Any, ...] | None:
        """Changes whenever the file, or a key or root file it names, does (a rotated key).

        While the policy does not load, the files of the last one that did are still
        watched: a key file removed and then put back must end the fault.
        """
        if not policy_file:
            return None
        from gate.policy import stamp

        return stamp(policy_file, current["good"])

    current["stamp"] = policy_stamp()

    def freshness() -> tuple[Any, ...]:
        """Changes when cached results may be stale: a policy edit or a ledger append."""
        ledger = ctx.ledger(create=False)
        return (policy_stamp(), ledger.size() if ledger is not None else 0)

    def policy() -> Policy:
        """The policy as the file says now; ``PolicyFault`` while it does not load."""
        stamp = policy_stamp()
        if stamp != current["stamp"]:
            # Taken before reading, so a file changed while loading is read again next time
            # (a policy naming other files looks once more: no change, nothing to report).
            current["stamp"] = stamp
            try:
                current["policy"], current["error"] = load(), None
                current["good"] = current["policy"]
            except SealgateError as e:  # never fall back to the last good one silently
                current["policy"], current["error"] = None, e.message
        if current["policy"] is None:
            raise PolicyFault(
                f"{current['error']}; every container is ERROR until the policy is fixed"
            )
        pol: Policy = current["policy"]
        return pol

    def factory() -> Verifier:
        pol = policy()
        return Verifier(
            pol,
            client=ctx.client,
            stores=ctx.stores(pol),
            open_local=lambda source: sources.open_local(source, lambda: engine),
        )

    dog = Watchdog(
        engine,
        image_verifier(factory, engine),
        alerts=alert_spools,
        metrics_sinks=influx_spools,
        metrics=metrics,
        options=opts,
        freshness=freshness,
        secrets=[
            *(s for u in (*alerts, *influx) for s in notify.url_secrets(u)),
            *(s for s in (webhook_secret, influx_token, influx_password) if s),
        ],
    )
    server = None
    if metrics is not None and metrics_addr:
        from gate.watch._page import pages

        server = metrics.serve(metrics_addr, pages(dog.board))
    return dog, server


def _check_writable(directory: Path) -> None:
    """The state directory must take a file at start: later faults are survived, this one is not."""
    probe = directory / f".probe-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"sealgate")
        probe.unlink()
    except OSError as e:
        raise UsageError(
            f"cannot write the state directory {directory}: {e.strerror or e}",
            hint="give a writable --state-dir (or SEALGATE_STATE_DIR)",
        ) from e
