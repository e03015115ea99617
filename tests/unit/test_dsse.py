"""DSSE: the spec's own vector, cross-verification with securesystemslib, tampering."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]

from gate import dsse, keys
from gate.dsse import DSSEError, Envelope, Signature
from gate.errors import PolicyFailureError, UsageError

PAYLOAD_TYPE = "http://example.com/HelloWorld"
# NOTE: securesystemslib names the schemes our key types use; RSA is PKCS#1 v1.5 as cosign.
SSLIB_SCHEMES = {"ecdsa-p256": None, "ed25519": None, "rsa-3072": "rsa-pkcs1v15-sha256"}


@pytest.fixture(scope="module")
def spec(vectors: Path) -> Path:
    return vectors / "dsse-spec"


@pytest.fixture(scope="module")
def spec_key(spec: Path) -> keys.PublicKey:
    return keys.load_public_key(str(spec / "helloworld.pub.pem"))


@pytest.fixture(scope="module", params=sorted(SSLIB_SCHEMES))
def private_key(request: pytest.FixtureRequest) -> keys.PrivateKey:
    return keys.generate(request.param)


def _sslib_key(private: keys.PrivateKey) -> SSlibKey:
    scheme = SSLIB_SCHEMES[private.public_key.algorithm]
    if scheme is None:
        return SSlibKey.from_crypto(private.public_key.key)
    return SSlibKey.from_crypto(private.public_key.key, scheme=scheme)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# --- PAE ---------------------------------------------------------------------------------


def test_pae_matches_the_spec_vector(spec: Path) -> None:
    assert dsse.pae(PAYLOAD_TYPE, b"hello world") == (spec / "helloworld.pae").read_bytes()


def test_pae_counts_bytes_not_characters() -> None:
    assert dsse.pae("tÿpe", b"\xff") == b"DSSEv1 5 t\xc3\xbfpe 1 \xff"
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "


# --- the spec vector ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["helloworld.envelope.json", "helloworld.envelope.urlsafe-b64.json"]
)
def test_spec_envelope_verifies(spec: Path, spec_key: keys.PublicKey, name: str) -> None:
    envelope = Envelope.from_json((spec / name).read_bytes())
    assert envelope.payload == (spec / "helloworld.payload").read_bytes()
    assert envelope.payload_type == PAYLOAD_TYPE
    assert envelope.signatures[0].keyid == ""  # unset keyid is ""
    assert len(envelope.signatures[0].sig) == 64  # raw r||s
    assert dsse.verify(envelope, [spec_key]) == [spec_key]


def test_spec_signature_in_der_form_verifies(spec: Path, spec_key: keys.PublicKey) -> None:
    der = base64.b64decode((spec / "helloworld.sig.der.b64").read_text().strip())
    envelope = Envelope(b"hello world", PAYLOAD_TYPE, (Signature("", der),))
    assert dsse.verify(envelope, [spec_key]) == [spec_key]


def test_deterministic_signer_reproduces_the_spec_signature(spec: Path) -> None:
    params = json.loads((spec / "helloworld.testkey.params.json").read_text())
    private = ec.derive_private_key(int(params["d"]), ec.SECP256R1())
    numbers = private.public_key().public_numbers()
    assert (numbers.x, numbers.y) == (int(params["X"]), int(params["Y"]))
    der = private.sign(
        dsse.pae(PAYLOAD_TYPE, b"hello world"),
        ec.ECDSA(hashes.SHA256(), deterministic_signing=True),
    )
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    expected = Envelope.from_json((spec / "helloworld.envelope.json").read_bytes())
    assert raw == expected.signatures[0].sig
    # And the signing key wrapped as ours verifies what sign() makes with it.
    ours = keys.PrivateKey(private)
    envelope = dsse.sign(b"hello world", PAYLOAD_TYPE, ours)
    assert envelope.signatures[0].keyid == ""  # as cosign: Go verifiers skip unknown keyids
    assert dsse.verify(envelope, [keys.load_public_key(str(spec / "helloworld.pub.pem"))])


@pytest.mark.parametrize("part", ["payload", "sig", "payloadType"])
def test_flipping_any_byte_of_the_spec_envelope_fails(
    spec: Path, spec_key: keys.PublicKey, part: str
) -> None:
    good = Envelope.from_json((spec / "helloworld.envelope.json").read_bytes())
    signature = good.signatures[0]
    target = {
        "payload": good.payload,
        "sig": signature.sig,
        "payloadType": good.payload_type.encode(),
    }[part]
    for index in range(len(target)):
        flipped = _flip(target, index)
        if part == "payload":
            bad = Envelope(flipped, good.payload_type, good.signatures)
        elif part == "sig":
            bad = Envelope(good.payload, good.payload_type, (Signature("", flipped),))
        else:
            bad = Envelope(good.payload, flipped.decode(), good.signatures)
        with pytest.raises(DSSEError, match="signed by 0 of the 1"):
            dsse.verify(bad, [spec_key])


# --- our signatures, and securesystemslib's ------------------------------------------------


def test_our_envelopes_verify_with_securesystemslib(private_key: keys.PrivateKey) -> None:
    payload = b'{"_type":"https://in-toto.io/Statement/v1"}'
    envelope = dsse.sign(payload, dsse.PAYLOAD_TYPE_INTOTO, private_key)
    document = json.loads(envelope.to_json())
    sslib_key = _sslib_key(private_key)
    # NOTE: securesystemslib only tries signatures whose keyid equals its own key ID
    # (PEERS.md §5), which is computed differently from ours: re-key before handing over.
    document["signatures"][0]["keyid"] = sslib_key.keyid
    accepted = SslibEnvelope.from_dict(document).verify([sslib_key], 1)
    assert list(accepted) == [sslib_key.keyid]

    document = json.loads(envelope.to_json())
    document["payload"] = base64.b64encode(_flip(payload, 3)).decode()
    document["signatures"][0]["keyid"] = sslib_key.keyid
    with pytest.raises(VerificationError):
        SslibEnvelope.from_dict(document).verify([sslib_key], 1)


def test_securesystemslib_envelopes_verify_with_ours(private_key: keys.PrivateKey) -> None:
    signer = CryptoSigner(private_key.key, _sslib_key(private_key))
    theirs = SslibEnvelope(b"payload bytes", dsse.PAYLOAD_TYPE_INTOTO, {})
    theirs.sign(signer)
    envelope = Envelope.from_dict(theirs.to_dict())
    assert dsse.verify(envelope, [private_key.public_key]) == [private_key.public_key]

    signature = envelope.signatures[0]
    tampered_sig = Envelope(
        envelope.payload,
        envelope.payload_type,
        (Signature(signature.keyid, _flip(signature.sig, 10)),),
    )
    tampered_payload = Envelope(b"payload bytez", envelope.payload_type, envelope.signatures)
    for bad in (tampered_sig, tampered_payload):
        with pytest.raises(DSSEError):
            dsse.verify(bad, [private_key.public_key])


def test_every_flipped_byte_of_our_envelope_fails() -> None:
    key = keys.generate("ecdsa-p256")
    envelope = dsse.sign(b'{"a":1}', dsse.PAYLOAD_TYPE_INTOTO, key)
    signature = envelope.signatures[0]
    for index in range(len(envelope.payload)):
        bad = Envelope(_flip(envelope.payload, index), envelope.payload_type, envelope.signatures)
        with pytest.raises(DSSEError):
            dsse.verify(bad, [key.public_key])
    for index in range(len(signature.sig)):
        bad = Envelope(
            envelope.payload, envelope.payload_type, (Signature("", _flip(signature.sig, index)),)
        )
        with pytest.raises(DSSEError):
            dsse.verify(bad, [key.public_key])


# --- thresholds -------------------------------------------------------------------------------


def test_threshold_counts_distinct_keys() -> None:
    first, second, stranger = (keys.generate("ed25519") for _ in range(3))
    envelope = dsse.add_signature(dsse.sign(b"x", "t", first), second)
    assert len(envelope.signatures) == 2
    both = dsse.verify(envelope, [first.public_key, second.public_key, stranger.public_key], 2)
    assert both == [first.public_key, second.public_key]
    # The same key twice (even as two objects) is one key.
    again = keys.PublicKey(first.public_key.key)
    with pytest.raises(DSSEError, match="signed by 1 of the 2"):
        dsse.verify(dsse.sign(b"x", "t", first), [first.public_key, again], 2)
    # Two signatures by one key do not make two.
    doubled = dsse.add_signature(dsse.sign(b"x", "t", first), first)
    with pytest.raises(DSSEError, match="signed by 1 of the 2"):
        dsse.verify(doubled, [first.public_key, second.public_key], 2)
    with pytest.raises(DSSEError, match="signed by 2 of the 3"):
        dsse.verify(envelope, [first.public_key, second.public_key], 3)


def test_keyid_is_only_a_hint() -> None:
    key = keys.generate("ecdsa-p256")
    envelope = dsse.sign(b"x", "t", key)
    relabelled = Envelope(b"x", "t", (Signature("someone-else", envelope.signatures[0].sig),))
    assert dsse.verify(relabelled, [key.public_key]) == [key.public_key]


def test_verify_refuses_nonsense() -> None:
    key = keys.generate("ed25519")
    envelope = dsse.sign(b"x", "t", key)
    with pytest.raises(UsageError, match="at least 1"):
        dsse.verify(envelope, [key.public_key], 0)
    with pytest.raises(DSSEError, match="no public key"):
        dsse.verify(envelope, [])
    with pytest.raises(DSSEError, match="no signatures"):
        dsse.verify(Envelope(b"x", "t", ()), [key.public_key])


def test_dsse_error_is_a_policy_failure() -> None:
    assert issubclass(DSSEError, PolicyFailureError)
    assert DSSEError.exit_code == 1


# --- parsing and serialising ------------------------------------------------------------------


def test_to_json_is_compact_standard_base64_and_round_trips() -> None:
    envelope = Envelope(b"\xfb\xff\xfe", "t", (Signature("k", b"\xfb\xef\xff"),))
    text = envelope.to_json()
    assert b" " not in text and b"\n" not in text
    assert json.loads(text) == {
        "payload": "+//+",
        "payloadType": "t",
        "signatures": [{"keyid": "k", "sig": "++//"}],
    }
    assert Envelope.from_json(text) == envelope


def test_parse_accepts_unpadded_urlsafe_and_ignores_unknown_fields() -> None:
    document = {
        "payload": "aGVsbG8",  # "hello", unpadded
        "payloadType": "t",
        "signatures": [{"sig": "-_8", "extension": True}, {"keyid": None, "sig": ""}],
        "producer_note": "ignored",
    }
    envelope = Envelope.from_json(json.dumps(document).encode())
    assert envelope.payload == b"hello"
    assert envelope.signatures == (Signature("", b"\xfb\xff"), Signature("", b""))


@pytest.mark.parametrize(
    ("document", "why"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"payloadType": "t", "signatures": []}', "'payload' is missing"),
        (b'{"payload": "", "signatures": []}', "'payloadType' is missing"),
        (b'{"payload": "", "payloadType": "t"}', "'signatures' is missing"),
        (b'{"payload": "", "payloadType": "t", "signatures": {}}', "'signatures' is missing"),
        (b'{"payload": "a", "payloadType": "t", "signatures": []}', "'payload' is not base64"),
        (b'{"payload": "a+b_", "payloadType": "t", "signatures": []}', "mixes"),
        (b'{"payload": "YQ===", "payloadType": "t", "signatures": []}', "padding"),
        (b'{"payload": "Y*==", "payloadType": "t", "signatures": []}', "not base64"),
        (b'{"payload": "", "payloadType": "t", "signatures": [1]}', "signature 0 is not"),
        (b'{"payload": "", "payloadType": "t", "signatures": [{}]}', "no 'sig'"),
        (b'{"payload": "", "payloadType": "t", "signatures": [{"sig": "", "keyid": 1}]}', "keyid"),
        (b'{"payload": "", "payload": "", "payloadType": "t", "signatures": []}', "twice"),
        (b'{"payload": "", "payloadType": "\\ud800", "signatures": []}', "UTF-8"),
    ],
)
def test_parse_rejects_what_is_not_an_envelope(document: bytes, why: str) -> None:
    with pytest.raises(DSSEError, match=f"layer 1 is not a DSSE envelope: .*{why}"):
        Envelope.from_json(document, source="layer 1")


def test_b64decode_variants() -> None:
    assert dsse.b64decode("aGk=") == dsse.b64decode("aGk") == b"hi"
    assert dsse.b64decode("-_-_") == dsse.b64decode("+/+/")
    assert dsse.b64decode("") == b""
    for bad in ("a", "aGk==", "a=Gk", "aG k"):
        with pytest.raises(ValueError):
            dsse.b64decode(bad)
