"""``sealgate admission serve|manifests``: the parser and thin handlers for the webhook.

Kept apart from ``gate.cli`` so the main parser stays small; everything heavy
is imported when a handler runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gate import commands
    from gate.admission._pull import PullSecrets
    from gate.credentials import Credentials
    from gate.policy import Policy
    from gate.registry import RegistryClient

log = logging.getLogger("gate.admission")


def add_parser(
    sub: argparse._SubParsersAction[Any],
    add_registry_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    admission = sub.add_parser(
        "admission", help="the Kubernetes admission webhook: the policy, at pod admission"
    ).add_subparsers(dest="admission_command", required=True)
    serve_p = admission.add_parser("serve", help="answer AdmissionReview requests over HTTPS")
    serve_p.add_argument("--policy", metavar="FILE", required=True, help="trust policy (reloaded)")
    serve_p.add_argument("--tls-cert", metavar="CRT", required=True, help="PEM certificate chain")
    serve_p.add_argument("--tls-key", metavar="KEY", required=True, help="PEM private key")
    serve_p.add_argument(
        "--client-ca",
        metavar="CRT",
        help="answer /validate and /mutate only for clients with a certificate this CA signed "
        "(the API server's, from an AdmissionConfiguration kubeConfigFile); recommended with "
        "--kubeconfig/--in-cluster, so nobody else can use the pull secrets through the webhook",
    )
    serve_p.add_argument("--addr", default="0.0.0.0:8443", help="HOST:PORT (default: %(default)s)")
    serve_p.add_argument(
        "--mode",
        choices=("enforce", "audit"),
        default="enforce",
        help="enforce denies; audit allows and warns (default: %(default)s)",
    )
    serve_p.add_argument(
        "--mutate", action="store_true", help="/mutate pins each tag to the digest verified"
    )
    serve_p.add_argument("--metrics-addr", metavar="ADDR", help="also serve /metrics over HTTP")
    serve_p.add_argument(
        "--docker-config",
        metavar="FILE",
        help="registry credentials: a docker config.json, e.g. a mounted pull secret",
    )
    kube = serve_p.add_mutually_exclusive_group()
    kube.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="read pods' imagePullSecrets through the Kubernetes API of this kubeconfig",
    )
    kube.add_argument(
        "--in-cluster",
        action="store_true",
        help="read pods' imagePullSecrets with the pod's service-account token",
    )
    serve_p.add_argument(
        "--kube-context", metavar="NAME", help="the kubeconfig context (default: current)"
    )
    serve_p.add_argument(
        "--cache-ttl",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long a passing verdict is kept (default: %(default)s)",
    )
    serve_p.add_argument(
        "--failure-ttl",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long a failing verdict is kept; ERROR never is (default: %(default)s)",
    )
    serve_p.add_argument(
        "--verify-timeout",
        type=float,
        default=8.0,
        metavar="SECONDS",
        help="answer ERROR (deny) when a verification takes longer; keep it under the "
        "webhook's timeoutSeconds (default: %(default)s)",
    )
    serve_p.add_argument(
        "--drain-seconds",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="on SIGTERM, fail /readyz but keep answering this long (default: %(default)s)",
    )
    add_registry_options(serve_p)
    serve_p.set_defaults(handler=serve)
    manifests_p = admission.add_parser("manifests", help="print the objects that install it")
    manifests_p.add_argument("--namespace", default="sealgate", help="(default: %(default)s)")
    manifests_p.add_argument(
        "--ca-bundle",
        metavar="FILE",
        help="PEM CA of the webhook's certificate (else cert-manager)",
    )
    manifests_p.add_argument("--policy", metavar="FILE", help="policy for the ConfigMap")
    manifests_p.add_argument("--image", help="the sealgate image, pinned by digest")
    manifests_p.add_argument(
        "--mode", choices=("enforce", "audit"), default="audit", help="(default: %(default)s)"
    )
    manifests_p.add_argument(
        "--no-mutate", action="store_true", help="leave out the mutating webhook"
    )
    manifests_p.add_argument(
        "--pull-secrets",
        action="store_true",
        help="read pods' imagePullSecrets: mounts a service-account token and grants "
        "'get' on secrets and serviceaccounts cluster-wide",
    )
    manifests_p.add_argument(
        "--exclude-namespace",
        action="append",
        metavar="NS",
        help="namespaces the API server never asks about (default: kube-system)",
    )
    manifests_p.set_defaults(handler=manifests)


def serve(args: argparse.Namespace) -> int:
    import signal
    import threading
    import time

    from gate import _cli_handlers as handlers
    from gate import admission
    from gate.errors import UsageError
    from gate.verify import RegistryStore, Verifier

    for name in ("cache_ttl", "failure_ttl", "drain_seconds", "verify_timeout"):
        if not 0 <= getattr(args, name) <= 86400:
            raise UsageError(f"--{name.replace('_', '-')} must be from 0 to 86400 seconds")
    ctx = handlers._context(args)
    if args.docker_config:
        if not Path(args.docker_config).exists():
            log.warning("%s does not exist: registries are read anonymously", args.docker_config)
        ctx.registry = dataclasses.replace(ctx.registry, docker_config=args.docker_config)
    policies = admission.PolicySource(args.policy)
    tls = admission.TLSFiles(args.tls_cert, args.tls_key, client_ca=args.client_ca)
    ctx.stores(policies.current())  # open the client and ledger once, before threads race to
    pull_secrets = _pull_secrets(args, ctx)

    def freshness() -> int:
        ledger = ctx.ledger(create=False)
        return ledger.size() if ledger is not None else 0

    def verifier(pol: Policy, client: RegistryClient | None) -> Verifier:
        stores = ctx.stores(pol)
        if client is not None:  # a pod's pull secrets: its own client for the registry store
            stores = [RegistryStore(client), *stores[1:]]
        return Verifier(pol, client=client or ctx.client, stores=stores, workers=ctx.workers)

    admitter = admission.Admitter(
        policies,
        verifier,
        admission.VerdictCache(
            trusted_ttl=args.cache_ttl, failure_ttl=args.failure_ttl, wait=args.verify_timeout
        ),
        mode=admission.Mode(args.mode),
        mutate=args.mutate,
        freshness=freshness,
        pull_secrets=pull_secrets,
    )
    metrics = admission.AdmissionMetrics()
    server = admission.AdmissionServer(admitter, tls, args.addr, metrics)
    metrics_server = metrics.serve(args.metrics_addr) if args.metrics_addr else None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with server.start():
        log.warning("admission webhook (%s) on https://%s", args.mode, args.addr)
        try:
            stop.wait()
            # The API server keeps calling this replica until the endpoint is gone; with
            # failurePolicy Fail, a refused connection would be a refused pod.
            server.draining = True
            log.warning("draining for %g s before exiting", args.drain_seconds)
            time.sleep(args.drain_seconds)
        finally:
            if metrics_server is not None:
                metrics_server.close()
            if pull_secrets is not None:
                pull_secrets.close()
            ctx.close()
    return 0


def _pull_secrets(args: argparse.Namespace, ctx: commands.Context) -> PullSecrets | None:
    """``--kubeconfig`` / ``--in-cluster``: pods' imagePullSecrets through the API, else None."""
    from gate.admission._kube import KubeAPI
    from gate.admission._pull import PullSecrets
    from gate.errors import UsageError
    from gate.registry import RegistryClient

    if args.kube_context and not args.kubeconfig:
        raise UsageError("--kube-context needs --kubeconfig FILE")
    if args.in_cluster:
        api = KubeAPI.in_cluster()
    elif args.kubeconfig:
        api = KubeAPI.from_kubeconfig(args.kubeconfig, args.kube_context)
    else:
        return None
    options = ctx.registry

    def client(credentials: Credentials) -> RegistryClient:
        return RegistryClient(
            credentials=credentials,
            insecure=options.insecure,
            ca_bundle=options.ca_bundle,
            timeout=options.timeout,
            concurrency=options.concurrency,
        )

    base = ctx.client.credentials
    log.warning("pull secrets: pods' imagePullSecrets are read from %s", api.server)
    return PullSecrets(api, base, client)


def manifests(args: argparse.Namespace) -> int:
    from gate import admission, policy
    from gate.admission._deploy import PLACEHOLDER_IMAGE
    from gate.errors import UsageError

    def read(path: str, what: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except OSError as e:
            raise UsageError(f"cannot read the {what} {path}: {e.strerror}") from None

    text = None
    if args.policy:
        policy.load(args.policy)  # a policy that does not load would crash every replica
        text = read(args.policy, "policy").decode()
    sys.stdout.write(
        admission.render_manifests(
            namespace=args.namespace,
            policy=text,
            ca_bundle=read(args.ca_bundle, "CA bundle") if args.ca_bundle else None,
            mode=args.mode,
            mutate=not args.no_mutate,
            exclude=args.exclude_namespace or ("kube-system",),
            image=args.image or PLACEHOLDER_IMAGE,
            pull_secrets=args.pull_secrets,
        )
    )
    return 0
