"""``untrust`` and ``unsupport``: signed revocations, in the ledger and next to the signatures.

cosign has no revocation; vcn had ``untrust`` and ``unsupport``. A revocation
is an in-toto Statement (predicate ``https://sealgate.dev/revocation/v1``)
signed by the revoker. It goes to the ledger, and for registry images also
into the image's ``.sig`` manifest as a DSSE layer, so every verifier that
reads signatures sees it in the same request. cosign and other verifiers skip
that layer (its media type is not simple-signing); Sealgate honours it when
the revoker is a signer the policy trusts for the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from gate import provenance, refs, signatures
from gate.errors import UsageError
from gate.keys import PrivateKey
from gate.ledger import Ledger, SignedStatement
from gate.registry import RegistryClient
from gate.sign import attach_layer
from gate.sources import open_local

Action = Literal["untrust", "unsupport"]


@dataclass(frozen=True)
class Revoked:
    target: str
    digests: tuple[str, ...]
    written: tuple[str, ...]


def revoke(
    target: str,
    key: PrivateKey,
    action: Action,
    reason: str,
    *,
    ledger: Ledger,
    client: RegistryClient | None,
    now: datetime | None = None,
) -> Revoked:
    """Revoke every digest ``target`` names: a digest, a registry image, or a local source."""
    if not reason.strip():
        raise UsageError(f"say why with --reason; a {action} without a reason helps nobody later")
    moment = now or datetime.now(UTC)
    written: list[str] = []
    registry_digest: tuple[RegistryClient, refs.Reference, str] | None = None
    if target.startswith("sha256:"):
        name, digests = target, [refs.parse_digest(target)]
    else:
        source = refs.parse_source(target)
        if source.reference is not None:
            if client is None:
                raise UsageError(f"revoking {target} needs registry access")
            digest = client.get_manifest(
                source.reference.repository, source.reference.identifier
            ).digest
            name, digests = source.reference.name, [digest]
            registry_digest = (client, source.reference, digest)
        else:
            image = open_local(source)
            name, digests = image.text, sorted(image.digests)

    statements = []
    envelopes = {}
    for digest in digests:
        statement = provenance.revocation(name, digest, action, reason, time=moment)
        payload = statement.to_json()
        statements.append(
            SignedStatement(
                action,
                digest,
                name,
                signatures.INTOTO_PAYLOAD_TYPE,
                payload,
                key.sign(payload),
                key.public_key,
            )
        )
        envelopes[digest] = provenance.sign_statement(statement, key)
    if registry_digest is not None:
        registry, ref, digest = registry_digest
        written.append(
            attach_layer(
                registry,
                ref.repository,
                digest,
                envelopes[digest].to_json(),
                signatures.DSSE_MEDIA_TYPE,
                {"predicateType": provenance.REVOCATION_V1},
                "sig",
            )
        )
    entries = ledger.append_many(statements, writer=key)
    written.extend(f"{ledger.path} entry {e.index}" for e in entries)
    return Revoked(target, tuple(digests), tuple(written))
