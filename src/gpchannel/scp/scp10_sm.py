"""SCP10 secure messaging (GP Card Specification 2.2.1, F.2.3 to F.2.5 and F.3.2), used by both sides.

After initiation, each MAC key has an ICV sequence counter: the ICV is the counter enciphered with single DES
under the first half of the key (F.2.3); the MAC is single DES plus final triple DES (B.1.2.2) over the
80-padded input; the counter is used and then incremented for every C-MAC and R-MAC (F.3.2.1). Encryption is
triple DES CBC with a zero ICV over the 80-padded data field, sent as ``01 || ciphertext`` (F.3.2.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.codec.tlv import Tlv, parse_all
from gpchannel.crypto.ciphers import (
    constant_time_equal,
    des3_cbc_decrypt,
    des3_cbc_encrypt,
    des3_ecb_decrypt,
    des3_ecb_encrypt,
    des_cbc_encrypt,
    des_ecb_encrypt,
)
from gpchannel.crypto.padding import pad80, unpad80
from gpchannel.errors import DecodeError, IntegrityError, SecurityError
from gpchannel.scp.scp10 import C_ENC, C_MAC, R_ENC, R_MAC, KeyUsage, SessionKeys

__all__ = ["SecureMessaging", "scp10_mac"]


def scp10_mac(key: bytes, counter: int, data: bytes) -> bytes:
    """C-MAC / R-MAC (F.2.3, F.2.4): ICV = DES(K1, counter); single DES CBC plus final triple DES (B.1.2.2)
    over ``pad80(data)``."""
    icv = des_ecb_encrypt(key[:8], counter.to_bytes(8, "big"))
    padded = pad80(data)
    chain = icv
    if len(padded) > 8:
        chain = des_cbc_encrypt(key[:8], padded[:-8], icv)[-8:]
    last = bytes(a ^ b for a, b in zip(chain, padded[-8:], strict=True))
    return des3_ecb_encrypt(key, last)


def _le_bytes(le: int) -> bytes:
    return bytes((le & 0xFF,)) if le <= 256 else (le & 0xFFFF).to_bytes(2, "big")


def _sm_cla(cla: int, with_mac: bool) -> int:
    """F.3.2.1 / F.3.2.2: b4-b3 = 11 (MAC) or 10 (ENC only) for channels 0-3; b6 for channels 4-19."""
    if cla & 0x40:
        return cla | 0x20
    return (cla & ~0x0C) | (0x0C if with_mac else 0x08)


def _mac_header(cla: int, ins: int, p1: int, p2: int) -> bytes:
    """The unprotected header with the logical channel bits zeroed, and 80 00 00 00 (F.3.2.1)."""
    plain = cla & ~0x0F if cla & 0x40 else cla & ~0x03
    return bytes((plain, ins, p1, p2)) + b"\x80\x00\x00\x00"


def _is_error(sw: int) -> bool:
    return not (sw == 0x9000 or sw >> 8 in (0x61, 0x62, 0x63))


@dataclass(slots=True)
class SecureMessaging:
    """Secure messaging after SCP10 initiation (F.3.2), for both sides.

    Counters are used and then incremented, whether or not the checked command is later accepted (F.3.2.1).
    Errors raise IntegrityError (MAC), SecurityError (missing key) or DecodeError (format).
    """

    level: int
    keys: SessionKeys

    # -- commands -------------------------------------------------------------------------------------------------
    def protect_command(self, command: CommandApdu) -> CommandApdu:
        """F.3.2.1 to F.3.2.3: the off-card entity protects a command at the session level."""
        mac = bool(self.level & C_MAC)
        enc = bool(self.level & C_ENC) and bool(command.data)
        if not mac and not enc:
            return command
        body = b""
        if enc:
            cipher = b"\x01" + des3_cbc_encrypt(self.keys.get(KeyUsage.C_ENC).value, pad80(command.data))
            body = Tlv(0x87 if mac else 0x86, cipher).to_bytes()
        elif command.data:
            body = Tlv(0x81, command.data).to_bytes()
        if command.le is not None:
            body += Tlv(0x97 if mac else 0x96, _le_bytes(command.le)).to_bytes()
        if mac:
            key = self.keys.get(KeyUsage.C_MAC)
            header = _mac_header(command.cla, command.ins, command.p1, command.p2)
            body += Tlv(0x8E, scp10_mac(key.value, key.counter, header + body)).to_bytes()
            key.counter = (key.counter + 1) % (1 << 64)
        wants_response = command.le is not None or bool(self.level & (R_MAC | R_ENC))
        return CommandApdu(
            _sm_cla(command.cla, mac), command.ins, command.p1, command.p2, body, 256 if wants_response else None
        )

    def unprotect_command(self, command: CommandApdu) -> CommandApdu:
        """The card's check of a protected command: the command as the application sees it.

        Raises SecurityError / IntegrityError for anything below the session level (F.1.6).
        """
        mac = bool(self.level & C_MAC)
        enc = bool(self.level & C_ENC)
        sm = bool(command.cla & (0x20 if command.cla & 0x40 else 0x0C))
        if not sm:
            if mac or (enc and command.data):
                raise SecurityError("command without secure messaging below the session security level")
            return command
        plain_cla = (command.cla & ~0x20) if command.cla & 0x40 else (command.cla & ~0x0C)
        items = parse_all(command.data)
        tags = [i.tag for i in items]
        values = {i.tag: i.value for i in items}
        if len(values) != len(items):
            raise DecodeError("repeated secure messaging data object")
        if mac:
            if not tags or tags[-1] != 0x8E or len(values[0x8E]) != 8:
                raise SecurityError("the C-MAC data object 8E is missing")
            key = self.keys.get(KeyUsage.C_MAC)
            header = _mac_header(plain_cla, command.ins, command.p1, command.p2)
            signed = command.data[: len(command.data) - 10]
            expected = scp10_mac(key.value, key.counter, header + signed)
            key.counter = (key.counter + 1) % (1 << 64)
            if not constant_time_equal(expected, values[0x8E]):
                raise IntegrityError("C-MAC does not verify")
            tags = tags[:-1]
        data_tag, le_tag = (0x87 if mac else 0x86, 0x97 if mac else 0x96) if enc else (0x81, 0x97)
        allowed = [t for t in (data_tag, le_tag) if t in values]
        if tags != allowed or (enc and 0x81 in values):
            raise SecurityError(f"unexpected secure messaging data objects {' '.join(f'{t:X}' for t in tags)}")
        data = values.get(data_tag, b"")
        if enc and data_tag in values:
            if len(data) < 9 or data[0] != 0x01 or (len(data) - 1) % 8:
                raise DecodeError("encrypted data object must be 01 || n*8 bytes")
            data = unpad80(des3_cbc_decrypt(self.keys.get(KeyUsage.C_ENC).value, data[1:]))
        le = None
        if le_tag in values:
            raw = values[le_tag]
            if len(raw) not in (1, 2):
                raise DecodeError("Le data object must be 1 or 2 bytes")
            le = int.from_bytes(raw, "big") or (256 if len(raw) == 1 else 65536)
        return CommandApdu(plain_cla, command.ins, command.p1, command.p2, data, le)

    # -- responses ------------------------------------------------------------------------------------------------
    def protect_response(self, response: ResponseApdu) -> ResponseApdu:
        """F.3.2.4 to F.3.2.6: the card protects its response (errors are returned as bare status words)."""
        mac = bool(self.level & R_MAC)
        enc = bool(self.level & R_ENC) and bool(response.data)
        if _is_error(response.sw) or (not mac and not enc):
            return ResponseApdu(b"", response.sw) if _is_error(response.sw) else response
        body = b""
        if enc:
            cipher = b"\x01" + des3_cbc_encrypt(self.keys.get(KeyUsage.R_ENC).value, pad80(response.data))
            body = Tlv(0x87 if mac else 0x86, cipher).to_bytes()
        elif response.data:
            body = Tlv(0x81, response.data).to_bytes()
        if mac:
            body += Tlv(0x99, response.sw.to_bytes(2, "big")).to_bytes()
            key = self.keys.get(KeyUsage.R_MAC)
            body += Tlv(0x8E, scp10_mac(key.value, key.counter, body)).to_bytes()
            key.counter = (key.counter + 1) % (1 << 64)
        return ResponseApdu(body, response.sw)

    def unprotect_response(self, response: ResponseApdu) -> ResponseApdu:
        """The off-card entity's check of a protected response; raises IntegrityError / DecodeError."""
        mac = bool(self.level & R_MAC)
        enc = bool(self.level & R_ENC)
        if _is_error(response.sw):
            if response.data:
                raise DecodeError("an error status word must come without data (F.3.2.4)")
            return response
        if not mac and not (enc and response.data):
            return response
        items = parse_all(response.data)
        tags = [i.tag for i in items]
        values = {i.tag: i.value for i in items}
        if len(values) != len(items):
            raise DecodeError("repeated secure messaging data object")
        if mac:
            if tags[-2:] != [0x99, 0x8E] or len(values[0x8E]) != 8:
                raise IntegrityError("the R-MAC data objects 99 and 8E are missing")
            key = self.keys.get(KeyUsage.R_MAC)
            expected = scp10_mac(key.value, key.counter, response.data[: len(response.data) - 10])
            key.counter = (key.counter + 1) % (1 << 64)
            if not constant_time_equal(expected, values[0x8E]):
                raise IntegrityError("R-MAC does not verify")
            if values[0x99] != response.sw.to_bytes(2, "big"):
                raise IntegrityError("the protected status word differs from the one received")
            tags = tags[:-2]
        data_tag = (0x87 if mac else 0x86) if enc else 0x81
        if tags not in ([], [data_tag]):
            raise DecodeError(f"unexpected secure messaging data objects {' '.join(f'{t:X}' for t in tags)}")
        data = values.get(data_tag, b"")
        if enc and data:
            if len(data) < 9 or data[0] != 0x01 or (len(data) - 1) % 8:
                raise DecodeError("encrypted data object must be 01 || n*8 bytes")
            data = unpad80(des3_cbc_decrypt(self.keys.get(KeyUsage.R_ENC).value, data[1:]))
        return ResponseApdu(data, response.sw)

    # -- sensitive data (F.3.2.7) ---------------------------------------------------------------------------------
    def crypt_sensitive(self, usage: KeyUsage, data: bytes, encrypt: bool) -> bytes:
        """Encrypt or decrypt sensitive data with a DEK: ECB unless its key type says CBC ('82', '84')."""
        if len(data) % 8:
            raise ValueError(f"sensitive data must be a multiple of 8 bytes (F.3.2.7), got {len(data)}")
        key = self.keys.get(usage)
        if key.key_type in (0x82, 0x84):
            return des3_cbc_encrypt(key.value, data) if encrypt else des3_cbc_decrypt(key.value, data)
        return des3_ecb_encrypt(key.value, data) if encrypt else des3_ecb_decrypt(key.value, data)
