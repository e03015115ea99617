"""DSSE envelopes: pre-authentication encoding, signing, threshold verification (pure).

Follows secure-systems-lab/dsse v1.0.2 (``protocol.md``, ``envelope.md``).
Everything Sealgate attests (SLSA provenance, the gate's VSA, revocations)
travels in one of these, and so do cosign's ``.att`` layers and the
``dsseEnvelope`` of cosign v3 bundles. The signature format inside ``sig`` is
the key's business (``gate.keys``): DER from cosign, raw r||s from the spec.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gate import strict_json
from gate.errors import PolicyFailureError, UsageError

if TYPE_CHECKING:
    from gate.keys import PrivateKey, PublicKey

PAYLOAD_TYPE_INTOTO = "application/vnd.in-toto+json"
# NOTE: cosign stores attestations as layers of this media type (FORMATS.md §2).
MEDIA_TYPE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"

_STANDARD_ONLY = re.compile(r"[+/]")
_URLSAFE_ONLY = re.compile(r"[-_]")


class DSSEError(PolicyFailureError):
    """An envelope is malformed, or too few of its signatures verify.

    A decision about untrusted input, so it exits 1 like any policy failure.
    """


@dataclass(frozen=True)
class Signature:
    """One signature of an envelope."""

    keyid: str
    """Unauthenticated hint; ``""`` when unset (cosign leaves it empty)."""
    sig: bytes
    """The raw signature bytes over PAE, in whatever encoding the signer's key uses."""


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope: a payload, its type, and signatures over PAE(type, payload)."""

    payload: bytes
    """The exact signed bytes; hand these to the application, never a re-encoding."""
    payload_type: str
    signatures: tuple[Signature, ...]

    @property
    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    @classmethod
    def from_json(cls, data: bytes | str, *, source: str = "the input") -> Envelope:
        """Parse an envelope from JSON; raises DSSEError naming ``source`` when it is not one."""
        try:
            document = strict_json.loads(data, "it", DSSEError)
        except DSSEError as e:
            raise DSSEError(f"{source} is not a DSSE envelope: {e.message}") from e
        return cls.from_dict(document, source=source)

    @classmethod
    def from_dict(cls, document: Any, *, source: str = "the input") -> Envelope:
        """Build an envelope from its JSON object (e.g. a bundle's ``dsseEnvelope``).

        Unknown fields are ignored, as envelope.md requires of consumers.
        """

        def fail(why: str) -> DSSEError:
            return DSSEError(f"{source} is not a DSSE envelope: {why}")

        if not isinstance(document, Mapping):
            raise fail("it is not a JSON object")
        payload_text = document.get("payload")
        payload_type = document.get("payloadType")
        signatures = document.get("signatures")
        if not isinstance(payload_text, str):
            raise fail("'payload' is missing or not a string")
        if not isinstance(payload_type, str):
            raise fail("'payloadType' is missing or not a string")
        if not _utf8_encodable(payload_type):
            raise fail("'payloadType' is not valid UTF-8 text")
        if not isinstance(signatures, list):
            raise fail("'signatures' is missing or not a list")
        try:
            payload = b64decode(payload_text)
        except ValueError as e:
            raise fail(f"'payload' is not base64 ({e})") from e
        parsed: list[Signature] = []
        for index, entry in enumerate(signatures):
            if not isinstance(entry, Mapping):
                raise fail(f"signature {index} is not a JSON object")
            # NOTE: envelope.md: keyid is optional and unset is equivalent to "".
            keyid = entry.get("keyid")
            keyid = "" if keyid is None else keyid
            sig_text = entry.get("sig")
            if not isinstance(keyid, str):
                raise fail(f"signature {index} has a 'keyid' that is not a string")
            if not isinstance(sig_text, str):
                raise fail(f"signature {index} has no 'sig' string")
            try:
                sig = b64decode(sig_text)
            except ValueError as e:
                raise fail(f"signature {index} is not base64 ({e})") from e
            parsed.append(Signature(keyid, sig))
        return cls(payload, payload_type, tuple(parsed))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object, with standard padded base64 (what cosign and securesystemslib write)."""
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                for s in self.signatures
            ],
        }

    def to_json(self) -> bytes:
        """Compact JSON on one line, so one envelope is one line of a ``.intoto.jsonl`` file."""
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed.

    Binding the type into the signed bytes stops a payload being re-read as
    another type; lengths are in bytes, so non-ASCII types cannot shift fields.
    """
    # NOTE: protocol.md: PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body,
    # LEN = ASCII decimal byte length without leading zeros, type UTF-8 encoded.
    encoded_type = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(encoded_type), encoded_type, len(payload), payload)


def sign(payload: bytes, payload_type: str, key: PrivateKey) -> Envelope:
    """Sign ``payload`` as ``payload_type`` with one key, leaving the keyid empty as cosign does.

    A keyid is only a hint, and one of our own making breaks verifiers: Go's
    go-securesystemslib, which sigstore-go uses for bundles, skips any
    signature whose non-empty keyid differs from the one *it* derives for the
    key (an SSH-style ``SHA256:…`` fingerprint). A bundle whose envelope
    carried Sealgate's hex key ID was rejected by ``cosign verify --key``
    ("accepted signatures do not match threshold, Found: 0"; cosign v2 and v3,
    tests/integration/test_cosign_interop.py).
    """
    # NOTE: cosign pkg/signature/dsse SignerAdapter.KeyID returns ""; sigstore-go sets none.
    signature = Signature("", key.sign(pae(payload_type, payload)))
    return Envelope(payload, payload_type, (signature,))


def add_signature(envelope: Envelope, key: PrivateKey) -> Envelope:
    """Return ``envelope`` with one more signature, for (t, n) thresholds over several keys."""
    signature = Signature("", key.sign(envelope.pae))
    return Envelope(envelope.payload, envelope.payload_type, (*envelope.signatures, signature))


def verify(envelope: Envelope, keys: Sequence[PublicKey], threshold: int = 1) -> list[PublicKey]:
    """Return the distinct ``keys`` that signed PAE(type, payload), in the order given.

    Only the signature is checked here; the payload is not parsed, so callers
    parse ``envelope.payload`` only after this returns. Raises DSSEError when
    fewer than ``threshold`` distinct keys verify, UsageError when
    ``threshold`` is below 1.
    """
    if threshold < 1:
        raise UsageError(f"a signature threshold must be at least 1, not {threshold}")
    # NOTE: protocol.md: a (t, n) threshold counts distinct keys, and keyid is an
    # unauthenticated hint (cosign leaves it empty), so every signature is tried
    # against every key rather than filtered by keyid.
    distinct: dict[str, PublicKey] = {}
    for key in keys:
        distinct.setdefault(key.key_id, key)
    message = envelope.pae
    verified = [
        key
        for key in distinct.values()
        if any(key.verify(signature.sig, message) for signature in envelope.signatures)
    ]
    if len(verified) >= threshold:
        return verified
    if not envelope.signatures:
        why = "the DSSE envelope has no signatures"
    elif not distinct:
        why = "no public key was given to verify the DSSE envelope with"
    else:
        why = (
            f"the DSSE envelope is signed by {len(verified)} of the {threshold} trusted "
            f"key{'s' if threshold != 1 else ''} required ({len(envelope.signatures)} "
            f"signature{'s' if len(envelope.signatures) != 1 else ''} checked against "
            f"{len(distinct)} key{'s' if len(distinct) != 1 else ''})"
        )
    raise DSSEError(why, hint="check that the public keys given are the ones that signed it")


def b64decode(text: str) -> bytes:
    """Decode standard or URL-safe base64, padded or not; raise ValueError otherwise.

    Mixing the two alphabets in one string is refused: no encoder produces it.
    """
    # NOTE: protocol.md: verifiers MUST accept standard or URL-safe base64; padding is
    # not specified, so both padded and unpadded forms are accepted.
    if _STANDARD_ONLY.search(text) and _URLSAFE_ONLY.search(text):
        raise ValueError("it mixes standard and URL-safe base64 alphabets")
    unpadded = text.rstrip("=")
    padding = len(text) - len(unpadded)
    if padding and (padding > 2 or len(text) % 4):
        raise ValueError("it has wrong '=' padding")
    if len(unpadded) % 4 == 1:
        raise ValueError("its length is not possible for base64")
    standard = unpadded.translate(str.maketrans("-_", "+/"))
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except binascii.Error as e:
        raise ValueError(str(e)) from e


def _utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
