"""SCP02 primitives shared by the host and the card (GlobalPlatform Card Specification 2.2.1, Appendix E).

Theory of operation (E.1 to E.5; GP 2.3.1 Appendix E for the card behaviour):

- The i parameter (Table E-1) is a bit map: b1 three keys (else one base key), b2 C-MAC on the unmodified APDU
  (else modified), b3 explicit initiation (else implicit), b4 ICV = MAC over the AID (else zero), b5 ICV
  encryption, b6 R-MAC support, b7 well-known pseudo-random card challenge. GP 2.1.1 E.1.1 and 2.2.1 E.1.1 define
  the options 04, 05, 0A, 0B, 14, 15, 1A, 1B, 44, 45, 54 and 55; each may also carry b6 (R-MAC support).
- Session keys (E.4.1): 3DES-CBC (IV zero) under the static key (the base key, or S-ENC / S-MAC / DEK) over
  ``constant(2) || sequence counter(2) || 00 x 12``, with the constants 0101 (C-MAC), 0102 (R-MAC), 0182 (ENC)
  and 0181 (DEK).
- Explicit initiation (E.1.2.1): INITIALIZE UPDATE answers the sequence counter, a 6-byte card challenge (random,
  or pseudo-random: the retail MAC of the padded AID under the C-MAC session key, E.4.2.3) and the card
  cryptogram; both cryptograms are full 3DES MACs with the ENC session key (E.4.2). EXTERNAL AUTHENTICATE is
  C-MACed with a zero ICV; its MAC is the ICV of the next C-MAC and of the first R-MAC, also when R-MAC starts
  later with BEGIN R-MAC SESSION (E.3.2; said explicitly in GP 2.3.1 E.3.2).
- Implicit initiation (E.1.2.2, E.3.3): the first C-MACed command opens the session; its ICV is the retail MAC of
  the padded AID under the C-MAC session key (the first R-MAC ICV likewise under the R-MAC key).
- C-MAC (E.4.4): retail MAC (ISO 9797-1 algorithm 3, B.1.2.2) with the C-MAC session key over the padded
  command (header with logical channel 0 and, for the modified APDU, the secure messaging bit and Lc + 8) and
  the clear data; Le is not covered. Every ICV but the first of a session is DES-ECB encrypted with the left half
  of the C-MAC key when b5 is set (E.3.4).
- C-DECRYPTION (E.4.6): 3DES-CBC, IV zero, with the ENC session key over the data, always padded 80 00..; the
  MAC covers the clear data. Not available with implicit initiation.
- R-MAC (E.4.5): retail MAC with the R-MAC session key over the stripped command (CLA without secure messaging
  and channel, Lc always present) || Li || response data || SW, padded; each R-MAC is the next ICV.
- Sensitive data (E.4.7): 3DES-ECB (explicit) or 3DES-CBC with IV zero (implicit) under the DEK session key.

This module has the pure functions; :mod:`gpchannel.scp.scp02_host` and :mod:`gpchannel.scp.scp02_card` hold the
two state machines, which import this module (never the reverse: no import cycle).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_for_channel
from gpchannel.crypto.block_engine import BlockEngine, engine, retail_engines
from gpchannel.crypto.ciphers import (
    des3_cbc_decrypt,
    des3_cbc_encrypt,
    des3_cbc_mac,
    des3_ecb_decrypt,
    des3_ecb_encrypt,
    expand_des_key,
    retail_mac,
)
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.crypto.padding import pad80, unpad80
from gpchannel.errors import DecodeError, UnsupportedError
from gpchannel.scp.common import SecurityLevel, plain_cla

__all__ = [
    "DEFAULT_I_PARAM",
    "INS_BEGIN_R_MAC_SESSION",
    "INS_END_R_MAC_SESSION",
    "I_EXPLICIT",
    "I_ICV_AID",
    "I_ICV_ENCRYPTION",
    "I_PARAMS",
    "I_PSEUDO_RANDOM",
    "I_R_MAC",
    "I_THREE_KEYS",
    "I_UNMODIFIED_APDU",
    "LEVELS",
    "MAX_SEQUENCE_COUNTER",
    "CommandMacChain",
    "ResponseMacChain",
    "Scp02Constant",
    "Scp02SessionKeys",
    "aid_icv",
    "card_cryptogram",
    "check_i_param",
    "check_keys",
    "command_mac_input",
    "decrypt_command_data",
    "decrypt_sensitive_data",
    "derive_session_key",
    "derive_session_keys",
    "encrypt_command_data",
    "encrypt_icv",
    "encrypt_sensitive_data",
    "host_cryptogram",
    "is_explicit",
    "plain_cla",
    "pseudo_random_card_challenge",
    "r_mac_key",
    "response_mac_input",
]

I_THREE_KEYS = 0x01
"""i b1: three Secure Channel keys (ENC, MAC, DEK); clear: one base key (Table E-1)."""
I_UNMODIFIED_APDU = 0x02
"""i b2: C-MAC on the unmodified APDU; clear: on the modified APDU (E.4.4)."""
I_EXPLICIT = 0x04
"""i b3: explicit initiation (INITIALIZE UPDATE, EXTERNAL AUTHENTICATE); clear: implicit."""
I_ICV_AID = 0x08
"""i b4: the first ICV is a MAC over the AID (E.3.3); clear: zero (E.3.2)."""
I_ICV_ENCRYPTION = 0x10
"""i b5: every ICV but the first is encrypted (E.3.4)."""
I_R_MAC = 0x20
"""i b6: R-MAC support (GP 2.2.1 Table E-1; absent from GP 2.1.1, whose cards still offer R-MAC levels)."""
I_PSEUDO_RANDOM = 0x40
"""i b7: the well-known pseudo-random card challenge (E.4.2.3)."""

I_PARAMS = frozenset(
    base | rmac
    for base in (0x04, 0x05, 0x0A, 0x0B, 0x14, 0x15, 0x1A, 0x1B, 0x44, 0x45, 0x54, 0x55)
    for rmac in (0, I_R_MAC)
)
"""The i parameters gpchannel implements: the options of GP 2.1.1 / 2.2.1 E.1.1, each with or without b6."""

DEFAULT_I_PARAM = 0x55
"""The host's i when the caller names none: explicit, 3 keys, ICV encryption, pseudo-random challenge."""

INS_BEGIN_R_MAC_SESSION = 0x7A
INS_END_R_MAC_SESSION = 0x78

LEVELS = frozenset(SecurityLevel(v) for v in (0x00, 0x01, 0x03, 0x10, 0x11, 0x13))
"""The security levels of SCP02 (Table E-11); 33 and the other R-ENCRYPTION levels are RFU."""

MAX_SEQUENCE_COUNTER = 0xFFFF
"""The 2-byte sequence counter never wraps to zero (E.1.2)."""

_ZERO8 = bytes(8)


class Scp02Constant(enum.IntEnum):
    """Session-key derivation constants (E.4.1)."""

    C_MAC = 0x0101
    R_MAC = 0x0102
    DEK = 0x0181
    ENC = 0x0182


def check_i_param(i_param: int) -> None:
    """Raise UnsupportedError unless ``i_param`` is an SCP02 option gpchannel implements (Table E-1)."""
    if i_param not in I_PARAMS:
        raise UnsupportedError(
            f"SCP02 i={i_param:02X} is not supported; use 04, 05, 0A, 0B, 14, 15, 1A, 1B, 44, 45, 54 or 55 "
            "(optionally with b6, 20, for R-MAC support)"
        )


def is_explicit(i_param: int) -> bool:
    """Whether i selects explicit initiation (b3)."""
    return bool(i_param & I_EXPLICIT)


def check_keys(keys: StaticKeys) -> None:
    """SCP02 keys are double-length 3DES keys (Tables E-2 and E-3)."""
    if keys.key_type is not KeyType.DES3:
        raise UnsupportedError(f"SCP02 needs a DES3 key set, got {keys.key_type.name}")
    if keys.key_length != 16:
        raise UnsupportedError(f"SCP02 keys are 16 bytes (double-length DES), got {keys.key_length}")


def derive_session_key(static_key: bytes, constant: int, sequence_counter: int) -> bytes:
    """One session key: 3DES-CBC (IV zero) of ``constant || counter || 00 x 12`` under the static key (E.4.1)."""
    block = constant.to_bytes(2, "big") + sequence_counter.to_bytes(2, "big") + bytes(12)
    return des3_cbc_encrypt(static_key, block)


@dataclass(frozen=True, slots=True)
class Scp02SessionKeys:
    """The session keys of one SCP02 session, derived from ``sequence_counter`` (values kept out of reprs).

    The R-MAC key is derived here from the same counter, which is right when R-MAC starts with EXTERNAL
    AUTHENTICATE; a BEGIN R-MAC SESSION derives its own from the counter current then (E.4.1).
    """

    c_mac: bytes = field(repr=False)
    r_mac: bytes = field(repr=False)
    enc: bytes = field(repr=False)
    dek: bytes = field(repr=False)
    sequence_counter: int = 0


def _static(keys: StaticKeys, i_param: int) -> tuple[bytes, bytes, bytes]:
    """(ENC, MAC, DEK) static keys; with one base key (b1 clear) the base key is ``keys.enc`` for all three."""
    if i_param & I_THREE_KEYS:
        return keys.enc, keys.mac, keys.dek
    return keys.enc, keys.enc, keys.enc


def derive_session_keys(keys: StaticKeys, i_param: int, sequence_counter: int) -> Scp02SessionKeys:
    """All four session keys from the static keys and the sequence counter (E.4.1)."""
    enc, mac, dek = _static(keys, i_param)
    return Scp02SessionKeys(
        c_mac=derive_session_key(mac, Scp02Constant.C_MAC, sequence_counter),
        r_mac=derive_session_key(mac, Scp02Constant.R_MAC, sequence_counter),
        enc=derive_session_key(enc, Scp02Constant.ENC, sequence_counter),
        dek=derive_session_key(dek, Scp02Constant.DEK, sequence_counter),
        sequence_counter=sequence_counter,
    )


def r_mac_key(keys: StaticKeys, i_param: int, sequence_counter: int) -> bytes:
    """The R-MAC session key for an R-MAC session started at ``sequence_counter`` (E.4.1)."""
    return derive_session_key(_static(keys, i_param)[1], Scp02Constant.R_MAC, sequence_counter)


def card_cryptogram(enc_key: bytes, host_challenge: bytes, sequence_counter: int, card_challenge: bytes) -> bytes:
    """Full 3DES MAC (ICV zero) of ``host_challenge || counter || card_challenge`` padded to 24 bytes (E.4.2.1)."""
    return des3_cbc_mac(enc_key, pad80(host_challenge + sequence_counter.to_bytes(2, "big") + card_challenge))


def host_cryptogram(enc_key: bytes, host_challenge: bytes, sequence_counter: int, card_challenge: bytes) -> bytes:
    """Full 3DES MAC (ICV zero) of ``counter || card_challenge || host_challenge`` padded to 24 bytes (E.4.2.2)."""
    return des3_cbc_mac(enc_key, pad80(sequence_counter.to_bytes(2, "big") + card_challenge + host_challenge))


def pseudo_random_card_challenge(c_mac_key: bytes, aid: bytes) -> bytes:
    """The leftmost 6 bytes of the retail MAC (ICV zero, C-MAC session key) of the padded AID (E.4.2.3)."""
    return retail_mac(c_mac_key, pad80(aid))[:6]


def aid_icv(mac_key: bytes, aid: bytes) -> bytes:
    """The first ICV with implicit initiation: the retail MAC (ICV zero) of the padded AID (E.3.3)."""
    return retail_mac(mac_key, pad80(aid))


def encrypt_icv(c_mac_key: bytes, icv: bytes) -> bytes:
    """ICV encryption: single DES-ECB with the left half of the C-MAC session key (E.3.4)."""
    if len(icv) % 8:
        raise ValueError(f"data must be a multiple of 8 bytes, got {len(icv)}")
    if len(c_mac_key) == 16:  # a session key: the retail MAC's own single-DES engine (K1 K1 K1)
        return retail_engines(c_mac_key)[0].ecb_encrypt(icv)
    return engine("des3", c_mac_key[:8] * 3).ecb_encrypt(icv)  # des_ecb_encrypt of one block, one call less


def command_mac_input(command: CommandApdu, i_param: int) -> bytes:
    """The (unpadded) bytes the C-MAC covers for the plain ``command`` with its clear data (E.4.4).

    The logical channel is taken as 0. On the modified APDU (b2 clear) the CLA has the secure messaging bit and Lc
    counts the 8 MAC bytes (Lc 08 for a command without data); on the unmodified APDU (b2 set) the header is the
    plain one and Lc appears only with data, as in the command itself. Le is never covered.
    """
    base = cla_for_channel(plain_cla(command.cla), 0)
    data = command.data
    if i_param & I_UNMODIFIED_APDU:
        tail = bytes((len(data),)) + data if data else b""
        return bytes((base, command.ins, command.p1, command.p2)) + tail
    return bytes((base | 0x04, command.ins, command.p1, command.p2, len(data) + 8)) + data


def response_mac_input(command: CommandApdu, response: ResponseApdu) -> bytes:
    """The (unpadded) bytes the R-MAC covers (E.4.5).

    The stripped command (CLA without secure messaging, logical channel 0, Lc always present, clear data, no Le),
    then Li (length mod 256) and the data for a success or warning (9000, 61xx, 62xx, 63xx), or 00 for an error,
    then SW1 SW2.
    """
    cla = cla_for_channel(plain_cla(command.cla), 0)
    out = bytes((cla, command.ins, command.p1, command.p2, len(command.data) & 0xFF)) + command.data
    if _is_success(response.sw):
        out += bytes((len(response.data) & 0xFF,)) + response.data
    else:
        out += b"\x00"
    return out + response.sw.to_bytes(2, "big")


def _is_success(sw: int) -> bool:
    return sw == 0x9000 or (sw >> 8) in (0x61, 0x62, 0x63)


def _des3(key: bytes) -> BlockEngine:
    """The 3DES engine of a session key: 16 bytes go to the engine as they are (K1 K2 is K1 K2 K1), no copy made
    per command; 8 or 24 bytes as expand_des_key gives them."""
    return engine("des3", key if len(key) == 16 else expand_des_key(key))


def encrypt_command_data(enc_key: bytes, data: bytes) -> bytes:
    """C-DECRYPTION: 3DES-CBC, IV zero, with the ENC session key over the data padded 80 00.. (E.4.6)."""
    return _des3(enc_key).cbc_encrypt(pad80(data), _ZERO8)  # des3_cbc_encrypt


def decrypt_command_data(enc_key: bytes, data: bytes) -> bytes:
    """Undo :func:`encrypt_command_data`; raises DecodeError when the length or the padding is wrong."""
    if not data or len(data) % 8:
        raise DecodeError(f"encrypted command data must be a non-empty multiple of 8 bytes, got {len(data)}")
    return unpad80(_des3(enc_key).cbc_decrypt(data, _ZERO8), 8)  # des3_cbc_decrypt


def encrypt_sensitive_data(dek_key: bytes, data: bytes, *, explicit: bool) -> bytes:
    """Sensitive data (keys) under the DEK session key: 3DES-ECB (explicit), 3DES-CBC IV zero (implicit) (E.4.7).

    No padding is added: ``data`` must be a multiple of 8 bytes (ValueError otherwise).
    """
    if not data or len(data) % 8:
        raise ValueError(f"sensitive data must be a non-empty multiple of 8 bytes, got {len(data)}")
    return des3_ecb_encrypt(dek_key, data) if explicit else des3_cbc_encrypt(dek_key, data)


def decrypt_sensitive_data(dek_key: bytes, data: bytes, *, explicit: bool) -> bytes:
    """Undo :func:`encrypt_sensitive_data`; no padding is removed (E.4.7)."""
    if not data or len(data) % 8:
        raise ValueError(f"sensitive data must be a non-empty multiple of 8 bytes, got {len(data)}")
    return des3_ecb_decrypt(dek_key, data) if explicit else des3_cbc_decrypt(dek_key, data)


@dataclass(slots=True)
class CommandMacChain:
    """The C-MAC chain of a session: key, current ICV and whether ICVs after the first are encrypted (E.3, E.4.4).

    ``compute`` does not change the chain; ``advance`` makes a verified (or sent) C-MAC the next ICV.
    """

    key: bytes = field(repr=False)
    icv: bytes = field(default=_ZERO8, repr=False)
    encrypt: bool = False
    first: bool = True

    def compute(self, mac_input: bytes) -> bytes:
        icv = self.icv if self.first or not self.encrypt else encrypt_icv(self.key, self.icv)
        return retail_mac(self.key, pad80(mac_input), icv)

    def advance(self, mac: bytes) -> None:
        self.icv, self.first = mac, False


@dataclass(slots=True)
class ResponseMacChain:
    """The R-MAC chain of an R-MAC session: key and ICV (the previous R-MAC; never encrypted) (E.4.5).

    ``every_response`` is whether each response carries its R-MAC (EXTERNAL AUTHENTICATE P1 1x, BEGIN R-MAC
    SESSION P1 10) or only END R-MAC SESSION returns it (BEGIN R-MAC SESSION P1 00).
    """

    key: bytes = field(repr=False)
    icv: bytes = field(repr=False)
    every_response: bool = True

    def compute(self, command: CommandApdu, response: ResponseApdu) -> bytes:
        return retail_mac(self.key, pad80(response_mac_input(command, response)), self.icv)

    def advance(self, mac: bytes) -> None:
        self.icv = mac
