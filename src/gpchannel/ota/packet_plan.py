"""What securing or reading an SCP80 packet needs for one SPI / KIc / KID / key set, resolved once.

A packet stream uses the same few SPI, KIc, KID and key sets over and over; :func:`command_plan` and
:func:`response_plan` resolve each combination once (algorithms and their refusals: ETSI TS 102 225 5.1.2 and
5.1.3, :mod:`gpchannel.ota.algorithms`) into a :class:`PacketPlan`: the RC/CC length, the cipher block, the clear
header bytes (CHL SPI KIc KID) and the functions that compute the RC/CC and cipher, which take the key set at each
call. A plan holds no key: it is cached by the identities of the SPI, KIc and KID objects (kept alive with it)
and by what of the key set decides it: its bound algorithms, CMAC length, single-DES allowance and the lengths of
its keys, never their values (a card builds a new key set object for each packet, and a fleet's cards differ
only by their key values: all of them share one plan).

The functions are the ones of :mod:`gpchannel.ota.algorithms` (``compute_check``, ``encrypt``, ``decrypt``), with
a shorter path for the common case of AES keys given as bytes: the block engine of the key
(:mod:`gpchannel.crypto.block_engine`) is called directly, the lengths being right by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gpchannel.crypto.block_engine import engine
from gpchannel.ota.algorithms import (
    Scp80KeySet,
    compute_check,
    decrypt,
    encrypt,
    key_shape,
    resolve_check,
    resolve_cipher,
)
from gpchannel.ota.spi import CipherAlgorithm, Kic, Kid, MacAlgorithm, RcAlgorithm, Spi

__all__ = ["PacketPlan", "command_plan", "response_plan"]

Transform = Callable[[Scp80KeySet, bytes], bytes]
_ZERO16 = bytes(16)
_PLANS_MAX = 256


@dataclass(frozen=True, slots=True)
class PacketPlan:
    """One resolved combination (see the module docstring). ``block`` is the cipher block size, 0 when the
    packet is not ciphered; ``header`` is CHL (or RHL) SPI KIc KID for a command, RHL for a response."""

    check_alg: MacAlgorithm | RcAlgorithm | None
    check_len: int
    cipher: CipherAlgorithm | None
    block: int
    header: bytes
    check: Transform
    encrypt: Transform
    decrypt: Transform


def _no_check(keyset: Scp80KeySet, data: bytes) -> bytes:
    return b""


def _aes_cmac(keyset: Scp80KeySet, data: bytes) -> bytes:
    key = keyset.kid_key
    tag = engine("aes", key).cmac(data) if isinstance(key, bytes) else key.cmac(data)
    return tag[: keyset.cmac_length]


def _aes_cbc_encrypt(keyset: Scp80KeySet, data: bytes) -> bytes:
    key = keyset.kic_key
    if isinstance(key, bytes):
        return engine("aes", key).cbc_encrypt(data, _ZERO16)
    return encrypt(CipherAlgorithm.AES_CBC, key, data)


def _aes_cbc_decrypt(keyset: Scp80KeySet, data: bytes) -> bytes:
    key = keyset.kic_key
    if isinstance(key, bytes):
        return engine("aes", key).cbc_decrypt(data, _ZERO16)
    return decrypt(CipherAlgorithm.AES_CBC, key, data)


def _check_of(alg: MacAlgorithm | RcAlgorithm | None) -> Transform:
    if alg is None:
        return _no_check
    if alg is MacAlgorithm.AES_CMAC:
        return _aes_cmac
    return lambda keyset, data: compute_check(alg, keyset, data)


def _ciphers_of(cipher: CipherAlgorithm | None) -> tuple[Transform, Transform]:
    if cipher is CipherAlgorithm.AES_CBC:
        return _aes_cbc_encrypt, _aes_cbc_decrypt
    if cipher is None:
        return _no_check, _no_check  # never called: the plan says the packet is not ciphered
    return (lambda keyset, data: encrypt(cipher, keyset.kic_key, data)), (
        lambda keyset, data: decrypt(cipher, keyset.kic_key, data)
    )


def _make(spi: Spi, kic: Kic, kid: Kid, keyset: Scp80KeySet, response: bool) -> PacketPlan:
    integrity, ciphered = (spi.por_integrity, spi.por_ciphered) if response else (spi.integrity, spi.ciphered)
    check_alg, check_len = resolve_check(integrity, kid, keyset)
    cipher = resolve_cipher(kic, keyset) if ciphered else None
    if response:
        header = bytes((10 + check_len,))
    else:
        header = bytes((13 + check_len,)) + spi.to_bytes() + kic.to_bytes() + kid.to_bytes()
    enc, dec = _ciphers_of(cipher)
    block = cipher.block_size if cipher is not None else 0
    return PacketPlan(check_alg, check_len, cipher, block, header, _check_of(check_alg), enc, dec)


_PLANS: dict[tuple[object, ...], tuple[Spi, Kic, Kid, PacketPlan]] = {}


def _plan(spi: Spi, kic: Kic, kid: Kid, keyset: Scp80KeySet, response: bool) -> PacketPlan:
    slot = (
        id(spi),
        id(kic),
        id(kid),
        response,
        id(keyset.cipher),
        id(keyset.mac),
        id(keyset.rc),
        keyset.cmac_length,
        keyset.allow_single_des,
        key_shape(keyset.kic_key),
        key_shape(keyset.kid_key),
    )
    found = _PLANS.get(slot)
    if found is not None:
        return found[3]
    plan = _make(spi, kic, kid, keyset, response)
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    _PLANS[slot] = (spi, kic, kid, plan)  # the SPI, KIc and KID kept alive: their identities are never reused
    return plan


def command_plan(spi: Spi, kic: Kic, kid: Kid, keyset: Scp80KeySet) -> PacketPlan:
    """The plan of a command packet (SPI1: RC/CC/DS and ciphering); UnsupportedError when refused."""
    return _plan(spi, kic, kid, keyset, False)


def response_plan(spi: Spi, kic: Kic, kid: Kid, keyset: Scp80KeySet) -> PacketPlan:
    """The plan of a response packet (SPI2: its RC/CC/DS and ciphering, with the command's KIc / KID)."""
    return _plan(spi, kic, kid, keyset, True)
