"""SCP03 primitives shared by the host and the card (GlobalPlatform Amendment D v1.1.1; S16 from v1.2).

Theory of operation (Amendment D, 5 and 6.2):

- INITIALIZE UPDATE carries the host challenge; the card answers with its challenge (random, or pseudo-random
  from a 3-byte sequence counter and the invoking AID, 6.2.2.1) and the card cryptogram.
- Both sides derive S-ENC, S-MAC and S-RMAC from the static keys with the SP 800-108 KDF (4.1.5, 6.2.1) over
  ``host_challenge || card_challenge`` and compute the cryptograms with S-MAC (6.2.2.2, 6.2.2.3).
- EXTERNAL AUTHENTICATE is C-MACed with a zero chaining value (6.2.3). From then on every C-MAC is
  ``CMAC(S-MAC, chaining value || header || data)``; the full 16-byte CMAC is the next chaining value and its
  first 8 bytes (S16: 16) are the C-MAC (6.2.4). The R-MAC uses S-RMAC over the chaining value of the command
  it answers (6.2.5).
- An encryption counter (1 for the first command after EXTERNAL AUTHENTICATE, incremented for every command)
  gives the C-DECRYPTION ICV ``AES(S-ENC, counter block)`` and the R-ENCRYPTION ICV with the first byte of the
  block set to 80 (6.2.6, 6.2.7).
- Sensitive data (PUT KEY) is AES-CBC encrypted with IV 0 under the static Key-DEK (6.2.8).

Static keys held in a PKCS#11 token (:class:`Scp03KeyHandles`, :class:`gpchannel.crypto.ciphers.SymmetricKey`
handles) are accepted where the static keys are used: the KDF's PRF calls (session keys, pseudo-random card
challenge) and the DEK encryption of sensitive data then run in the token.

S16 mode (the i parameter with b1 set, from Amendment D v1.2, which is not in ../specs): 16-byte challenges,
cryptograms (L = 0080) and C-/R-MACs, as GlobalPlatformPro implements it.

This module has the pure functions; :mod:`gpchannel.scp.scp03_host` and :mod:`gpchannel.scp.scp03_card` hold the
two state machines, which import this module (never the reverse: no import cycle).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu, cla_for_channel, cla_with_secure_messaging
from gpchannel.crypto.block_engine import engine
from gpchannel.crypto.ciphers import (
    KeyMaterial,
    SymmetricKey,
    aes_cbc_decrypt,
    aes_cbc_encrypt,
    key_length,
)
from gpchannel.crypto.kdf import DerivationConstant, scp03_kdf
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.crypto.padding import pad80, unpad80
from gpchannel.errors import DecodeError, LocalProtocolError, UnsupportedError
from gpchannel.scp.common import SecurityLevel, plain_cla

__all__ = [
    "I_PSEUDO_RANDOM",
    "I_R_ENC",
    "I_R_MAC",
    "I_S16",
    "MAX_SEQUENCE_COUNTER",
    "Scp03KeyHandles",
    "Scp03SessionKeys",
    "allowed_levels",
    "card_challenge",
    "card_cryptogram",
    "check_i_param",
    "command_block",
    "command_icv",
    "command_mac_input",
    "compute_cmac",
    "decrypt_block_data",
    "decrypt_counted_data",
    "decrypt_sensitive_data",
    "derive_session_keys",
    "encrypt_block_data",
    "encrypt_counted_data",
    "encrypt_sensitive_data",
    "host_cryptogram",
    "is_success_sw",
    "lc_field",
    "mac_cla",
    "mac_length",
    "plain_cla",
    "response_block",
    "response_icv",
]

I_S16 = 0x01
"""i b1: S16 mode, 16-byte challenges, cryptograms and MACs (Amendment D v1.2)."""
I_PSEUDO_RANDOM = 0x10
"""i b5: pseudo-random card challenge with a 3-byte sequence counter (Table 5-1)."""
I_R_MAC = 0x20
"""i b6: R-MAC support (Table 5-1)."""
I_R_ENC = 0x40
"""i b7: R-ENCRYPTION support, only together with R-MAC (Table 5-1)."""

MAX_SEQUENCE_COUNTER = 0xFFFFFF
"""The 3-byte sequence counter's maximum; INITIALIZE UPDATE then fails with 6985 (6.2.2.1)."""

_VALID_I = frozenset(base | s16 for base in (0x00, 0x10, 0x20, 0x30, 0x60, 0x70) for s16 in (0, I_S16))
_LEVELS = (0x00, 0x01, 0x03, 0x11, 0x13, 0x33)


def check_i_param(i_param: int) -> None:
    """Raise :class:`UnsupportedError` unless ``i_param`` is 00, 10, 20, 30, 60 or 70, optionally | 01 (Table 5-1)."""
    if i_param not in _VALID_I:
        raise UnsupportedError(
            f"SCP03 i parameter {i_param:02X} is not supported (expected 00, 10, 20, 30, 60 or 70, optionally | 01)"
        )


def allowed_levels(i_param: int) -> frozenset[SecurityLevel]:
    """The EXTERNAL AUTHENTICATE security levels (Table 7-3) a card with this ``i`` can open.

    R-MAC levels (11, 13) need i b6 (R-MAC support); 33 needs R-ENCRYPTION support too (Table 5-1).
    """
    check_i_param(i_param)
    out = set()
    for value in _LEVELS:
        level = SecurityLevel(value)
        if SecurityLevel.R_MAC in level and not i_param & I_R_MAC:
            continue
        if SecurityLevel.R_ENCRYPTION in level and not i_param & I_R_ENC:
            continue
        out.add(level)
    return frozenset(out)


def mac_length(i_param: int) -> int:
    """Length of challenges, cryptograms and C-/R-MACs: 8, or 16 in S16 mode."""
    return 16 if i_param & I_S16 else 8


@dataclass(frozen=True, slots=True)
class Scp03SessionKeys:
    """S-ENC, S-MAC and S-RMAC of one session (Amendment D, 6.2.1). Key values never appear in ``repr``."""

    s_enc: bytes = field(repr=False)
    s_mac: bytes = field(repr=False)
    s_rmac: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Scp03KeyHandles:
    """An SCP03 key set whose static keys stay where they are (a PKCS#11 token) and run the operations themselves.

    What may be shown of it is its KVN and its key check values (AES over 16 x 01, Amendment D 7.2.2).
    """

    enc: SymmetricKey = field(repr=False)
    mac: SymmetricKey = field(repr=False)
    dek: SymmetricKey = field(repr=False)
    kvn: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.kvn <= 0xFF:
            raise ValueError(f"kvn must be a byte (0..255), got {self.kvn}")
        for name in ("enc", "mac", "dek"):
            key: SymmetricKey = getattr(self, name)
            if key.block_size != 16 or key.key_length not in (16, 24, 32):
                raise UnsupportedError(f"SCP03 needs AES keys; the {name} key is not one (KVN {self.kvn:02X})")

    @property
    def key_type(self) -> KeyType:
        return KeyType.AES

    def kcvs(self) -> tuple[bytes, bytes, bytes]:
        """The key check values of ENC, MAC and DEK, computed by the keys themselves."""
        one = b"\x01" * 16
        return self.enc.encrypt_ecb(one)[:3], self.mac.encrypt_ecb(one)[:3], self.dek.encrypt_ecb(one)[:3]


def _require_aes(keys: StaticKeys | Scp03KeyHandles) -> None:
    if keys.key_type is not KeyType.AES:
        raise UnsupportedError(f"SCP03 needs an AES key set, got {keys.key_type.name} (KVN {keys.kvn:02X})")


def derive_session_keys(keys: StaticKeys | Scp03KeyHandles, context: bytes) -> Scp03SessionKeys:
    """Derive the session keys (Amendment D, 6.2.1, Table 6-2).

    ``context`` is ``host_challenge || card_challenge``; L is the length of the static key in bits. S-RMAC is
    derived whatever the i parameter says (it is only used when R-MAC is active).
    """
    _require_aes(keys)
    return Scp03SessionKeys(
        s_enc=scp03_kdf(keys.enc, DerivationConstant.S_ENC, context, 8 * key_length(keys.enc)),
        s_mac=scp03_kdf(keys.mac, DerivationConstant.S_MAC, context, 8 * key_length(keys.mac)),
        s_rmac=scp03_kdf(keys.mac, DerivationConstant.S_RMAC, context, 8 * key_length(keys.mac)),
    )


def _check_challenges(host_challenge: bytes, card_challenge: bytes) -> None:
    if len(host_challenge) not in (8, 16) or len(card_challenge) != len(host_challenge):
        raise ValueError(
            f"challenges must both be 8 or both 16 bytes, got {len(host_challenge)} and {len(card_challenge)}"
        )


def card_cryptogram(s_mac: bytes, host_challenge: bytes, card_challenge: bytes) -> bytes:
    """The card authentication cryptogram (Amendment D, 6.2.2.2): KDF(S-MAC, 00, L = 64 or 128 in S16)."""
    _check_challenges(host_challenge, card_challenge)
    n = len(card_challenge)
    return scp03_kdf(s_mac, DerivationConstant.CARD_CRYPTOGRAM, host_challenge + card_challenge, 8 * n)


def host_cryptogram(s_mac: bytes, host_challenge: bytes, card_challenge: bytes) -> bytes:
    """The host authentication cryptogram (Amendment D, 6.2.2.3): KDF(S-MAC, 01, L = 64 or 128 in S16)."""
    _check_challenges(host_challenge, card_challenge)
    n = len(card_challenge)
    return scp03_kdf(s_mac, DerivationConstant.HOST_CRYPTOGRAM, host_challenge + card_challenge, 8 * n)


def card_challenge(key_enc: KeyMaterial, sequence_counter: int, aid: bytes, length: int = 8) -> bytes:
    """The pseudo-random card challenge (Amendment D, 6.2.2.1).

    ``KDF(Key-ENC (static), constant 02, L = 8 * length, context = sequence counter (3 bytes) || AID)``, where the
    counter is the value *after* the increment that INITIALIZE UPDATE triggers and the AID (5 to 16 bytes) is the
    one of the application invoking the SecureChannel interface. ``length`` is 16 in S16 mode (GPPro).
    """
    if not 0 <= sequence_counter <= MAX_SEQUENCE_COUNTER:
        raise ValueError(f"sequence counter must fit 3 bytes, got {sequence_counter}")
    if not 5 <= len(aid) <= 16:
        raise ValueError(f"the AID must be 5 to 16 bytes, got {len(aid)}")
    if length not in (8, 16):
        raise ValueError(f"a card challenge is 8 or 16 bytes, got {length}")
    context = sequence_counter.to_bytes(3, "big") + aid
    return scp03_kdf(key_enc, DerivationConstant.CARD_CHALLENGE, context, 8 * length)


def command_icv(s_enc: bytes, counter: int) -> bytes:
    """The C-DECRYPTION ICV: S-ENC over the encryption counter as a 16-byte big-endian block (6.2.6)."""
    return engine("aes", s_enc).ecb_encrypt(counter.to_bytes(16, "big"))  # one block: aes_ecb_encrypt's check


def response_icv(s_enc: bytes, counter: int) -> bytes:
    """The R-ENCRYPTION ICV: the same counter block with its most significant byte set to 80 (6.2.7)."""
    return engine("aes", s_enc).ecb_encrypt(b"\x80" + counter.to_bytes(16, "big")[1:])


def encrypt_sensitive_data(dek: KeyMaterial, data: bytes) -> bytes:
    """Encrypt key material under the static Key-DEK: AES-CBC, IV 0 (Amendment D, 6.2.8).

    16- and 32-byte keys (and any data that is a non-empty multiple of 16 bytes) are encrypted as they are. A
    24-byte key gets the 8 "arbitrary" pad bytes the clause asks for; gpchannel uses ``80 00 00 00 00 00 00 00``
    (the AES padding of 4.1.4), so the result is deterministic. Other lengths raise LocalProtocolError: their
    padding is application specific (6.2.8).
    """
    if len(data) == 24:
        data = pad80(data, 16)
    elif not data or len(data) % 16:
        raise LocalProtocolError(
            f"sensitive data must be a 24-byte key or a non-empty multiple of 16 bytes, got {len(data)} bytes"
        )
    if not isinstance(dek, bytes):
        return dek.encrypt_cbc(data, bytes(16))
    return aes_cbc_encrypt(dek, data)


def decrypt_sensitive_data(dek: bytes, data: bytes, key_length: int | None = None) -> bytes:
    """Decrypt data encrypted under the static Key-DEK (6.2.8); keep ``key_length`` bytes when it is given."""
    if not data or len(data) % 16:
        raise DecodeError(f"DEK-encrypted data must be a non-empty multiple of 16 bytes, got {len(data)}")
    plain = aes_cbc_decrypt(dek, data)
    if key_length is None:
        return plain
    if not 0 < key_length <= len(plain) or len(plain) - key_length >= 16:
        raise DecodeError(f"key length {key_length} does not fit {len(data)} bytes of encrypted key data")
    return plain[:key_length]


# -- secure messaging helpers (used by both state machines) -----------------------------------------------------


def _mac_cla(cla: int) -> int:
    return cla_for_channel(cla_with_secure_messaging(cla), 0)


_MAC_CLAS = bytes(_mac_cla(cla) for cla in range(256))
"""mac_cla of every CLA byte, computed once: read on every protected command."""


def mac_cla(cla: int) -> int:
    """The CLA used in the C-MAC input: secure messaging indicated, logical channel 0 (6.2.4)."""
    return _MAC_CLAS[cla] if 0 <= cla <= 0xFF else _mac_cla(cla)


def lc_field(length: int, extended: bool) -> bytes:
    """Lc as it appears on the wire: one byte, or 00 and two bytes for an extended-length APDU."""
    return b"\x00" + length.to_bytes(2, "big") if extended else bytes((length,))


def command_mac_input(chain: bytes, command: CommandApdu, data: bytes, lc: int, extended: bool) -> bytes:
    """Chaining value || CLA' INS P1 P2 || Lc (incl. the MAC) || data (encrypted if C-DEC): Figure 6-1, 6-4."""
    header = bytes((mac_cla(command.cla), command.ins, command.p1, command.p2))
    return chain + header + lc_field(lc, extended) + data


def compute_cmac(key: bytes, message: bytes) -> bytes:
    """The full 16-byte CMAC (the next MAC chaining value); C-/R-MACs are its first 8 or 16 bytes."""
    return engine("aes", key).cmac(message)  # aes_cmac, one call less on the path of every command


def command_block(counter: int) -> bytes:
    """The block whose encryption is the C-DECRYPTION ICV: the encryption counter, 16 bytes big-endian (6.2.6)."""
    return counter.to_bytes(16, "big")


def response_block(counter: int) -> bytes:
    """The block whose encryption is the R-ENCRYPTION ICV: the counter block with its first byte 80 (6.2.7)."""
    return b"\x80" + counter.to_bytes(16, "big")[1:]


def encrypt_counted_data(s_enc: bytes, block: bytes, data: bytes) -> bytes:
    """:func:`encrypt_block_data` with the ICV S-ENC(``block``) (:func:`command_block`, :func:`response_block`):
    one cipher lookup for the ICV and the data, on every protected command and response."""
    cipher = engine("aes", s_enc)
    return cipher.cbc_encrypt(pad80(data, 16), cipher.ecb_encrypt(block))  # a 16-byte ICV: no IV check needed


def decrypt_counted_data(s_enc: bytes, block: bytes, data: bytes) -> bytes:
    """:func:`decrypt_block_data` with the ICV S-ENC(``block``); DecodeError when the length or padding is wrong."""
    if not data or len(data) % 16:
        raise DecodeError(f"encrypted data must be a non-empty multiple of 16 bytes, got {len(data)}")
    cipher = engine("aes", s_enc)
    return unpad80(cipher.cbc_decrypt(data, cipher.ecb_encrypt(block)), 16)


def encrypt_block_data(s_enc: bytes, icv: bytes, data: bytes) -> bytes:
    """Pad (4.1.4) and AES-CBC encrypt a command or response data field."""
    cipher = engine("aes", s_enc)  # aes_cbc_encrypt without its block check: padded data is whole blocks
    cipher.check_iv(icv)
    return cipher.cbc_encrypt(pad80(data, 16), icv)


def decrypt_block_data(s_enc: bytes, icv: bytes, data: bytes) -> bytes:
    """AES-CBC decrypt and unpad; :class:`DecodeError` when the length or the padding is wrong."""
    if not data or len(data) % 16:
        raise DecodeError(f"encrypted data must be a non-empty multiple of 16 bytes, got {len(data)}")
    cipher = engine("aes", s_enc)  # aes_cbc_decrypt without its block check, done just above
    cipher.check_iv(icv)
    return unpad80(cipher.cbc_decrypt(data, icv), 16)


def is_success_sw(sw: int) -> bool:
    """9000 and the warnings 62xx / 63xx get R-MAC protection; every other status word is an error (6.2.5)."""
    return sw == 0x9000 or sw >> 8 in (0x62, 0x63)
