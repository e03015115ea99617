"""The Kubernetes admission webhook: the gate's policy, asked before a pod exists.

``_review``   AdmissionReview ``admission.k8s.io/v1``: parse a request, build a response (pure)
``gate.verdicts`` (shared with the watchdog) keeps verdicts by (reference, policy version)
``_admit``    the decision for one request: scope, images, verdicts, message, JSON Patch
``_kube``     a small Kubernetes API client (kubeconfig or in-cluster) for two GETs
``_pull``     a pod's imagePullSecrets as that pod's registry credentials
``_metrics``  admissions by verdict, latency, cache hits (Prometheus)
``_http``     strict HTTP/1.1 framing without I/O: requests from bytes, refusals as statuses
``_server``   HTTPS on an asyncio loop (cached answers inline, waits in a pool), TLS reloaded
``_deploy``   the Kubernetes objects that install it (``sealgate admission manifests``)
"""

from __future__ import annotations

from gate.admission._admit import Admitter, Mode, PolicySource
from gate.admission._deploy import render_manifests
from gate.admission._metrics import AdmissionMetrics
from gate.admission._server import AdmissionServer, TLSFiles
from gate.verdicts import VerdictCache

__all__ = [
    "AdmissionMetrics",
    "AdmissionServer",
    "Admitter",
    "Mode",
    "PolicySource",
    "TLSFiles",
    "VerdictCache",
    "render_manifests",
]
