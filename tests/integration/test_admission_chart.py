"""The Helm chart renders the same objects as ``sealgate admission manifests``, with a real helm.

helm is a Go peer (scripts/go-peers); the comparison is object by object after
parsing, so comments and key order do not matter, every value does.
"""

from __future__ import annotations

import base64
import subprocess

import pytest
import yaml

from gate.admission import render_manifests

from ..conftest import ROOT
from .peers import peer

pytestmark = pytest.mark.integration
CHART = ROOT / "deploy" / "helm" / "sealgate-admission"
BUNDLE = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _objects(text: str) -> dict[str, object]:
    return {d["kind"]: d for d in yaml.safe_load_all(text) if d}


@pytest.mark.parametrize(
    ("mutate", "ca", "pull"), [(True, None, False), (False, BUNDLE, False), (True, None, True)]
)
def test_the_chart_renders_the_same_objects(mutate: bool, ca: bytes | None, pull: bool) -> None:
    helm = peer("helm")
    command = [str(helm.path), "template", "sealgate-admission", str(CHART),
               "--namespace", "team-sec", "--set", "createNamespace=true",
               "--set", f"mutate={str(mutate).lower()}", "--set", "mode=enforce",
               "--set", f"pullSecrets={str(pull).lower()}"]  # fmt: skip
    if ca is not None:
        command += ["--set", f"caBundle={base64.b64encode(ca).decode()}"]
    rendered = subprocess.run(
        command, check=True, capture_output=True, text=True, timeout=60
    ).stdout
    expected = render_manifests(
        namespace="team-sec", mode="enforce", mutate=mutate, ca_bundle=ca, pull_secrets=pull
    )
    assert _objects(rendered) == _objects(expected)
    assert len(_objects(rendered)) == (8 if mutate else 7) + (2 if pull else 0)


def test_the_chart_defaults_render_the_shipped_objects() -> None:
    rendered = subprocess.run(
        [str(peer("helm").path), "template", "sealgate-admission", str(CHART),
         "--namespace", "sealgate", "--set", "createNamespace=true"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    shipped = (ROOT / "deploy" / "kubernetes" / "sealgate-admission.yaml").read_text()
    assert _objects(rendered) == _objects(shipped)
