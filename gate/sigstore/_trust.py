"""Sigstore trusted roots: the CAs, logs and timestamp authorities we trust, and when.

A root file is a ``trusted_root.json`` (protobuf-specs ``TrustedRoot`` in
protojson) or the JSON Lines ``gh attestation trusted-root`` prints, one root
per line. Several roots stay separate *instances*: a certificate is checked
against the instance whose CA issued it, as ``gh`` does, so a public-good
timestamp never vouches for a GitHub certificate or the other way round.

NOTE: sigstore/protobuf-specs protos/sigstore_trustroot.proto (TrustedRoot,
TransparencyLogInstance, CertificateAuthority, TimeRange).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_der_public_key

from gate.errors import KeyLoadError, UsageError
from gate.keys import PublicKey

MEDIA_TYPE_PREFIX = "application/vnd.dev.sigstore.trustedroot"
_FRACTION = re.compile(r"\.(\d+)")
EMBEDDED = {
    "public-good": "public-good.json",
    "staging": "staging.json",
}
"""Roots shipped in the package (snapshots of Sigstore's TUF targets, see SOURCE)."""
EMBEDDED_SOURCE = "sigstore-python@27db13db157e, sigstore/_store/<tuf url>/trusted_root.json"


@dataclass(frozen=True)
class Validity:
    """A closed time interval; ``end`` None means still valid."""

    start: datetime
    end: datetime | None

    def contains(self, when: datetime) -> bool:
        """Inclusive at both ends (protobuf-specs: TimeRange is a closed interval)."""
        return self.start <= when and (self.end is None or when <= self.end)


@dataclass(frozen=True)
class LogKey:
    """A transparency log (Rekor) or certificate-transparency log and its key."""

    base_url: str
    log_id: bytes
    """``logId.keyId``: SHA-256 of the DER key for Rekor v1 and CT, the note key ID for v2."""
    key: PublicKey
    validity: Validity

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or self.base_url


@dataclass(frozen=True, eq=False)
class Authority:
    """A certificate or timestamp authority: its chain (issuing cert first, root last)."""

    uri: str
    chain: tuple[x509.Certificate, ...]
    validity: Validity


@dataclass(frozen=True, eq=False)
class RootInstance:
    """One trusted root: the material of one Sigstore deployment.

    Compared and hashed by identity: it keys the per-certificate cache, and
    hashing every certificate and key of a root per signature would cost more
    than the checks the cache saves.
    """

    name: str
    cas: tuple[Authority, ...]
    tlogs: tuple[LogKey, ...]
    ctlogs: tuple[LogKey, ...]
    tsas: tuple[Authority, ...]

    def tlog(self, log_id: bytes) -> LogKey | None:
        return next((t for t in self.tlogs if t.log_id == log_id), None)

    @property
    def newest(self) -> datetime:
        """The start of the newest key or CA: how current this snapshot is."""
        starts = [a.validity.start for a in (*self.cas, *self.tsas)]
        starts += [k.validity.start for k in (*self.tlogs, *self.ctlogs)]
        return max(starts, default=datetime.fromtimestamp(0, UTC))


@dataclass(frozen=True)
class TrustedRoot:
    """Every root instance we trust; see the module docstring for how one is chosen."""

    instances: tuple[RootInstance, ...]

    @classmethod
    def load(cls, path: str | Path) -> TrustedRoot:
        """Read a trusted_root.json or gh's JSONL; raises UsageError when it is neither."""
        where = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read the trusted root {where}: {e}") from e
        return cls.from_text(text, where)

    @classmethod
    def from_text(cls, text: str, where: str) -> TrustedRoot:
        stripped = text.strip()
        try:
            docs = [json.loads(stripped)]
        except json.JSONDecodeError:
            try:  # gh attestation trusted-root: one root per line
                docs = [json.loads(line) for line in stripped.splitlines() if line.strip()]
            except json.JSONDecodeError as e:
                raise UsageError(f"{where} is not a trusted root: not JSON ({e.msg})") from e
        if not docs:
            raise UsageError(f"{where} is not a trusted root: it is empty")
        name = Path(where).name
        return cls(
            tuple(
                _instance(d, f"{name}#{i + 1}" if len(docs) > 1 else name, where)
                for i, d in enumerate(docs)
            )
        )

    @classmethod
    def embedded(cls, name: str = "public-good") -> TrustedRoot:
        """A root shipped with Sealgate (``public-good`` or ``staging``)."""
        ref = resources.files("gate.sigstore").joinpath("_roots", EMBEDDED[name])
        return cls.from_text(ref.read_text(encoding="utf-8"), name)

    def merged(self, *others: TrustedRoot) -> TrustedRoot:
        """All instances of this root and ``others`` (a policy's ``trust.roots`` list)."""
        return TrustedRoot(self.instances + tuple(i for o in others for i in o.instances))

    def for_certificate(self, leaf: x509.Certificate) -> list[tuple[RootInstance, Authority]]:
        """The CAs whose issuing certificate has the leaf's issuer name, instance by instance."""
        return [
            (inst, ca)
            for inst in self.instances
            for ca in inst.cas
            if ca.chain and ca.chain[0].subject == leaf.issuer
        ]

    def for_log(self, log_id: bytes) -> RootInstance | None:
        return next((i for i in self.instances if i.tlog(log_id) is not None), None)


def _instance(doc: Any, name: str, where: str) -> RootInstance:
    def bad(why: str) -> UsageError:
        return UsageError(f"{where} is not a trusted root: {why}")

    if not isinstance(doc, dict) or not str(doc.get("mediaType", "")).startswith(MEDIA_TYPE_PREFIX):
        raise bad(f"its mediaType is not {MEDIA_TYPE_PREFIX}+json")
    try:
        return RootInstance(
            name=name,
            cas=tuple(_authority(a, bad) for a in doc.get("certificateAuthorities") or []),
            tlogs=tuple(k for k in (_log(t, bad) for t in doc.get("tlogs") or []) if k),
            ctlogs=tuple(k for k in (_log(t, bad) for t in doc.get("ctlogs") or []) if k),
            tsas=tuple(_authority(a, bad) for a in doc.get("timestampAuthorities") or []),
        )
    except (KeyError, TypeError, AttributeError, ValueError, binascii.Error) as e:
        if isinstance(e, UsageError):
            raise
        raise bad(f"a field is missing or malformed ({type(e).__name__}: {e})") from e


def _log(doc: dict[str, Any], bad: Any) -> LogKey | None:
    pub = doc["publicKey"]
    raw = base64.b64decode(pub["rawBytes"], validate=True)
    validity = _validity(pub.get("validFor"), bad)
    try:
        key = PublicKey(load_der_public_key(raw))  # type: ignore[arg-type]
    except (ValueError, KeyLoadError):
        return None  # NOTE: a key type we cannot use cannot vouch for anything; skip it
    log_id = base64.b64decode(doc["logId"]["keyId"], validate=True)
    return LogKey(str(doc.get("baseUrl", "")), log_id, key, validity)


def _authority(doc: dict[str, Any], bad: Any) -> Authority:
    certs = doc["certChain"]["certificates"]
    chain = tuple(
        x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"], validate=True))
        for c in certs
    )
    if not chain:
        raise bad("a certificate authority has an empty chain")
    return Authority(str(doc.get("uri", "")), chain, _validity(doc.get("validFor"), bad))


def _validity(doc: Any, bad: Any) -> Validity:
    if doc is None:
        return Validity(datetime.fromtimestamp(0, UTC), None)
    if not isinstance(doc, dict) or "start" not in doc:
        raise bad("a validFor period has no start")
    end = doc.get("end")
    return Validity(_time(doc["start"], bad), _time(end, bad) if end else None)


def _time(text: Any, bad: Any) -> datetime:
    """RFC 3339 with up to nanoseconds, as protojson writes Timestamps."""
    if not isinstance(text, str):
        raise bad(f"{text!r} is not a timestamp")
    fixed = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text)
    try:
        when = datetime.fromisoformat(fixed.replace("Z", "+00:00"))
    except ValueError:
        raise bad(f"{text!r} is not an RFC 3339 timestamp") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
