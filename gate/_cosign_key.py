"""cosign's own encrypted private-key format: ``ENCRYPTED SIGSTORE PRIVATE KEY``.

The PEM body is go-securesystemslib ``encrypted`` JSON: an scrypt-derived key
opens a NaCl secretbox holding the PKCS#8 DER. ``gate.keys`` reads these files
and re-exports ``encrypt_cosign_key``; nothing else imports this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING

import nacl.exceptions
import nacl.secret
from cryptography.hazmat.primitives import serialization

from gate.errors import KeyLoadError

if TYPE_CHECKING:
    from gate.keys import PrivateKey

# NOTE: cosign pkg/cosign/keys.go: the PEM labels it writes (SIGSTORE since v2) and reads.
COSIGN_PEM_TYPES = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
# NOTE: go-securesystemslib encrypted.Encrypt's scrypt cost, as cosign v2+ writes it.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 65536, 8, 1
_SCRYPT_MAX_MEMORY = 1 << 30  # a hostile key file must not make us allocate more


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    memory = 128 * r * (n + p + 2) + (1 << 20)  # hashlib refuses anything over maxmem
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=memory)


def decrypt_cosign_key(
    block: bytes,
    password: bytes,
    where: str,
    wrong_passphrase: Callable[[str], KeyLoadError],
) -> bytes:
    """PKCS#8 DER from cosign's PEM ``block``; raises KeyLoadError naming ``where``.

    ``wrong_passphrase`` makes the error for a passphrase that does not open
    the box, so it reads the same as for any other encrypted key.
    """
    try:
        body = b"".join(line.strip() for line in block.splitlines()[1:-1])
        doc = json.loads(base64.b64decode(body, validate=True))
        kdf, cipher = doc["kdf"], doc["cipher"]
        n, r, p = (int(kdf["params"][k]) for k in ("N", "r", "p"))
        salt, nonce, sealed = (
            base64.b64decode(text, validate=True)
            for text in (kdf["salt"], cipher["nonce"], doc["ciphertext"])
        )
        names = (kdf["name"], cipher["name"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise KeyLoadError(f"{where} is not a valid cosign encrypted key") from None
    if names != ("scrypt", "nacl/secretbox") or len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise KeyLoadError(f"{where} uses encryption other than scrypt + nacl/secretbox")
    memory = 128 * r * n
    if n < 2 or n & (n - 1) or r < 1 or not 0 < p <= 16 or memory > _SCRYPT_MAX_MEMORY:
        raise KeyLoadError(f"{where} uses unsupported scrypt parameters N={n} r={r} p={p}")
    try:
        return nacl.secret.SecretBox(_scrypt(password, salt, n, r, p)).decrypt(sealed, nonce)
    except nacl.exceptions.CryptoError as e:
        raise wrong_passphrase(where) from e


def encrypt_cosign_key(key: PrivateKey, password: bytes) -> bytes:
    """``key`` as cosign writes ``cosign.key``: PEM ``ENCRYPTED SIGSTORE PRIVATE KEY``.

    Empty passwords are allowed, as in cosign. Used for migration and tests.
    """
    der = key.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt, nonce = secrets.token_bytes(32), secrets.token_bytes(nacl.secret.SecretBox.NONCE_SIZE)
    box = nacl.secret.SecretBox(_scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P))

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    # Field order and spacing as Go's json.Marshal of go-securesystemslib's struct.
    doc = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": _SCRYPT_N, "r": _SCRYPT_R, "p": _SCRYPT_P},
            "salt": b64(salt),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
        "ciphertext": b64(box.encrypt(der, nonce).ciphertext),
    }
    body = base64.b64encode(json.dumps(doc, separators=(",", ":")).encode("utf-8"))
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]  # as Go's pem.Encode
    begin, end = (f"-----{word} {COSIGN_PEM_TYPES[0]}-----".encode() for word in ("BEGIN", "END"))
    return b"\n".join([begin, *lines, end, b""])
