"""SCP01: Secure Channel Protocol '01' (GlobalPlatform Card Specification 2.1.1, Appendix D).

Theory of operation (the states are those of :mod:`gpchannel.scp.common`):

- Three static double-length 3DES keys: ENC, MAC and DEK (D.2). Explicit initiation only (D.1.1), with
  i = 05 (ICV not encrypted) or i = 15 (each ICV but the first is 3DES-ECB encrypted with S-MAC, D.1.5).
- INITIALIZE UPDATE (D.4.1): ``80 50 KVN KeyId 08 host_challenge 00``; the card answers KDD(10) || KVN || 01 ||
  card_challenge(8) || card_cryptogram(8). Session keys S-ENC and S-MAC are 3DES-ECB(static key, derivation data)
  with derivation data = card_challenge[4..7] || host_challenge[0..3] || card_challenge[0..3] ||
  host_challenge[4..7] (D.3.1). The DEK is used as is.
- Cryptograms (D.3.2): full 3DES CBC-MAC with S-ENC, ICV zero, over host || card (card cryptogram) or
  card || host (host cryptogram), each followed by the padding block 80 00 .. 00.
- C-MAC (D.3.3): full 3DES CBC-MAC with S-MAC over the modified header (CLA with the secure messaging bit and
  logical channel 0, Lc + 8) and the clear data, padded 80 00..; Le is not covered. The ICV is zero for EXTERNAL
  AUTHENTICATE and the previous C-MAC afterwards (encrypted first when i = 15).
- C-DECRYPTION (D.3.4): MAC first, then 3DES-CBC with S-ENC and a zero IV over Lc(clear) || data, padded with
  80 00.. only when that is not already a multiple of 8. Commands without data are not encrypted.
- Security levels 00, 01 and 03 (Table D-8). There is no R-MAC: responses pass unchanged.
- Sensitive data (keys) are 3DES-ECB encrypted with the static DEK (D.3.5).

SCP01 defines a 5-byte header with a one-byte Lc (D.3.3), so only short APDUs can be secured; a command that would
outgrow 255 data bytes once wrapped is refused before any state changes.

This module has the pure functions; :mod:`gpchannel.scp.scp01_host` and :mod:`gpchannel.scp.scp01_card` hold the
two state machines, which import this module (never the reverse: no import cycle).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu, cla_for_channel, cla_with_secure_messaging
from gpchannel.crypto.ciphers import (
    des3_cbc_decrypt,
    des3_cbc_encrypt,
    des3_cbc_mac,
    des3_ecb_encrypt,
)
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.crypto.padding import pad80
from gpchannel.errors import DecodeError, UnsupportedError
from gpchannel.scp.common import SecurityLevel

__all__ = [
    "I_ICV_ENCRYPTION",
    "I_PARAMS",
    "LEVELS",
    "MAC_LENGTH",
    "SHORT_MAX",
    "Scp01SessionKeys",
    "card_cryptogram",
    "check_i_param",
    "check_keys",
    "command_mac",
    "decrypt_command_data",
    "derive_session_keys",
    "encrypt_command_data",
    "encrypt_sensitive_data",
    "host_cryptogram",
    "next_icv",
]

I_PARAMS = frozenset({0x05, 0x15})
"""The i parameters of SCP01 (D.1.1)."""

I_ICV_ENCRYPTION = 0x10
"""i b5: every ICV but the first is 3DES-ECB encrypted with S-MAC (i = 15, D.1.5)."""

LEVELS = frozenset({SecurityLevel.NONE, SecurityLevel.C_MAC, SecurityLevel.C_MAC | SecurityLevel.C_DECRYPTION})
"""The security levels of SCP01 (Table D-8)."""

MAC_LENGTH = 8
"""The C-MAC is 8 bytes (D.3.3)."""
SHORT_MAX = 255
"""A short APDU carries at most 255 data bytes: SCP01 secures short APDUs only (D.3.3)."""
_PAD_BLOCK = b"\x80" + bytes(7)


@dataclass(frozen=True, slots=True)
class Scp01SessionKeys:
    """S-ENC and S-MAC of one session (D.3.1); never shown in a repr."""

    s_enc: bytes = field(repr=False)
    s_mac: bytes = field(repr=False)


def check_i_param(i_param: int) -> None:
    """UnsupportedError unless ``i_param`` is 05 or 15 (D.1.1)."""
    if i_param not in I_PARAMS:
        raise UnsupportedError(f"SCP01 supports i=05 and i=15 (D.1.1), got i={i_param:02X}")


def check_keys(keys: StaticKeys) -> None:
    """UnsupportedError unless ``keys`` are double-length 3DES keys, as D.2 (Table D-1) requires."""
    if keys.key_type is not KeyType.DES3 or keys.key_length != 16 or len(keys.mac) != 16 or len(keys.dek) != 16:
        raise UnsupportedError(
            f"SCP01 needs 16-byte 3DES keys (D.2), got {keys.key_type.name} keys of {keys.key_length} bytes"
        )


def derive_session_keys(keys: StaticKeys, host_challenge: bytes, card_challenge: bytes) -> Scp01SessionKeys:
    """S-ENC and S-MAC from the static keys and both challenges (D.3.1, Figures D-3 to D-5)."""
    if len(host_challenge) != 8 or len(card_challenge) != 8:
        raise ValueError("SCP01 challenges are 8 bytes each")
    data = card_challenge[4:8] + host_challenge[0:4] + card_challenge[0:4] + host_challenge[4:8]
    return Scp01SessionKeys(des3_ecb_encrypt(keys.enc, data), des3_ecb_encrypt(keys.mac, data))


def card_cryptogram(s_enc: bytes, host_challenge: bytes, card_challenge: bytes) -> bytes:
    """The card cryptogram: full 3DES MAC over host || card || 80 00.. with S-ENC, ICV zero (D.3.2.1)."""
    return des3_cbc_mac(s_enc, host_challenge + card_challenge + _PAD_BLOCK)


def host_cryptogram(s_enc: bytes, host_challenge: bytes, card_challenge: bytes) -> bytes:
    """The host cryptogram: full 3DES MAC over card || host || 80 00.. with S-ENC, ICV zero (D.3.2.2)."""
    return des3_cbc_mac(s_enc, card_challenge + host_challenge + _PAD_BLOCK)


def next_icv(s_mac: bytes, previous_mac: bytes, i_param: int) -> bytes:
    """The ICV of the next C-MAC: the previous C-MAC, 3DES-ECB encrypted with S-MAC when i = 15 (D.3.3, D.1.5)."""
    if i_param & I_ICV_ENCRYPTION:
        return des3_ecb_encrypt(s_mac, previous_mac)
    return previous_mac


def command_mac(s_mac: bytes, icv: bytes, command: CommandApdu, clear_data: bytes) -> bytes:
    """The C-MAC of ``command`` carrying ``clear_data`` (D.3.3).

    Covered: CLA with the secure messaging bit and logical channel 0, INS, P1, P2, Lc = len(clear_data) + 8, and
    the clear data, padded 80 00..; Le is not covered.
    """
    lc = len(clear_data) + MAC_LENGTH
    if lc > SHORT_MAX:
        raise ValueError(f"a C-MACed SCP01 command carries at most {SHORT_MAX - MAC_LENGTH} clear data bytes")
    cla = cla_for_channel(cla_with_secure_messaging(command.cla), 0)
    header = bytes((cla, command.ins, command.p1, command.p2, lc))
    return des3_cbc_mac(s_mac, pad80(header + clear_data), icv)


def encrypt_command_data(s_enc: bytes, data: bytes) -> bytes:
    """3DES-CBC (S-ENC, IV zero) over len(data) || data, padded 80 00.. unless already a multiple of 8 (D.3.4)."""
    if not 0 < len(data) <= 0xFF:
        raise ValueError(f"SCP01 encrypts 1 to 255 data bytes, got {len(data)}")
    block = bytes((len(data),)) + data
    if len(block) % 8:
        block = pad80(block)
    return des3_cbc_encrypt(s_enc, block)


def decrypt_command_data(s_enc: bytes, data: bytes) -> bytes:
    """Inverse of :func:`encrypt_command_data`; DecodeError when the length byte or the padding is wrong."""
    if not data or len(data) % 8:
        raise DecodeError(f"encrypted SCP01 data is a non-empty multiple of 8 bytes, got {len(data)}")
    block = des3_cbc_decrypt(s_enc, data)
    n = block[0]
    if n == 0 or 1 + n > len(block):
        raise DecodeError(f"the clear-text length byte {n:02X} does not fit {len(block) - 1} bytes", offset=0)
    rest = block[1 + n :]
    expected = b"" if (1 + n) % 8 == 0 else pad80(block[: 1 + n])[1 + n :]
    if rest != expected:
        raise DecodeError("the padding after the clear-text data is not 80 00..", offset=1 + n)
    return block[1 : 1 + n]


def encrypt_sensitive_data(dek: bytes, data: bytes) -> bytes:
    """Key data under the static DEK, 3DES-ECB, no padding (D.3.5)."""
    if not data or len(data) % 8:
        raise ValueError(f"SCP01 sensitive data must be a non-empty multiple of 8 bytes, got {len(data)}")
    return des3_ecb_encrypt(dek, data)
