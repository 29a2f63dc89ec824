"""Cipher contexts kept per key, so that a session's many small operations pay the key schedule once.

A secure channel session (SCP02, SCP03) or an SCP80 key set runs many short ECB, CBC and MAC operations under
the same few keys; building a ``cryptography`` cipher context per call costs more than the operation itself.
:class:`BlockEngine` keeps, per key, one ECB encryptor and decryptor and one CBC encryptor and decryptor that are
never finalised, and runs CBC with any IV on them:

- CBC encryption: the context's chaining value is the last ciphertext block it produced (``C``); xoring the first
  plaintext block with ``C ^ IV`` makes the context compute ``E(P1 ^ IV)``, the CBC output for that IV;
- CBC decryption: the context xors the first output block with the last ciphertext block it was given; xoring it
  again with that block and the IV gives ``D(C1) ^ IV``;
- AES-CMAC (NIST SP 800-38B): one ``cryptography`` CMAC context per key, never finalised, is copied for each MAC
  (a copy costs less than the key schedule and the subkeys); for a 64-bit block cipher the subkeys K1, K2 are
  computed once and the MAC is the last block of the CBC encryption (IV zero) of the message whose last block was
  xored with K1 (complete) or padded and xored with K2.

Engines live in a small cache per thread (``threading.local``), keyed by algorithm and key value (contexts are
stateful and must never be shared between threads; a thread's engines end with it). The outputs are exactly those
of fresh contexts (tests/crypto/test_block_engine.py and the vectors check them).
"""

from __future__ import annotations

import threading
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

__all__ = ["BlockEngine", "engine", "retail_engines"]

_CACHE_SIZE = 64
"""Engines kept per thread and table (AES, 3DES, retail pairs), the oldest dropped first: a few sessions' keys.
Every thread keeps its own, so the bound is per thread; small, since keys stay in memory while cached."""


def _shift(block: bytes, rb: int) -> bytes:
    """One step of the CMAC subkey generation (SP 800-38B, 6.1)."""
    value = int.from_bytes(block, "big") << 1
    size = len(block)
    if value >> (8 * size):
        value ^= rb
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "big")


class BlockEngine:
    """ECB, CBC (any IV) and CMAC under one key, on contexts kept open (see the module docstring)."""

    __slots__ = (
        "_algorithm",
        "_cbc_dec",
        "_cbc_enc",
        "_cmac",
        "_dec_last",
        "_ecb_dec",
        "_ecb_enc",
        "_enc_last",
        "_k1",
        "_k2",
    )

    def __init__(self, algorithm: Any) -> None:
        self._algorithm = algorithm
        size = algorithm.block_size // 8
        zero = bytes(size)
        self._ecb_enc: Any = None  # each context made at its first use: a key used once (a fleet card's) pays
        self._ecb_dec: Any = None  # only the key schedules of what it runs
        self._cbc_enc: Any = None
        self._enc_last = zero
        self._cbc_dec: Any = None
        self._dec_last = zero
        self._k1 = self._k2 = b""
        self._cmac: CMAC | None = None

    @property
    def block_size(self) -> int:
        return len(self._enc_last)

    def check_iv(self, iv: bytes) -> None:
        if len(iv) != len(self._enc_last):
            raise ValueError(f"Invalid IV size ({len(iv)}) for CBC.")

    def ecb_encrypt(self, data: bytes) -> bytes:
        if self._ecb_enc is None:
            self._ecb_enc = Cipher(self._algorithm, modes.ECB()).encryptor()  # noqa: S305 (the protocols use ECB)
        return self._ecb_enc.update(data)  # type: ignore[no-any-return]

    def _cbc_encryptor(self) -> Any:
        if self._cbc_enc is None:
            self._cbc_enc = Cipher(self._algorithm, modes.CBC(bytes(len(self._enc_last)))).encryptor()
        return self._cbc_enc

    def ecb_decrypt(self, data: bytes) -> bytes:
        if self._ecb_dec is None:
            self._ecb_dec = Cipher(self._algorithm, modes.ECB()).decryptor()  # noqa: S305
        return self._ecb_dec.update(data)  # type: ignore[no-any-return]

    def cbc_encrypt(self, data: bytes, iv: bytes) -> bytes:
        """CBC encryption of whole blocks with ``iv``."""
        if not data:
            return b""
        size = len(self._enc_last)
        mask = int.from_bytes(iv, "big") ^ int.from_bytes(self._enc_last, "big")
        first = (int.from_bytes(data[:size], "big") ^ mask).to_bytes(size, "big")
        out: bytes = self._cbc_encryptor().update(first + data[size:] if len(data) > size else first)
        self._enc_last = out[-size:]
        return out

    def cbc_decrypt(self, data: bytes, iv: bytes) -> bytes:
        """CBC decryption of whole blocks with ``iv``."""
        if not data:
            return b""
        if self._cbc_dec is None:
            self._cbc_dec = Cipher(self._algorithm, modes.CBC(bytes(len(self._enc_last)))).decryptor()
        size = len(self._enc_last)
        out: bytes = self._cbc_dec.update(data)
        mask = int.from_bytes(self._dec_last, "big") ^ int.from_bytes(iv, "big")
        self._dec_last = data[-size:]
        return (int.from_bytes(out[:size], "big") ^ mask).to_bytes(size, "big") + out[size:]

    def cbc_mac(self, data: bytes, iv: bytes) -> bytes:
        """The last block of the CBC encryption of ``data`` (whole blocks) with ``iv``."""
        return self.cbc_encrypt(data, iv)[-len(self._enc_last) :]

    def cmac(self, data: bytes) -> bytes:
        """CMAC (NIST SP 800-38B), the full tag. AES: a copy of the key's CMAC context, fed and finalised. 64-bit
        blocks: CBC-MAC with IV zero, the last block xored with K1 (complete) or padded with 80 00.. and with K2."""
        size = len(self._enc_last)
        if size == 16:
            if self._cmac is None:
                self._cmac = CMAC(self._algorithm)
            mac = self._cmac.copy()
            mac.update(data)
            return mac.finalize()
        if not self._k1:
            rb = 0x1B  # R64 (SP 800-38B, 5.3): 64-bit blocks only come here
            self._k1 = _shift(self.ecb_encrypt(bytes(size)), rb)
            self._k2 = _shift(self._k1, rb)
        n = len(data)
        rest = n % size
        if n and not rest:
            cut = n - size
            tail = int.from_bytes(data[cut:], "big") ^ int.from_bytes(self._k1, "big")
        else:
            cut = n - rest
            padded = data[cut:] + b"\x80" + bytes(size - rest - 1)
            tail = int.from_bytes(padded, "big") ^ int.from_bytes(self._k2, "big")
        previous = int.from_bytes(self._enc_last, "big")
        if cut:
            first = (int.from_bytes(data[:size], "big") ^ previous).to_bytes(size, "big")
            message = first + data[size:cut] + tail.to_bytes(size, "big")
        else:
            message = (tail ^ previous).to_bytes(size, "big")
        out: bytes = self._cbc_encryptor().update(message)
        self._enc_last = tag = out[-size:]
        return tag


class _Engines(threading.local):
    """The calling thread's engines by key, one table per algorithm (the oldest dropped first past _CACHE_SIZE)."""

    def __init__(self) -> None:
        self.aes: dict[bytes, BlockEngine] = {}
        self.des3: dict[bytes, BlockEngine] = {}
        self.retail: dict[bytes, tuple[BlockEngine, BlockEngine]] = {}


_engines = _Engines()


def engine(kind: str, key: bytes) -> BlockEngine:
    """The calling thread's engine for ``key``: ``kind`` "aes", or "des3" (a 24-byte 3DES key, or 16 bytes for
    K1 K2 K1)."""
    table = _engines.aes if kind == "aes" else _engines.des3
    found = table.get(key)
    if found is not None:
        return found
    made = BlockEngine(algorithms.AES(key) if kind == "aes" else TripleDES(key + key[:8] if len(key) == 16 else key))
    if len(table) >= _CACHE_SIZE:
        del table[next(iter(table))]
    table[key] = made
    return made


def retail_engines(key: bytes) -> tuple[BlockEngine, BlockEngine]:
    """The calling thread's engines of the ISO 9797-1 retail MAC under the 16-byte ``key`` (K1 K2): single DES
    under K1 (as 3DES K1 K1 K1) for the chain, 3DES K1 K2 K1 for the last block; one lookup per MAC."""
    table = _engines.retail
    found = table.get(key)
    if found is None:
        found = (engine("des3", key[:8] * 3), engine("des3", key + key[:8]))
        if len(table) >= _CACHE_SIZE:
            del table[next(iter(table))]
        table[key] = found
    return found
