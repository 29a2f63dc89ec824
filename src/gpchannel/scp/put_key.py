"""The PUT KEY command and its key data field (GP 2.3.1, 11.8; Amendment D v1.1.1, 7.2 for an AES Key-DEK).

Command: ``CLA D8 P1 P2 Lc data 00`` with P1 = b8 "more PUT KEY commands follow" | the KVN of the keys being
replaced (00 to add a new key set), P2 = b8 "multiple keys" | the key identifier of the first key (Tables 11-65,
11-66). Data (Table 11-67): the new KVN, then one key data field per key, the key identifiers counting up from P2.

Each key data field is handled here in the Basic Format (Table 11-68) with one key component, which is what
secret DES and AES keys use::

    key type (80 DES, 88 AES) | length of the key component block | key component block | length of KCV | KCV

The key component block is the encrypted key (Table 11-71), or the clear-text key length (a BER length) followed
by the encrypted key (Table 11-70) when the key had to be padded before encryption. GlobalPlatformPro, like
Amendment D Table 7-10, always writes the length for AES keys (``88 11 10 <16 bytes> 03 <KCV>``) and never for
3DES keys (``80 10 <16 bytes> 03 <KCV>``); :meth:`PutKeyData.build` does the same. When parsing, the block carries
the length exactly when its size is not a multiple of 8 (11.8.2.3.3; true for both DES and AES block sizes).

The KCV (3 bytes) is 3DES-ECB(key, 8 x 00) for DES and AES-ECB(key, 16 x 01) for AES (B.6; Amendment D 7.2.2).
The response data is the new KVN followed by the KCVs (11.8.3.1).

Encryption is the secure channel's: the host passes its channel's ``encrypt_key``, the card its channel's
``decrypt_key``. The Extended Format (key type FF xx) and multi-component keys (RSA, ECC) are not handled; the
parser reports them as a DecodeError.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu, cla_for_channel
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.crypto.keys import KeyType, StaticKeys, kcv
from gpchannel.errors import DecodeError, IncorrectData, IncorrectP1P2, RemoteProtocolError, SecurityNotSatisfied

__all__ = [
    "INS_PUT_KEY",
    "KeyComponent",
    "PutKeyCommand",
    "PutKeyData",
    "put_key_command",
]

INS_PUT_KEY = 0xD8
_KCV_LENGTH = 3
_MORE = 0x80
_MULTIPLE = 0x80


def _encode_length(n: int) -> bytes:
    """BER length as 11.8.2.3.1 allows it: 01-7F on one byte, 81 xx, 82 xx xx."""
    if not 1 <= n <= 0xFFFF:
        raise ValueError(f"a PUT KEY length is 1..65535, got {n}")
    if n < 0x80:
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    return b"\x82" + n.to_bytes(2, "big")


def _decode_length(raw: bytes, offset: int) -> tuple[int, int]:
    """(length, offset after it). '80' on one byte means 128 (kept for backward compatibility, 11.8.2.3.1)."""
    if offset >= len(raw):
        raise DecodeError("a length field is missing", offset=offset)
    first = raw[offset]
    if 0x01 <= first <= 0x80:
        return first, offset + 1
    if first == 0x81:
        if offset + 2 > len(raw) or raw[offset + 1] < 0x80:
            raise DecodeError("length 81 must be followed by one byte 80..FF", offset=offset)
        return raw[offset + 1], offset + 2
    if first == 0x82:
        value = int.from_bytes(raw[offset + 1 : offset + 3], "big")
        if offset + 3 > len(raw) or value < 0x100:
            raise DecodeError("length 82 must be followed by two bytes 0100..FFFF", offset=offset)
        return value, offset + 3
    raise DecodeError(f"invalid length byte {first:02X}", offset=offset)


def _key_type_of(key_type: int) -> KeyType | None:
    return {0x80: KeyType.DES3, 0x88: KeyType.AES}.get(key_type)


@dataclass(frozen=True, slots=True)
class KeyComponent:
    """One key data field in the Basic Format with one key component (GP 2.3.1 Tables 11-68, 11-70, 11-71).

    ``encrypted`` is the encrypted key value; ``key_length`` the clear-text length written before it (Table 11-70)
    or None when the block is only the encrypted value (Table 11-71); ``kcv`` the key check value (may be empty).
    """

    key_type: int
    encrypted: bytes
    key_length: int | None
    kcv: bytes

    def __post_init__(self) -> None:
        if not 0x80 <= self.key_type <= 0xFE:
            raise ValueError(f"a Basic Format key type is 80..FE, got {self.key_type:02X}")
        if not self.encrypted:
            raise ValueError("the encrypted key is empty")
        if self.key_length is None and len(self.encrypted) % 8:
            raise ValueError("an encrypted key without its length must be a multiple of 8 bytes (Table 11-71)")
        if self.key_length is not None and not 1 <= self.key_length <= len(self.encrypted):
            raise ValueError(f"the clear key length {self.key_length} does not fit {len(self.encrypted)} bytes")
        if len(self._block()) > 0xFFFF:
            raise ValueError(f"the key component block is {len(self._block())} bytes; at most 65535 fit")
        if len(self.kcv) > 0x7F:
            raise ValueError(f"a key check value is at most 127 bytes, got {len(self.kcv)}")

    def _block(self) -> bytes:
        prefix = b"" if self.key_length is None else _encode_length(self.key_length)
        return prefix + self.encrypted

    def to_bytes(self) -> bytes:
        block = self._block()
        return bytes((self.key_type,)) + _encode_length(len(block)) + block + bytes((len(self.kcv),)) + self.kcv

    @classmethod
    def from_bytes(cls, raw: bytes) -> KeyComponent:
        """Parse exactly one key data field; raises DecodeError."""
        value, end = cls._parse(raw, 0)
        if end != len(raw):
            raise DecodeError(f"{len(raw) - end} bytes follow the key data field", offset=end)
        return value

    @classmethod
    def _parse(cls, raw: bytes, offset: int) -> tuple[KeyComponent, int]:
        if offset >= len(raw):
            raise DecodeError("a key data field is missing", offset=offset)
        key_type = raw[offset]
        if key_type == 0xFF:
            raise DecodeError("the Extended Format (key type FF xx) is not supported", offset=offset)
        if key_type < 0x80:
            raise DecodeError(f"key type {key_type:02X} is not a key type (80..FE)", offset=offset)
        size, start = _decode_length(raw, offset + 1)
        end = start + size
        if end > len(raw):
            raise DecodeError(f"the key component block is {size} bytes; {len(raw) - start} remain", offset=start)
        key_length: int | None = None
        body_start = start
        if size % 8:
            key_length, body_start = _decode_length(raw[:end], start)
        encrypted = bytes(raw[body_start:end])
        if not encrypted or (key_length is not None and key_length > len(encrypted)):
            raise DecodeError("the key component block holds no key of the announced length", offset=start)
        if end >= len(raw):
            raise DecodeError("the key check value length is missing", offset=end)
        if raw[end] >= 0x80:
            raise DecodeError("keys with several components (RSA, ECC) are not supported", offset=end)
        kcv_end = end + 1 + raw[end]
        if kcv_end > len(raw):
            raise DecodeError(f"the key check value is {raw[end]} bytes; {len(raw) - end - 1} remain", offset=end)
        return cls(key_type, encrypted, key_length, bytes(raw[end + 1 : kcv_end])), kcv_end

    @classmethod
    def build(cls, key: bytes, key_type: KeyType, encrypt: Callable[[bytes], bytes]) -> KeyComponent:
        """Encrypt ``key`` with ``encrypt`` (a channel's ``encrypt_key``) and add its KCV.

        The clear length is written for AES (Amendment D Table 7-10) and whenever encryption padded the key.
        """
        if len(key) not in key_type.allowed_lengths:
            raise ValueError(f"a {key_type.name} key is one of {key_type.allowed_lengths} bytes, got {len(key)}")
        encrypted = encrypt(key)
        with_length = key_type is KeyType.AES or len(encrypted) != len(key)
        return cls(key_type.value, encrypted, len(key) if with_length else None, kcv(key, key_type))

    def decrypt(self, decrypt: Callable[[bytes], bytes]) -> bytes:
        """The clear key (card side): decrypt, drop the padding, check the KCV.

        A KCV that does not match is SecurityNotSatisfied, 6982 "Invalid key check value" (GP 2.3.1 Table 11-78,
        which deprecates 9485); a malformed key data field is IncorrectData (6A80).

        DES (80) and AES (88) keys must come with a 3-byte KCV (GP 2.3.1 11.8.2.3.3, B.6); other key types are
        refused as IncorrectData, since their check cannot be made.
        """
        key_type = _key_type_of(self.key_type)
        if key_type is None:
            raise IncorrectData(f"key type {self.key_type:02X} is not supported (80 DES and 88 AES are)")
        clear = decrypt(self.encrypted)
        if self.key_length is not None:
            if self.key_length > len(clear):
                raise IncorrectData(f"the clear key length {self.key_length} exceeds the decrypted {len(clear)} bytes")
            clear = clear[: self.key_length]
        if len(clear) not in key_type.allowed_lengths:
            raise IncorrectData(f"a {key_type.name} key is one of {key_type.allowed_lengths} bytes, got {len(clear)}")
        if len(self.kcv) != _KCV_LENGTH:
            raise IncorrectData(f"a {key_type.name} key needs a {_KCV_LENGTH}-byte key check value")
        if not constant_time_equal(kcv(clear, key_type), self.kcv):
            raise SecurityNotSatisfied("invalid key check value: it does not match the decrypted key")
        return clear


@dataclass(frozen=True, slots=True)
class PutKeyData:
    """The PUT KEY command data field: the new KVN and the key data fields (GP 2.3.1, Table 11-67)."""

    new_kvn: int
    keys: tuple[KeyComponent, ...] = field(default=())

    def __post_init__(self) -> None:
        if not 0x01 <= self.new_kvn <= 0x7F:
            raise ValueError(f"the new key version number is 01..7F (11.8.2.3), got {self.new_kvn:02X}")
        if not self.keys:
            raise ValueError("PUT KEY carries at least one key")

    def to_bytes(self) -> bytes:
        return bytes((self.new_kvn,)) + b"".join(k.to_bytes() for k in self.keys)

    @classmethod
    def from_bytes(cls, raw: bytes) -> PutKeyData:
        """Parse the data field; raises DecodeError (a card answers it with 6A80)."""
        if not raw:
            raise DecodeError("the PUT KEY data field is empty", offset=0)
        if not 0x01 <= raw[0] <= 0x7F:
            raise DecodeError(f"the new key version number is 01..7F, got {raw[0]:02X}", offset=0)
        keys: list[KeyComponent] = []
        offset = 1
        while offset < len(raw) or not keys:
            key, offset = KeyComponent._parse(raw, offset)
            keys.append(key)
        return cls(raw[0], tuple(keys))

    @classmethod
    def build(
        cls, new_kvn: int, keys: Sequence[bytes], key_type: KeyType, encrypt: Callable[[bytes], bytes]
    ) -> PutKeyData:
        """Encrypt and check-value ``keys`` (in key identifier order) for a new or replacement key set."""
        return cls(new_kvn, tuple(KeyComponent.build(k, key_type, encrypt) for k in keys))

    @classmethod
    def from_static_keys(cls, keys: StaticKeys, encrypt: Callable[[bytes], bytes]) -> PutKeyData:
        """ENC, MAC and DEK of ``keys`` (key identifiers P2, P2+1, P2+2; usually 01, 02, 03) under ``keys.kvn``."""
        return cls.build(keys.kvn, (keys.enc, keys.mac, keys.dek), keys.key_type, encrypt)

    def decrypt(self, decrypt: Callable[[bytes], bytes]) -> tuple[bytes, ...]:
        """The clear keys (card side), each KCV checked: SecurityNotSatisfied (6982) on any mismatch."""
        return tuple(k.decrypt(decrypt) for k in self.keys)

    def response_data(self) -> bytes:
        """What the card answers: the new KVN and the key check values, no lengths (11.8.3.1)."""
        return bytes((self.new_kvn,)) + b"".join(k.kcv for k in self.keys)

    def check_response(self, data: bytes) -> None:
        """Host side: RemoteProtocolError unless the card echoed the new KVN and the KCVs (11.8.3.1)."""
        expected = self.response_data()
        if data != expected:
            raise RemoteProtocolError(
                f"PUT KEY answered {data.hex().upper()}; expected KVN and KCVs {expected.hex().upper()}"
            )


@dataclass(frozen=True, slots=True)
class PutKeyCommand:
    """A PUT KEY command (GP 2.3.1, Tables 11-64 to 11-66) before secure messaging.

    ``old_kvn`` is the KVN of the keys replaced (00 adds keys); ``key_id`` the identifier of the first key;
    ``more`` says more PUT KEY commands follow in a chain (P1 b8). P2 b8 is set when ``data`` has several keys.
    """

    data: PutKeyData
    key_id: int
    old_kvn: int = 0
    more: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.old_kvn <= 0x7F:
            raise ValueError(f"the KVN in P1 is 00..7F, got {self.old_kvn:02X}")
        if not 0 <= self.key_id <= 0x7F:
            raise ValueError(f"the key identifier in P2 is 00..7F, got {self.key_id:02X}")

    def to_apdu(self, channel: int = 0) -> CommandApdu:
        p1 = self.old_kvn | (_MORE if self.more else 0)
        p2 = self.key_id | (_MULTIPLE if len(self.data.keys) > 1 else 0)
        return CommandApdu(cla_for_channel(0x80, channel), INS_PUT_KEY, p1, p2, self.data.to_bytes(), le=256)

    @classmethod
    def from_apdu(cls, command: CommandApdu) -> PutKeyCommand:
        """Parse an unwrapped PUT KEY (card side): IncorrectData (6A80) for a bad data field, IncorrectP1P2
        (6A86) when P2's "multiple keys" bit disagrees with the number of keys."""
        try:
            data = PutKeyData.from_bytes(command.data)
        except (DecodeError, ValueError) as exc:
            raise IncorrectData(f"PUT KEY data: {exc}") from None
        if bool(command.p2 & _MULTIPLE) != (len(data.keys) > 1):
            raise IncorrectP1P2(f"P2 {command.p2:02X} does not match the {len(data.keys)} key(s) in the data field")
        return cls(data, command.p2 & 0x7F, command.p1 & 0x7F, bool(command.p1 & _MORE))


def put_key_command(
    data: PutKeyData, *, key_id: int, old_kvn: int = 0, more: bool = False, channel: int = 0
) -> CommandApdu:
    """The PUT KEY command APDU ``80 D8 P1 P2 Lc data 00`` (GP 2.3.1, 11.8.2), to be wrapped by the channel."""
    return PutKeyCommand(data, key_id, old_kvn, more).to_apdu(channel)
