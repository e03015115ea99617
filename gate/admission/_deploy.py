"""The Kubernetes objects that install the webhook (``sealgate admission manifests``).

One template, ``templates/manifests.yaml.j2``, renders the objects; the files
under ``deploy/kubernetes/`` are its output and the Helm chart under
``deploy/helm/`` renders the same objects (the tests compare them).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from importlib import resources

import jinja2

from gate.errors import UsageError

NAME = "sealgate-admission"
PLACEHOLDER_IMAGE = "ghcr.io/your-org/sealgate@sha256:" + "0" * 64
"""Replace with the digest of the sealgate image you verified; a tag would let a push choose."""
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def render_manifests(
    *,
    namespace: str,
    policy: str | None = None,
    ca_bundle: bytes | None = None,
    image: str = PLACEHOLDER_IMAGE,
    mode: str = "audit",
    mutate: bool = True,
    replicas: int = 2,
    exclude: Sequence[str] = ("kube-system",),
    pull_secrets: bool = False,
) -> str:
    """A multi-document YAML stream; ``ca_bundle`` is PEM, else cert-manager injects the CA.

    ``policy`` is the policy file's text (keys inline); None ships the example
    policy, which verifies nothing until its key is replaced.

    ``pull_secrets`` mounts a service-account token, passes ``--in-cluster`` and adds a
    ClusterRole (and its binding) allowing ``get`` on secrets and serviceaccounts, so the
    webhook can read pods' ``imagePullSecrets``; off, the webhook has no token at all.

    Raises UsageError for a namespace that is not a DNS label or a CA bundle that is not PEM.
    """
    for ns in (namespace, *exclude):
        if not _DNS_LABEL.fullmatch(ns):
            raise UsageError(f"'{ns}' is not a namespace name (a lowercase DNS label)")
    encoded = None
    if ca_bundle is not None:
        if b"-----BEGIN CERTIFICATE-----" not in ca_bundle:
            raise UsageError("the CA bundle is not PEM: it has no BEGIN CERTIFICATE line")
        encoded = base64.b64encode(ca_bundle).decode()
    files = resources.files("gate.admission").joinpath("templates")
    text = files.joinpath("manifests.yaml.j2").read_text()
    if policy is None:
        policy = files.joinpath("policy.example.yaml").read_text()
    template = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    ).from_string(text)
    webhooks = [
        {"kind": "MutatingWebhookConfiguration", "short": "mutate"},
        {"kind": "ValidatingWebhookConfiguration", "short": "validate"},
    ]
    return template.render(
        name=NAME,
        namespace=namespace,
        policy=policy.rstrip("\n"),
        ca_bundle=encoded,
        image=image,
        mode=mode,
        mutate=mutate,
        replicas=replicas,
        pull_secrets=pull_secrets,
        excluded=list(dict.fromkeys([namespace, *exclude])),
        webhooks=webhooks if mutate else webhooks[1:],
    )
