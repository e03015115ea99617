"""Keyless verification: Fulcio certificates, Rekor entries, RFC 3161 timestamps, bundles.

Everything is offline against trusted roots the user controls (the public-good
root ships embedded, with its date). Every failed check raises
``KeylessError`` (exit 1) with one sentence naming the check; bad
configuration raises ``gate.errors.UsageError`` (exit 2).

Public API::

    roots = TrustedRoot.load("trusted_root.json")      # or gh's JSONL, or .embedded()
    who = Identity(issuer=..., subject=... | subject_regex=..., claims={...})
    verify_bundle(bundle_bytes, b"artifact" | "sha256:<hex>", identity=who, key=None,
                  roots=roots, require_tlog=False) -> Verified
    verify_cosign_keyless(payload, sig, cert_pem, chain_pem, rekor_bundle_json,
                          identity=who, roots=roots, rfc3161_timestamp_json=None,
                          require_tlog=False) -> Verified
    verify_rekor_set(payload, sig, key, rekor_bundle_json, roots=roots) -> Verified

Keyless signing (issue 12)::

    signer = keyless_signer(token=None, fulcio_url=..., rekor_url=..., signing_config=None,
                            trusted_roots=[...], env=os.environ)   # certificate fetched here
    gate.sign.sign_image(client, ref, signer, fmt=...)             # Rekor entry per signature

Load roots once and reuse the object: the chain and SCT checks are cached per
(certificate, roots), so 200 images signed by one workflow certificate cost
one chain check.
"""

from gate.sigstore._blob import read_artifact, verify_blob
from gate.sigstore._bundle import split_bundles
from gate.sigstore._cosign import verify_cosign_keyless, verify_rekor_set
from gate.sigstore._errors import KeylessError
from gate.sigstore._fulcio import CLAIMS, CertificateIdentity, identity_of
from gate.sigstore._identity import Identity
from gate.sigstore._keyless import describe_keyless, keyless_signer
from gate.sigstore._sign import KeylessSigner
from gate.sigstore._store import describe as describe_roots
from gate.sigstore._store import import_root, trust_dir
from gate.sigstore._store import resolve as resolve_roots
from gate.sigstore._trust import EMBEDDED_SOURCE, RootInstance, TrustedRoot
from gate.sigstore._verified import Verified
from gate.sigstore._verify import verify_bundle

__all__ = [
    "CLAIMS",
    "EMBEDDED_SOURCE",
    "CertificateIdentity",
    "Identity",
    "KeylessError",
    "KeylessSigner",
    "RootInstance",
    "TrustedRoot",
    "Verified",
    "describe_keyless",
    "describe_roots",
    "identity_of",
    "import_root",
    "keyless_signer",
    "read_artifact",
    "resolve_roots",
    "split_bundles",
    "trust_dir",
    "verify_blob",
    "verify_bundle",
    "verify_cosign_keyless",
    "verify_rekor_set",
]
