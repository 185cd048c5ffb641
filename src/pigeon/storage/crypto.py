"""Encryption at rest of stored message bodies: AES-GCM (PyPI ``cryptography``).

Each body gets a fresh random 96-bit nonce, stored in front of the ciphertext;
with random nonces one key is good for about 2**32 encryptions before the
chance of a repeated nonce matters (NIST SP 800-38D §8.3), far beyond what
one broker writes between key rotations. The row's identity (vhost, queue,
seq) is the associated data, so a ciphertext copied onto another row does not
decrypt there.

The store keeps a *key check* (a known text encrypted with the key) so that
a wrong key is reported at load as :class:`WrongKey`, not discovered as a
flood of undecryptable rows.
"""

from __future__ import annotations

import os

from pigeon.errors import MissingPackage

NONCE_SIZE = 12
_KEY_CHECK_TEXT = b"pigeon key check v1"


class WrongKey(Exception):
    """The encryption key does not open what the data folder holds."""


class BodyCipher:
    def __init__(self, key: bytes) -> None:
        if len(key) not in (16, 24, 32):
            raise ValueError(f"an AES key has 16, 24 or 32 bytes, not {len(key)}")
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:
            raise MissingPackage("encryption_key_file", "cryptography", "storage") from None
        self._aead = AESGCM(key)

    def encrypt(self, data: bytes, associated: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, data, associated)

    def decrypt(self, data: bytes, associated: bytes) -> bytes:
        """Raise ValueError when ``data`` was not encrypted with this key for this row."""
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(data[:NONCE_SIZE], data[NONCE_SIZE:], associated)
        except InvalidTag as exc:
            raise ValueError("authentication failed (wrong key or damaged data)") from exc

    def key_check(self) -> bytes:
        return self.encrypt(_KEY_CHECK_TEXT, b"")

    def verify(self, key_check: bytes) -> None:
        try:
            ok = self.decrypt(key_check, b"") == _KEY_CHECK_TEXT
        except ValueError:
            ok = False
        if not ok:
            raise WrongKey(
                "the encryption key does not match the key this data folder was written with"
            )
