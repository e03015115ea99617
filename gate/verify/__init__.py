"""Verification: subject -> precheck -> gather -> decide, one path for every source.

``_subjects``  what is verified: one seam per source scheme (registry, docker://, oci:, archive)
``_precheck``  rules that need no signature: registries, a matching rule, pinning (pure)
``_stores``    where evidence lives: the registry (.sig, .att, referrers) and the ledger
``_pipeline``  the Verifier: reads everything, concurrently, deduplicated, then decides
``_decide``    the decision in named steps (pure; imports nothing that does I/O)
``_evidence``  the values stores produce (pure)

The public names are loaded lazily, so importing a pure submodule such as
``gate.verify._decide`` does not pull in the registry client or the ledger.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gate.verify._decide import Facts, decide
    from gate.verify._evidence import Claim, ClaimKind, Evidence, dsse_claim
    from gate.verify._pipeline import Target, Verifier
    from gate.verify._precheck import precheck
    from gate.verify._stores import LedgerStore, RegistryStore, SignatureStore

_WHERE = {
    "Facts": "_decide",
    "decide": "_decide",
    "Claim": "_evidence",
    "ClaimKind": "_evidence",
    "Evidence": "_evidence",
    "dsse_claim": "_evidence",
    "Target": "_pipeline",
    "Verifier": "_pipeline",
    "precheck": "_precheck",
    "LedgerStore": "_stores",
    "RegistryStore": "_stores",
    "SignatureStore": "_stores",
}

__all__ = [
    "Claim",
    "ClaimKind",
    "Evidence",
    "Facts",
    "LedgerStore",
    "RegistryStore",
    "SignatureStore",
    "Target",
    "Verifier",
    "decide",
    "dsse_claim",
    "precheck",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'gate.verify' has no attribute '{name}'")
    return getattr(import_module(f"gate.verify.{module}"), name)
