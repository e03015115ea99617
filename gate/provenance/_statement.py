"""in-toto statements: their types and subjects, parsing, signing and writing them (pure).

Statements follow in-toto/attestation ``spec/v1`` (FORMATS.md §6) and are
signed as DSSE envelopes (``gate.dsse``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate import dsse, strict_json
from gate.dsse import Envelope
from gate.errors import InvalidReferenceError, PolicyFailureError, UsageError
from gate.refs import SourceKind, parse_digest, parse_source

if TYPE_CHECKING:
    from gate.keys import PrivateKey, PublicKey

STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
VSA_V1 = "https://slsa.dev/verification_summary/v1"
COSIGN_SIGN_V1 = "https://sigstore.dev/cosign/sign/v1"
COSIGN_CUSTOM_V1 = "https://cosign.sigstore.dev/attestation/v1"
REVOCATION_V1 = "https://sealgate.dev/revocation/v1"

# NOTE: cosign `cmd/cosign/cli/options/predicate.go` names these; its `slsaprovenance` means
# SLSA v0.2 (FORMATS.md §2). Sealgate writes v1 for `slsaprovenance` and accepts both when
# verifying (see accepted_predicate_types).
PREDICATE_ALIASES: Mapping[str, str] = {
    "slsaprovenance": SLSA_PROVENANCE_V1,
    "slsaprovenance1": SLSA_PROVENANCE_V1,
    "slsaprovenance02": SLSA_PROVENANCE_V02,
    "vsa": VSA_V1,
    "custom": COSIGN_CUSTOM_V1,
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "link": "https://in-toto.io/Link/v1",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "revocation": REVOCATION_V1,
}

# NOTE: in-toto `spec/v1/envelope.md`: the DSSE payloadType of a statement.
_INTOTO_PAYLOAD_TYPE = re.compile(r"application/vnd\.in-toto(?:\.[^+/\s]+)?\+json")
# NOTE: in-toto `spec/v1/digest_set.md`: hex lengths of the common algorithms.
_HEX_LENGTHS = {
    "sha224": (56,), "sha256": (64,), "sha384": (96,), "sha512": (128,), "sha1": (40,),
    "md5": (32,), "gitCommit": (40, 64), "gitTree": (40, 64), "gitBlob": (40, 64),
    "gitTag": (40, 64),
}  # fmt: skip
_HEX = re.compile(r"[0-9a-fA-F]+")


class StatementError(PolicyFailureError):
    """Bytes that should be an in-toto statement are not one (exit 1: untrusted input)."""


@dataclass(frozen=True)
class Subject:
    """What a statement is about; matched purely by digest."""

    name: str
    """Image name without tag, file name, or ``""`` when meaningless."""
    digest: dict[str, str]
    """Algorithm to hex, e.g. ``{"sha256": "…"}``."""

    @classmethod
    def for_image(cls, image: str, digest: str) -> Subject:
        """The subject for an image: its name without tag or digest, and the manifest digest."""
        # NOTE: FORMATS.md §6: name = image reference without tag (GitHub/cosign practice).
        algorithm, _, hex_digest = parse_digest(digest).partition(":")
        return cls(_image_name(image), {algorithm: hex_digest})


@dataclass(frozen=True)
class Statement:
    """An in-toto statement and, when parsed, the exact bytes it came from."""

    subjects: tuple[Subject, ...]
    predicate_type: str
    predicate: Mapping[str, Any]
    raw: bytes | None = field(default=None, compare=False, repr=False)
    """The bytes this was parsed from (the signed payload); None when built here."""
    statement_type: str = STATEMENT_V1

    def to_json(self) -> bytes:
        """Compact JSON in spec field order; sign these exact bytes."""
        document = {
            "_type": self.statement_type,
            "subject": [
                {"name": s.name, "digest": dict(s.digest)} if s.name else {"digest": dict(s.digest)}
                for s in self.subjects
            ],
            "predicateType": self.predicate_type,
            "predicate": self.predicate,
        }
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def parse(cls, data: bytes, *, source: str = "the payload") -> Statement:
        """Parse a v1 or v0.1 statement, ignoring unknown fields; raises StatementError."""

        def fail(why: str) -> StatementError:
            return StatementError(f"{source} is not an in-toto statement: {why}")

        try:
            document = strict_json.loads(data, "it", StatementError)
        except StatementError as e:
            raise fail(e.message) from e
        if not isinstance(document, dict):
            raise fail("it is not a JSON object")
        kind = document.get("_type")
        # NOTE: FORMATS.md §2/§6: cosign still writes v0.1 statements; the shape is the same.
        if kind not in (STATEMENT_V1, STATEMENT_V01):
            raise fail(f"'_type' is {kind!r}, not {STATEMENT_V1}")
        predicate_type = document.get("predicateType")
        if not isinstance(predicate_type, str) or not predicate_type:
            raise fail("'predicateType' is missing or not a string")
        predicate = document.get("predicate")
        if predicate is None:
            predicate = {}  # NOTE: statement.md: unset predicate is equivalent to empty.
        if not isinstance(predicate, dict):
            raise fail("'predicate' is not a JSON object")
        entries = document.get("subject")
        if not isinstance(entries, list) or not entries:
            raise fail("'subject' is missing or empty")
        subjects = tuple(_parse_subject(entry, index, fail) for index, entry in enumerate(entries))
        return cls(subjects, predicate_type, predicate, bytes(data), kind)

    def covers(self, digest: str) -> bool:
        """Whether any subject has ``digest`` (``sha256:<hex>``); names do not matter."""
        algorithm, _, hex_digest = digest.partition(":")
        if not hex_digest:
            return False
        return any(s.digest.get(algorithm, "").lower() == hex_digest.lower() for s in self.subjects)


def _parse_subject(entry: Any, index: int, fail: Callable[[str], StatementError]) -> Subject:
    if not isinstance(entry, dict):
        raise fail(f"subject {index} is not a JSON object")
    name = entry.get("name")
    name = "" if name is None else name  # NOTE: statement.md: name is optional.
    if not isinstance(name, str):
        raise fail(f"subject {index} has a 'name' that is not a string")
    digests = entry.get("digest")
    if not isinstance(digests, dict) or not digests:
        raise fail(f"subject {index} has no 'digest'")
    for algorithm, value in digests.items():
        if not isinstance(value, str) or not value:
            raise fail(f"subject {index} digest '{algorithm}' is not a non-empty string")
        lengths = _HEX_LENGTHS.get(algorithm)
        if lengths and (len(value) not in lengths or not _HEX.fullmatch(value)):
            raise fail(f"subject {index} digest '{algorithm}' is not {lengths[0]} hex digits")
    return Subject(name, dict(digests))


def sign_statement(statement: Statement, key: PrivateKey) -> Envelope:
    """Serialise ``statement`` once and sign those bytes as an in-toto DSSE envelope."""
    return dsse.sign(statement.to_json(), dsse.PAYLOAD_TYPE_INTOTO, key)


def verify_statement(
    envelope: Envelope, keys: Sequence[PublicKey], threshold: int = 1
) -> tuple[Statement, list[PublicKey]]:
    """Check the signatures, then the payload type, then parse the verified bytes.

    Raises DSSEError (signatures) or StatementError (anything else).
    """
    signers = dsse.verify(envelope, keys, threshold)
    # NOTE: cosign pkg/cosign/verify.go rejects other payload types (FORMATS.md §2).
    if not _INTOTO_PAYLOAD_TYPE.fullmatch(envelope.payload_type):
        raise StatementError(
            f"the envelope's payload type is {envelope.payload_type!r}, "
            f"not {dsse.PAYLOAD_TYPE_INTOTO}"
        )
    return Statement.parse(envelope.payload), signers


def write_jsonl(path: str | os.PathLike[str], envelopes: Sequence[Envelope]) -> None:
    """Write ``provenance.intoto.jsonl``: one envelope per line, replaced atomically.

    A reader never sees half a file. Raises UsageError when the path cannot be written.
    """
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    data = b"".join(envelope.to_json() + b"\n" for envelope in envelopes)
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except OSError as e:
        temporary.unlink(missing_ok=True)
        raise UsageError(f"cannot write {target}: {e.strerror or e}") from e


def _image_name(image: str) -> str:
    try:
        source = parse_source(image)
    except InvalidReferenceError:
        return image
    if source.kind is SourceKind.REGISTRY and source.reference is not None:
        return source.reference.name
    return image
