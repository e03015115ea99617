"""Tests for gate.keys: generation, loading from every kind of reference, cosign keys, verify."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from gate.errors import KeyLoadError, UsageError
from gate.keys import (
    KEY_TYPES,
    PrivateKey,
    PublicKey,
    encrypt_cosign_key,
    generate,
    load_private_key,
    load_public_key,
    read_key_text,
    write_key_pair,
)

Asset = Callable[[str], Path]
DATA = b'{"critical":{"type":"cosign container image signature"}}'
# NOTE: the public-good Rekor log ID is SHA-256 of its DER SPKI (vectors/INDEX.md, section A).
REKOR_LOG_ID = "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"


@pytest.fixture(autouse=True)
def _no_ambient_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passphrase variables from the developer's shell must not leak into tests."""
    monkeypatch.delenv("SEALGATE_KEY_PASSWORD", raising=False)
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: never prompt


@pytest.fixture(scope="module")
def ec_key() -> PrivateKey:
    return generate("ecdsa-p256")


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _pem_lines(pem: bytes) -> list[str]:
    """The base64 lines of a PEM, to check that none ends up in an error message."""
    return [line for line in pem.decode().splitlines() if not line.startswith("-----")]


# ---------------------------------------------------------------- generate, sign, verify


@pytest.mark.parametrize("key_type", KEY_TYPES)
def test_generate_sign_verify_round_trip(key_type: str) -> None:
    key = generate(key_type)
    signature = key.sign(DATA)
    assert key.public_key.algorithm == key_type
    assert key.public_key.verify(signature, DATA)
    assert not key.public_key.verify(signature, DATA + b" ")
    assert not key.public_key.verify(bytes([signature[0] ^ 1]) + signature[1:], DATA)
    assert not generate(key_type).public_key.verify(signature, DATA)


def test_generate_defaults_to_ecdsa_p256() -> None:
    assert generate().public_key.algorithm == "ecdsa-p256"


def test_generate_unknown_type_lists_the_allowed_ones() -> None:
    with pytest.raises(
        KeyLoadError, match="unknown key type 'dsa'; choose one of ecdsa-p256, ed25519, rsa-3072"
    ):
        generate("dsa")


def test_ecdsa_signature_is_der(ec_key: PrivateKey) -> None:
    r, s = decode_dss_signature(ec_key.sign(DATA))  # raises if not ASN.1 DER
    assert r > 0 and s > 0


@pytest.mark.parametrize("signature", [b"", b"\x00", b"\x30\x02\x02\x00", b"\x00" * 64, b"x" * 512])
def test_verify_never_raises_on_garbage(ec_key: PrivateKey, signature: bytes) -> None:
    for key in (ec_key, generate("ed25519")):
        assert key.public_key.verify(signature, DATA) is False


def test_raw_r_s_signature_is_accepted(ec_key: PrivateKey) -> None:
    r, s = decode_dss_signature(ec_key.sign(DATA))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert ec_key.public_key.verify(raw, DATA)
    assert not ec_key.public_key.verify(raw, DATA + b"!")
    assert not ec_key.public_key.verify(raw[:-1], DATA)


def test_p384_hashes_with_sha384_and_accepts_raw_r_s() -> None:
    key = PrivateKey(ec.generate_private_key(ec.SECP384R1()))
    assert key.public_key.algorithm == "ecdsa-p384"
    signature = key.sign(DATA)
    assert isinstance(key.key, ec.EllipticCurvePrivateKey)
    key.key.public_key().verify(signature, DATA, ec.ECDSA(hashes.SHA384()))  # raises if not
    r, s = decode_dss_signature(signature)
    assert key.public_key.verify(r.to_bytes(48, "big") + s.to_bytes(48, "big"), DATA)


def test_rsa_pss_signature_is_accepted() -> None:
    key = generate("rsa-3072")
    assert isinstance(key.key, rsa.RSAPrivateKey)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    assert key.public_key.verify(key.key.sign(DATA, pss, hashes.SHA256()), DATA)


def test_unsupported_keys_are_refused() -> None:
    with pytest.raises(KeyLoadError, match="curve secp521r1 is not supported"):
        PrivateKey(ec.generate_private_key(ec.SECP521R1()))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(KeyLoadError, match="RSA-1024 is too small"):
        PublicKey(small.public_key())


def test_private_key_repr_shows_no_key_material(ec_key: PrivateKey) -> None:
    text = repr(ec_key)
    assert text == f"PrivateKey(ecdsa-p256, {ec_key.public_key.short_id})"
    assert all(line not in text for line in _pem_lines(ec_key.to_pem(None)))


# ---------------------------------------------------------------- key IDs


def test_key_id_is_sha256_of_der_and_stable(ec_key: PrivateKey, tmp_path: Path) -> None:
    public = ec_key.public_key
    assert public.key_id == hashlib.sha256(public.der).hexdigest()
    assert len(public.key_id) == 64
    assert public.short_id == public.key_id[:16]
    assert public.hint == base64.b64encode(hashlib.sha256(public.der).digest()).decode()
    again = load_public_key(_write(tmp_path / "k.pub", public.pem))
    assert again.key_id == public.key_id
    assert again == public and hash(again) == hash(public)
    assert len({again, public}) == 1
    assert again != generate().public_key


def test_key_id_matches_rekor_log_id(vectors: Path) -> None:
    rekor = load_public_key(str(vectors / "cosign-containers-image" / "rekor.pub"))
    assert rekor.key_id == REKOR_LOG_ID
    assert rekor.hint == base64.b64encode(bytes.fromhex(REKOR_LOG_ID)).decode()


def test_der_and_pem_are_spki(ec_key: PrivateKey) -> None:
    public = ec_key.public_key
    assert public.pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    assert serialization.load_der_public_key(public.der) == public.key


# ---------------------------------------------------------------- real third-party vectors


def test_real_cosign_signature_verifies_with_cosign_pub(vectors: Path) -> None:
    base = vectors / "cosign-containers-image"
    payload = (base / "extracted" / "valid.payload").read_bytes()
    signature = base64.b64decode((base / "extracted" / "valid.sig.b64").read_bytes())
    cosign_pub = load_public_key(str(base / "cosign.pub"))
    assert cosign_pub.algorithm == "ecdsa-p256"
    assert cosign_pub.verify(signature, payload)
    assert not cosign_pub.verify(signature, payload.replace(b"634a8f35", b"634a8f36"))
    assert not load_public_key(str(base / "cosign2.pub")).verify(signature, payload)
    unknown = base64.b64decode((base / "extracted" / "unknown-key.sig.b64").read_bytes())
    assert not cosign_pub.verify(unknown, (base / "extracted" / "unknown-key.payload").read_bytes())


def test_real_rsa_pkcs1v15_signature_verifies(vectors: Path) -> None:
    extracted = vectors / "cosign-containers-image" / "extracted"
    cert = x509.load_pem_x509_certificate((extracted / "pki.cert.pem").read_bytes())
    public_key = cert.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    public = PublicKey(public_key)
    assert public.algorithm == "rsa-4096"
    signature = base64.b64decode((extracted / "pki.sig.b64").read_bytes())
    assert public.verify(signature, (extracted / "pki.payload").read_bytes())
    assert not public.verify(signature, (extracted / "valid.payload").read_bytes())


def test_dsse_spec_raw_r_s_vector(vectors: Path) -> None:
    base = vectors / "dsse-spec"
    public = load_public_key(str(base / "helloworld.pub.pem"))
    pae = (base / "helloworld.pae").read_bytes()
    envelope = json.loads((base / "helloworld.envelope.json").read_bytes())
    raw = base64.b64decode(envelope["signatures"][0]["sig"])
    assert len(raw) == 64  # IEEE P1363 r||s, not DER
    assert public.verify(raw, pae)
    assert public.verify(base64.b64decode((base / "helloworld.sig.der.b64").read_bytes()), pae)
    assert not public.verify(raw, pae.replace(b"hello", b"hallo"))


# ---------------------------------------------------------------- reading references


def test_read_key_text_from_file_env_and_inline(
    ec_key: PrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pem = ec_key.public_key.pem
    assert read_key_text(_write(tmp_path / "k.pub", pem)) == pem
    monkeypatch.setenv("SG_TEST_PUB", pem.decode())
    assert read_key_text("env://SG_TEST_PUB") == pem.strip()
    assert read_key_text(pem.decode()) == pem.strip()


def test_load_public_key_from_env_and_inline(
    ec_key: PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SG_TEST_PUB", ec_key.public_key.pem.decode())
    assert load_public_key("env://SG_TEST_PUB") == ec_key.public_key
    assert load_public_key(ec_key.public_key.pem.decode()) == ec_key.public_key


def test_load_private_key_from_env_and_inline(
    ec_key: PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SG_TEST_KEY", ec_key.to_pem(b"secret").decode())
    loaded = load_private_key("env://SG_TEST_KEY", b"secret")
    assert loaded.public_key == ec_key.public_key
    inline = load_private_key(ec_key.to_pem(None).decode())
    assert inline.public_key == ec_key.public_key


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pub"
    with pytest.raises(KeyLoadError, match=r"key file .*nope\.pub does not exist"):
        load_public_key(str(missing))


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(KeyLoadError, match="is a directory"):
        read_key_text(str(tmp_path))


def test_unset_and_empty_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SG_TEST_UNSET", raising=False)
    with pytest.raises(KeyLoadError, match="environment variable SG_TEST_UNSET is not set"):
        load_public_key("env://SG_TEST_UNSET")
    monkeypatch.setenv("SG_TEST_EMPTY", "  \n")
    with pytest.raises(KeyLoadError, match="environment variable SG_TEST_EMPTY is empty"):
        load_private_key("env://SG_TEST_EMPTY")
    with pytest.raises(KeyLoadError, match="env:// needs a variable name"):
        read_key_text("env://")


def test_empty_and_unsupported_references() -> None:
    with pytest.raises(KeyLoadError, match="no key given"):
        read_key_text("  ")
    with pytest.raises(KeyLoadError, match="awskms:// are not supported"):
        load_public_key("awskms:///arn:aws:kms:us-east-1:1:key/x")


# ---------------------------------------------------------------- the wrong kind of thing


def test_private_key_given_as_public(ec_key: PrivateKey, tmp_path: Path) -> None:
    for pem in (ec_key.to_pem(None), ec_key.to_pem(b"pw"), encrypt_cosign_key(ec_key, b"pw")):
        path = _write(tmp_path / "cosign.key", pem)
        with pytest.raises(
            KeyLoadError, match=r"cosign\.key is a private key; pass the \.pub file"
        ) as info:
            load_public_key(path)
        assert all(line not in str(info.value) for line in _pem_lines(pem))


def test_inline_private_key_given_as_public_is_not_echoed(ec_key: PrivateKey) -> None:
    pem = ec_key.to_pem(None)
    with pytest.raises(KeyLoadError, match="the inline key is a private key") as info:
        load_public_key(pem.decode())
    assert all(line not in str(info.value) for line in _pem_lines(pem))


def test_certificate_given_as_public(vectors: Path) -> None:
    cert = vectors / "cosign-containers-image" / "extracted" / "pki.cert.pem"
    with pytest.raises(KeyLoadError, match="is a certificate, not a public key; extract its key"):
        load_public_key(str(cert))


def test_public_key_given_as_private(ec_key: PrivateKey, tmp_path: Path) -> None:
    with pytest.raises(
        KeyLoadError, match=r"is a public key; signing needs the private \.key file"
    ):
        load_private_key(_write(tmp_path / "k.pub", ec_key.public_key.pem))


@pytest.mark.parametrize(
    "content", [b"", b"hello\n", b"\x00\x01binary", b"-----BEGIN NOTHING-----\n"]
)
def test_not_a_key_file(tmp_path: Path, content: bytes) -> None:
    path = _write(tmp_path / "junk.pem", content)
    with pytest.raises(KeyLoadError, match="is not a PEM public key"):
        load_public_key(path)
    with pytest.raises(KeyLoadError, match="is not a PEM private key"):
        load_private_key(path)


def test_malformed_pem_body(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bad.pub", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(KeyLoadError, match="malformed or unsupported public key"):
        load_public_key(path)


def test_rsa_public_key_pkcs1_is_accepted(tmp_path: Path) -> None:
    key = generate("rsa-3072")
    pkcs1 = key.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    assert pkcs1.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    assert load_public_key(_write(tmp_path / "k.pub", pkcs1)) == key.public_key


# ---------------------------------------------------------------- private key formats


def test_encrypted_pkcs8_round_trip(ec_key: PrivateKey, tmp_path: Path) -> None:
    pem = ec_key.to_pem(b"correct horse")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = load_private_key(_write(tmp_path / "k.key", pem), b"correct horse")
    assert loaded.public_key == ec_key.public_key
    assert loaded.public_key.verify(loaded.sign(DATA), DATA)


def test_unencrypted_pkcs8_round_trip(tmp_path: Path) -> None:
    for key_type in KEY_TYPES:
        key = generate(key_type)
        pem = key.to_pem(None)
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
        assert load_private_key(_write(tmp_path / "k.key", pem)).public_key == key.public_key


def test_empty_passphrase_cannot_encrypt_pkcs8(ec_key: PrivateKey) -> None:
    with pytest.raises(UsageError, match="empty passphrase"):
        ec_key.to_pem(b"")


def test_wrong_passphrase(ec_key: PrivateKey, tmp_path: Path) -> None:
    path = _write(tmp_path / "k.key", ec_key.to_pem(b"right-one"))
    with pytest.raises(KeyLoadError, match=r"wrong passphrase for .*k\.key") as info:
        load_private_key(path, b"wrong-one")
    assert "wrong-one" not in str(info.value) and "right-one" not in str(info.value)


@pytest.mark.parametrize("fmt", ["ec", "rsa"])
def test_traditional_openssl_formats(tmp_path: Path, fmt: str) -> None:
    key = generate("ecdsa-p256" if fmt == "ec" else "rsa-3072")
    traditional = serialization.PrivateFormat.TraditionalOpenSSL
    plain = key.key.private_bytes(
        serialization.Encoding.PEM, traditional, serialization.NoEncryption()
    )
    label = b"EC PRIVATE KEY" if fmt == "ec" else b"RSA PRIVATE KEY"
    assert plain.startswith(b"-----BEGIN " + label)
    # openssl ecparam -genkey writes an EC PARAMETERS block first (cosign test/testdata has one).
    params = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    assert load_private_key(_write(tmp_path / "a.key", params + plain)).public_key == key.public_key
    legacy = key.key.private_bytes(
        serialization.Encoding.PEM, traditional, serialization.BestAvailableEncryption(b"pw")
    )
    assert b"Proc-Type: 4,ENCRYPTED" in legacy
    assert load_private_key(_write(tmp_path / "b.key", legacy), b"pw").public_key == key.public_key
    with pytest.raises(KeyLoadError, match="wrong passphrase"):
        load_private_key(str(tmp_path / "b.key"), b"nope")


# ---------------------------------------------------------------- passphrase resolution


def test_passphrase_from_sealgate_env_first(
    ec_key: PrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "k.key", ec_key.to_pem(b"from-env"))
    monkeypatch.setenv("SEALGATE_KEY_PASSWORD", "from-env")
    monkeypatch.setenv("COSIGN_PASSWORD", "not-this")
    assert load_private_key(path).public_key == ec_key.public_key


def test_passphrase_from_cosign_password(
    ec_key: PrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "k.key", encrypt_cosign_key(ec_key, b"cosign-pw"))
    monkeypatch.setenv("COSIGN_PASSWORD", "cosign-pw")
    assert load_private_key(path).public_key == ec_key.public_key


def test_explicit_password_wins_over_env(
    ec_key: PrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "k.key", ec_key.to_pem(b"given"))
    monkeypatch.setenv("SEALGATE_KEY_PASSWORD", "not-this")
    assert load_private_key(path, b"given").public_key == ec_key.public_key


def test_no_passphrase_and_no_terminal(ec_key: PrivateKey, tmp_path: Path) -> None:
    path = _write(tmp_path / "k.key", ec_key.to_pem(b"pw"))
    with pytest.raises(
        KeyLoadError, match="is encrypted and no passphrase was given; set SEALGATE_KEY_PASSWORD"
    ):
        load_private_key(path)


def test_prompts_on_a_terminal(
    ec_key: PrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    prompts: list[str] = []

    def fake_getpass(prompt: str) -> str:
        prompts.append(prompt)
        return "typed"

    monkeypatch.setattr("sys.stdin", Tty(""))
    monkeypatch.setattr("gate.keys.getpass.getpass", fake_getpass)
    path = _write(tmp_path / "k.key", ec_key.to_pem(b"typed"))
    assert load_private_key(path).public_key == ec_key.public_key
    assert prompts == [f"Passphrase for {path}: "]


def test_unencrypted_key_never_asks_for_a_passphrase(ec_key: PrivateKey, tmp_path: Path) -> None:
    path = _write(tmp_path / "k.key", ec_key.to_pem(None))
    assert load_private_key(path, b"ignored").public_key == ec_key.public_key


# ---------------------------------------------------------------- cosign's encrypted keys


def test_real_cosign_generated_key_with_empty_password(asset: Asset) -> None:
    path = asset("keys/sigstore-rs-cosign-generated-empty-password.key")
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    key = load_private_key(str(path), b"")
    assert key.public_key.algorithm == "ecdsa-p256"
    assert key.public_key.verify(key.sign(DATA), DATA)
    with pytest.raises(KeyLoadError, match=r"wrong passphrase for .*empty-password\.key"):
        load_private_key(str(path), b"hello")


def test_real_cosign_key_empty_password_from_env(
    asset: Asset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "")  # set but empty means the empty passphrase
    key = load_private_key(str(asset("keys/sigstore-rs-cosign-generated-empty-password.key")))
    assert key.public_key.algorithm == "ecdsa-p256"


def test_real_older_cosign_label_with_password(asset: Asset) -> None:
    path = asset("keys/sigstore-rs-ecdsa-password-123.key")
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----")
    key = load_private_key(str(path), b"123")
    assert key.public_key.verify(key.sign(DATA), DATA)
    with pytest.raises(KeyLoadError, match="wrong passphrase"):
        load_private_key(str(path), b"1234")


@pytest.mark.parametrize("key_type", KEY_TYPES)
@pytest.mark.parametrize("password", [b"s3cret", b""])
def test_encrypt_cosign_key_round_trip(key_type: str, password: bytes, tmp_path: Path) -> None:
    key = generate(key_type)
    pem = encrypt_cosign_key(key, password)
    lines = pem.decode().splitlines()
    assert lines[0] == "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"
    assert lines[-1] == "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----"
    assert all(len(line) <= 64 for line in lines[1:-1])
    doc = json.loads(base64.b64decode("".join(lines[1:-1])))
    assert list(doc) == ["kdf", "cipher", "ciphertext"]
    assert doc["kdf"]["name"] == "scrypt" and doc["cipher"]["name"] == "nacl/secretbox"
    assert doc["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}
    loaded = load_private_key(_write(tmp_path / "cosign.key", pem), password)
    assert loaded.public_key == key.public_key


def test_cosign_key_with_damaged_body(tmp_path: Path) -> None:
    label = b"ENCRYPTED SIGSTORE PRIVATE KEY"
    pem = b"-----BEGIN %s-----\nbm90IGpzb24=\n-----END %s-----\n" % (label, label)
    with pytest.raises(KeyLoadError, match="is not a valid cosign encrypted key"):
        load_private_key(_write(tmp_path / "cosign.key", pem), b"")


def test_cosign_key_with_hostile_scrypt_cost(ec_key: PrivateKey, tmp_path: Path) -> None:
    lines = encrypt_cosign_key(ec_key, b"").decode().splitlines()
    doc = json.loads(base64.b64decode("".join(lines[1:-1])))
    doc["kdf"]["params"]["N"] = 1 << 30
    body = base64.b64encode(json.dumps(doc).encode()).decode()
    pem = f"{lines[0]}\n{body}\n{lines[-1]}\n".encode()
    with pytest.raises(KeyLoadError, match="unsupported scrypt parameters"):
        load_private_key(_write(tmp_path / "cosign.key", pem), b"")


# ---------------------------------------------------------------- writing key pairs


def test_write_key_pair(ec_key: PrivateKey, tmp_path: Path) -> None:
    key_path, pub_path = write_key_pair(str(tmp_path / "out" / "ci"), ec_key, b"pw")
    assert (key_path, pub_path) == (tmp_path / "out" / "ci.key", tmp_path / "out" / "ci.pub")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert key_path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert load_private_key(str(key_path), b"pw").public_key == ec_key.public_key
    assert load_public_key(str(pub_path)) == ec_key.public_key
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["ci.key", "ci.pub"]


def test_write_key_pair_unencrypted(ec_key: PrivateKey, tmp_path: Path) -> None:
    key_path, _ = write_key_pair(str(tmp_path / "plain"), ec_key, None)
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600


def test_write_key_pair_in_cosigns_format(ec_key: PrivateKey, tmp_path: Path) -> None:
    """``keys generate --format cosign``: the one private-key format ``cosign sign`` reads."""
    key_path, pub_path = write_key_pair(str(tmp_path / "c"), ec_key, b"pw", key_format="cosign")
    assert key_path.read_bytes().startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert load_private_key(str(key_path), b"pw").public_key == ec_key.public_key
    assert load_public_key(str(pub_path)) == ec_key.public_key
    # No passphrase is cosign's empty one: the file is still its encrypted format.
    key_path, _ = write_key_pair(str(tmp_path / "e"), ec_key, None, key_format="cosign")
    assert load_private_key(str(key_path), b"").public_key == ec_key.public_key
    with pytest.raises(UsageError, match="unknown key file format"):
        write_key_pair(str(tmp_path / "x"), ec_key, b"pw", key_format="jwk")


def test_write_key_pair_refuses_to_overwrite(ec_key: PrivateKey, tmp_path: Path) -> None:
    (tmp_path / "ci.pub").write_bytes(b"keep me")
    with pytest.raises(
        UsageError, match=r"ci\.pub already exists; remove it or choose another prefix"
    ):
        write_key_pair(str(tmp_path / "ci"), ec_key, b"pw")
    assert (tmp_path / "ci.pub").read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ci.pub"]  # no partial write
    write_key_pair(str(tmp_path / "ci"), ec_key, b"pw", force=True)
    assert load_public_key(str(tmp_path / "ci.pub")) == ec_key.public_key


def test_write_key_pair_with_empty_passphrase_writes_nothing(
    ec_key: PrivateKey, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="empty passphrase"):
        write_key_pair(str(tmp_path / "ci"), ec_key, b"")
    assert list(tmp_path.iterdir()) == []
