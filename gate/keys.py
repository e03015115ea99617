"""Key generation, loading, key IDs, and the raw sign/verify primitives.

Keys are read the way cosign reads them, so a team's existing ``cosign.key`` /
``cosign.pub`` work unchanged: a file path, ``env://NAME`` (CI secrets), or
inline PEM. Private keys may be PKCS#8 (plain or encrypted), SEC1/PKCS#1, or
cosign's own ``ENCRYPTED SIGSTORE PRIVATE KEY`` (scrypt + NaCl secretbox; that
format lives in ``gate._cosign_key``).

Every failure is a ``KeyLoadError`` (exit 2) naming *where* the key came from,
never what it holds: no key bytes or passphrases reach a message or a log.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from gate._cosign_key import COSIGN_PEM_TYPES, decrypt_cosign_key, encrypt_cosign_key
from gate.errors import KeyLoadError, UsageError

__all__ = [
    "COSIGN_PASSWORD_ENV",
    "COSIGN_PEM_TYPES",
    "KEY_FILE_FORMATS",
    "KEY_TYPES",
    "PASSWORD_ENV",
    "KeyType",
    "PrivateKey",
    "PrivateKeyObject",
    "PublicKey",
    "PublicKeyObject",
    "encrypt_cosign_key",
    "generate",
    "load_private_key",
    "load_public_key",
    "read_key_text",
    "write_key_pair",
]

KeyType = Literal["ecdsa-p256", "ed25519", "rsa-3072"]
KEY_TYPES: tuple[str, ...] = ("ecdsa-p256", "ed25519", "rsa-3072")

PublicKeyObject = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
PrivateKeyObject = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

PASSWORD_ENV = "SEALGATE_KEY_PASSWORD"
COSIGN_PASSWORD_ENV = "COSIGN_PASSWORD"

_PRIVATE_TYPES = ("ENCRYPTED PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY")
_PUBLIC_TYPES = ("PUBLIC KEY", "RSA PUBLIC KEY")
_RSA_MIN_BITS = 2048  # sigstore cryptoutils.ValidatePubKey refuses smaller RSA keys
# NOTE: sigstore algorithm_registry.go: the default hash per curve.
_CURVE_HASH: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
}
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


def _unsupported(key: object) -> str | None:
    """Why ``key`` cannot be used by Sealgate, or None when it can."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if key.curve.name not in _CURVE_HASH:
            return f"ECDSA curve {key.curve.name} is not supported; use P-256 or P-384"
    elif isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if key.key_size < _RSA_MIN_BITS:
            return f"RSA-{key.key_size} is too small; use at least {_RSA_MIN_BITS} bits"
    elif not isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return f"{type(key).__name__} keys are not supported; use ECDSA, Ed25519 or RSA"
    return None


def _algorithm(key: PublicKeyObject) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPublicKey):
        return f"rsa-{key.key_size}"
    return "ecdsa-p256" if key.curve.name == "secp256r1" else "ecdsa-p384"


@dataclass(frozen=True, eq=False)
class PublicKey:
    """A verifying key; equal and hashable by its DER, so policies can put it in sets."""

    key: PublicKeyObject
    """The ``cryptography`` key object (EC P-256/P-384, Ed25519 or RSA)."""

    def __post_init__(self) -> None:
        if (reason := _unsupported(self.key)) is not None:
            raise KeyLoadError(reason)

    @cached_property
    def der(self) -> bytes:
        """DER SubjectPublicKeyInfo: the bytes every key ID is computed from."""
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        return self.key.public_bytes(serialization.Encoding.DER, spki)

    @property
    def pem(self) -> bytes:
        """PEM ``PUBLIC KEY``, the format of ``cosign.pub``."""
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        return self.key.public_bytes(serialization.Encoding.PEM, spki)

    @cached_property
    def key_id(self) -> str:
        """Hex SHA-256 of the DER SPKI: stable across PEM formatting and file names."""
        return hashlib.sha256(self.der).hexdigest()

    @property
    def short_id(self) -> str:
        """The first 16 hex digits of ``key_id``, for tables and logs."""
        return self.key_id[:16]

    @property
    def hint(self) -> str:
        """Standard base64 of SHA-256(DER SPKI): ``publicKey.hint`` in Sigstore bundles."""
        return base64.b64encode(hashlib.sha256(self.der).digest()).decode("ascii")

    @property
    def algorithm(self) -> str:
        """``ecdsa-p256``, ``ecdsa-p384``, ``ed25519`` or ``rsa-<bits>``."""
        return _algorithm(self.key)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is valid over ``data``; a bad signature is False, never raised.

        cosign stores no algorithm ID, so the scheme follows the key (FORMATS.md
        §1.4): ECDSA hashes per curve and takes ASN.1 DER or raw r||s, as
        sigstore's verifier does; RSA is PKCS#1 v1.5 or PSS over SHA-256;
        Ed25519 is pure.
        """
        key = self.key
        attempts: list[Callable[[], None]]
        if isinstance(key, ed25519.Ed25519PublicKey):
            attempts = [lambda: key.verify(signature, data)]
        elif isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
            attempts = [
                lambda: key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256()),
                lambda: key.verify(signature, data, pss, hashes.SHA256()),
            ]
        else:
            ecdsa = ec.ECDSA(_CURVE_HASH[key.curve.name]())
            attempts = [lambda: key.verify(signature, data, ecdsa)]
            # NOTE: sigstore pkg/signature/ecdsa.go falls back to IEEE P1363 r||s.
            size = (key.curve.key_size + 7) // 8
            if len(signature) == 2 * size:
                r, s = (
                    int.from_bytes(half, "big") for half in (signature[:size], signature[size:])
                )
                attempts.append(lambda: key.verify(encode_dss_signature(r, s), data, ecdsa))
        for attempt in attempts:
            try:
                attempt()
                return True
            except (InvalidSignature, ValueError):
                continue
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and self.der == other.der

    def __hash__(self) -> int:
        return hash(self.der)

    def __repr__(self) -> str:
        return f"PublicKey({self.algorithm}, {self.short_id})"


@dataclass(frozen=True, eq=False)
class PrivateKey:
    """A signing key. Its repr shows only the algorithm and key ID, never key material."""

    key: PrivateKeyObject = field(repr=False)
    """The ``cryptography`` private key object."""

    def __post_init__(self) -> None:
        if (reason := _unsupported(self.key)) is not None:
            raise KeyLoadError(reason)

    @cached_property
    def public_key(self) -> PublicKey:
        """The matching public key: what goes in ``.pub`` and in the policy."""
        return PublicKey(self.key.public_key())

    def sign(self, data: bytes) -> bytes:
        """Sign as cosign does: ECDSA (DER) over SHA-256 (SHA-384 for P-384, so that
        verifiers that hash per curve agree), RSA PKCS#1 v1.5 SHA-256, pure Ed25519."""
        key = self.key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return key.sign(data, ec.ECDSA(_CURVE_HASH[key.curve.name]()))

    def to_pem(self, password: bytes | None) -> bytes:
        """PKCS#8 PEM: ``ENCRYPTED PRIVATE KEY`` with a password, else plain ``PRIVATE KEY``."""
        encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
        if password is not None:
            if not password:
                raise UsageError("an empty passphrase cannot encrypt a key; choose a passphrase")
            encryption = serialization.BestAvailableEncryption(password)
        pkcs8 = serialization.PrivateFormat.PKCS8
        return self.key.private_bytes(serialization.Encoding.PEM, pkcs8, encryption)

    def __repr__(self) -> str:
        return f"PrivateKey({self.public_key.algorithm}, {self.public_key.short_id})"


def generate(key_type: str = "ecdsa-p256") -> PrivateKey:
    """A new key of one of ``KEY_TYPES``; ECDSA P-256 by default, as cosign."""
    if key_type == "ecdsa-p256":
        return PrivateKey(ec.generate_private_key(ec.SECP256R1()))
    if key_type == "ed25519":
        return PrivateKey(ed25519.Ed25519PrivateKey.generate())
    if key_type == "rsa-3072":
        return PrivateKey(rsa.generate_private_key(public_exponent=65537, key_size=3072))
    raise KeyLoadError(f"unknown key type '{key_type}'; choose one of {', '.join(KEY_TYPES)}")


def _where(ref: str) -> str:
    """How to name a key reference in a message without echoing key material."""
    return "the inline key" if ref.lstrip().startswith("-----BEGIN") else ref


MAX_KEY_BYTES = 64 * 1024
"""Larger than any PEM key or cosign.key; ``key: /dev/zero`` must not fill memory."""


def read_key_text(ref: str) -> bytes:
    """The PEM text behind ``ref``: a file path, ``env://NAME``, or inline PEM.

    Raises KeyLoadError for a missing or unreadable file or an unset variable.
    """
    if not ref.strip():
        raise KeyLoadError("no key given; pass a file path, env://NAME, or PEM text")
    if ref.lstrip().startswith("-----BEGIN"):
        return ref.strip().encode("utf-8")
    scheme, sep, name = ref.partition("://")
    if sep and scheme == "env":
        value = os.environ.get(name) if name else None
        if not name:
            raise KeyLoadError("env:// needs a variable name, e.g. env://SEALGATE_KEY")
        if value is None or not value.strip():
            state = "is not set" if value is None else "is empty"
            raise KeyLoadError(f"environment variable {name} {state}; put the PEM key text in it")
        return value.strip().encode("utf-8")
    if sep and re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):  # awskms://, k8s://, https://, ...
        raise KeyLoadError(
            f"key references of the form {scheme}:// are not supported; "
            "pass a file path, env://NAME, or PEM text"
        )
    if "\0" in ref:
        raise KeyLoadError("a key file name cannot contain a NUL character")
    try:
        with Path(ref).expanduser().open("rb") as handle:
            data = handle.read(MAX_KEY_BYTES + 1)
    except FileNotFoundError as e:
        raise KeyLoadError(f"key file {ref} does not exist") from e
    except IsADirectoryError as e:
        raise KeyLoadError(f"key file {ref} is a directory; pass the key file inside it") from e
    except OSError as e:
        raise KeyLoadError(f"cannot read key file {ref}: {e.strerror or e}") from e
    if len(data) > MAX_KEY_BYTES:
        raise KeyLoadError(f"key file {ref} is larger than {MAX_KEY_BYTES} bytes; it is no key")
    return data


def _pem_blocks(text: bytes) -> list[tuple[str, bytes]]:
    """(label, whole block) for every PEM block in ``text``, in order."""
    return [(m.group(1).decode("ascii"), m.group(0)) for m in _PEM_BLOCK.finditer(text)]


def _checked(key: object, where: str) -> object:
    if (reason := _unsupported(key)) is not None:
        raise KeyLoadError(f"{where}: {reason}")
    return key


def load_public_key(ref: str) -> PublicKey:
    """The public key at ``ref``: PEM ``PUBLIC KEY`` (SPKI) or ``RSA PUBLIC KEY`` (PKCS#1).

    Raises KeyLoadError, with a pointed message for the usual mix-ups: a
    private key or a certificate where a public key belongs.
    """
    where = _where(ref)
    blocks = _pem_blocks(read_key_text(ref))
    labels = [label for label, _ in blocks]
    block = next((b for label, b in blocks if label in _PUBLIC_TYPES), None)
    if block is None:
        if any("PRIVATE KEY" in label for label in labels):
            raise KeyLoadError(f"{where} is a private key; pass the .pub file")
        if "CERTIFICATE" in labels:
            raise KeyLoadError(
                f"{where} is a certificate, not a public key; extract its key with "
                "'openssl x509 -pubkey -noout -in CERT > key.pub'"
            )
        found = f" (found '{labels[0]}')" if labels else ""
        raise KeyLoadError(f"{where} is not a PEM public key{found}")
    try:
        key = _checked(serialization.load_pem_public_key(block), where)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise KeyLoadError(f"{where} holds a malformed or unsupported public key") from e
    assert isinstance(key, PublicKeyObject)
    return PublicKey(key)


def load_private_key(ref: str, password: bytes | None = None) -> PrivateKey:
    """The private key at ``ref``, decrypted when needed. Raises KeyLoadError.

    Accepts PKCS#8 (plain or encrypted), ``EC PRIVATE KEY``, ``RSA PRIVATE
    KEY`` and cosign's encrypted format. For an encrypted key without a
    ``password``, the passphrase comes from ``SEALGATE_KEY_PASSWORD``, then
    ``COSIGN_PASSWORD`` (teams moving from cosign), then a prompt on a terminal.
    """
    where = _where(ref)
    blocks = _pem_blocks(read_key_text(ref))
    labels = [label for label, _ in blocks]
    known = COSIGN_PEM_TYPES + _PRIVATE_TYPES
    found = next(((label, b) for label, b in blocks if label in known), None)
    if found is None:
        if any(label in _PUBLIC_TYPES for label in labels):
            raise KeyLoadError(f"{where} is a public key; signing needs the private .key file")
        if "CERTIFICATE" in labels:
            raise KeyLoadError(f"{where} is a certificate; signing needs the private .key file")
        if "OPENSSH PRIVATE KEY" in labels:
            raise KeyLoadError(
                f"{where} is an OpenSSH key; convert it with 'ssh-keygen -p -m PKCS8 -f FILE'"
            )
        raise KeyLoadError(f"{where} is not a PEM private key")
    label, block = found
    encrypted = label.startswith("ENCRYPTED") or b"Proc-Type: 4,ENCRYPTED" in block
    secret = (password if password is not None else _resolve_password(where)) if encrypted else None
    try:
        if label in COSIGN_PEM_TYPES:
            der = decrypt_cosign_key(block, secret or b"", where, _wrong_passphrase)
            key = _checked(serialization.load_der_private_key(der, None), where)
        else:
            key = _checked(serialization.load_pem_private_key(block, secret), where)
    except ValueError as e:
        if secret is not None and "password" in str(e).lower():
            raise _wrong_passphrase(where) from e
        raise KeyLoadError(f"{where} holds a malformed or unsupported private key") from e
    except UnsupportedAlgorithm as e:
        raise KeyLoadError(f"{where} holds an unsupported private key") from e
    assert isinstance(key, PrivateKeyObject)
    return PrivateKey(key)


def _resolve_password(where: str) -> bytes:
    """The passphrase for an encrypted key when the caller gave none (see load_private_key)."""
    for name in (PASSWORD_ENV, COSIGN_PASSWORD_ENV):
        value = os.environ.get(name)
        if value is not None:  # set but empty is an empty passphrase, as in cosign
            return value.encode("utf-8")
    if sys.stdin is not None and sys.stdin.isatty():
        try:
            return getpass.getpass(f"Passphrase for {where}: ").encode("utf-8")
        except EOFError:
            pass
    raise KeyLoadError(
        f"{where} is encrypted and no passphrase was given; set {PASSWORD_ENV}",
        hint=f"{COSIGN_PASSWORD_ENV} is also read, for keys made with cosign",
    )


def _wrong_passphrase(where: str) -> KeyLoadError:
    hint = f"set {PASSWORD_ENV} to the passphrase the key was created with"
    return KeyLoadError(f"wrong passphrase for {where}", hint=hint)


KEY_FILE_FORMATS: tuple[str, ...] = ("pkcs8", "cosign")


def write_key_pair(
    prefix: str,
    key: PrivateKey,
    password: bytes | None,
    *,
    force: bool = False,
    key_format: str = "pkcs8",
) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (0600) and ``PREFIX.pub``.

    ``key_format`` ``pkcs8``: encrypted PKCS#8 unless password is None.
    ``cosign``: cosign's ``ENCRYPTED SIGSTORE PRIVATE KEY``, which ``cosign
    sign --key`` reads (it reads no other private-key format); always
    encrypted, with an empty passphrase when password is None, as cosign does.
    Both go to temporary files in the target directory and are then renamed,
    so a failure leaves no half-written pair. Existing files are kept unless
    ``force``. Raises UsageError.
    """
    if key_format not in KEY_FILE_FORMATS:
        raise UsageError(f"unknown key file format '{key_format}'; choose pkcs8 or cosign")
    key_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    if not force:
        for path in (key_path, pub_path):
            if path.exists():
                raise UsageError(f"{path} already exists; remove it or choose another prefix")
    private = (
        encrypt_cosign_key(key, password or b"") if key_format == "cosign" else key.to_pem(password)
    )
    contents = ((key_path, private, 0o600), (pub_path, key.public_key.pem, 0o644))
    temps: list[Path] = []
    try:
        key_path.parent.mkdir(parents=True, exist_ok=True)
        for path, data, mode in contents:
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            temps.append(Path(name))
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), mode)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temps[0], key_path)
        try:
            os.replace(temps[1], pub_path)
        except OSError:
            key_path.unlink(missing_ok=True)  # never leave a .key without its .pub
            raise
    except OSError as e:
        raise UsageError(f"cannot write {prefix}.key and {prefix}.pub: {e.strerror or e}") from e
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    return key_path, pub_path
