"""How a message body is stored: as it is, zstd-compressed, AES-GCM-encrypted.

Compression comes before encryption (ciphertext does not compress). The
stored row keeps flags saying what was done, so that turning compression or
encryption on or off later still reads every older row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pigeon.errors import MissingPackage
from pigeon.storage.crypto import BodyCipher, WrongKey

if TYPE_CHECKING:
    import zstandard

COMPRESSED = 1
ENCRYPTED = 2
# zstd level 3 is the library's default: most of the ratio for a fraction of
# the time of higher levels, which matters on the single writer thread.
_ZSTD_LEVEL = 3


class BodyCodec:
    def __init__(
        self, *, compress_threshold: int | None = None, encryption_key: bytes | None = None
    ) -> None:
        self.compress_threshold = compress_threshold
        self.cipher = BodyCipher(encryption_key) if encryption_key is not None else None
        self._zstd: zstandard.ZstdCompressor | None = None
        self._unzstd: zstandard.ZstdDecompressor | None = None
        if compress_threshold is not None:
            self._load_zstd()
        # Bodies are stored as they are: encode() would return (0, body).
        self.plain = compress_threshold is None and encryption_key is None

    def _load_zstd(self) -> None:
        try:
            import zstandard
        except ImportError:
            raise MissingPackage("compress_threshold", "zstandard", "storage") from None
        self._zstd = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
        self._unzstd = zstandard.ZstdDecompressor()

    def encode(self, body: bytes, identity: bytes) -> tuple[int, bytes]:
        """The flags and stored bytes of ``body``; called on the writer thread only."""
        flags = 0
        if self._zstd is not None and len(body) > (self.compress_threshold or 0):
            packed = self._zstd.compress(body)
            # Incompressible bodies (already compressed, encrypted) are kept
            # as they are: no point paying decompression for a larger row.
            if len(packed) < len(body):
                body, flags = packed, COMPRESSED
        if self.cipher is not None:
            body = self.cipher.encrypt(body, identity)
            flags |= ENCRYPTED
        return flags, body

    def decode(self, flags: int, stored: bytes, identity: bytes) -> bytes:
        """The body; ValueError when the stored bytes cannot be turned back into one."""
        if flags & ~(COMPRESSED | ENCRYPTED):
            raise ValueError(f"unknown body flags {flags}")
        body = stored
        if flags & ENCRYPTED:
            if self.cipher is None:
                raise WrongKey("the data folder holds encrypted bodies and no key was given")
            body = self.cipher.decrypt(body, identity)
        if flags & COMPRESSED:
            if self._unzstd is None:
                self._load_zstd()
            assert self._unzstd is not None
            try:
                # One-shot decompression of a frame written with its content
                # size (the compressor's default), so the output is bounded.
                body = self._unzstd.decompress(body)
            except Exception as exc:  # zstandard.ZstdError is not a ValueError
                raise ValueError(f"zstd: {exc}") from exc
        return body
