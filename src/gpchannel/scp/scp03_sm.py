"""SCP03 secure messaging of an open session, for both sides, independent of how the session was opened
(GlobalPlatform Amendment D v1.1.1, 6.2.4 to 6.2.7).

SCP03 opens with INITIALIZE UPDATE and EXTERNAL AUTHENTICATE (:mod:`gpchannel.scp.scp03_host`,
:mod:`gpchannel.scp.scp03_card`); SCP11 (Amendment F) opens with a key agreement and then protects commands and
responses exactly as SCP03 does, with the MAC chaining value starting at the receipt. :class:`Scp03Messaging`
holds what that protection needs (S-ENC, S-MAC, S-RMAC, the chaining value, the encryption counter, the MAC
length and the level) and applies the functions of :mod:`gpchannel.scp.scp03`.

Errors: ``IntegrityError`` for a MAC that does not verify or data that does not decrypt, ``LocalProtocolError``
for a command that cannot be protected, ``DecodeError`` for malformed input. The owning channel ends the session
on any of them but the local one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging, cla_with_secure_messaging
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.errors import DecodeError, IntegrityError, LocalProtocolError
from gpchannel.scp.common import C_DEC_BIT, C_MAC_BIT, R_ENC_BIT, R_MAC_BIT, SecurityLevel, plain_cla
from gpchannel.scp.scp03 import (
    command_icv,
    command_mac_input,
    compute_cmac,
    decrypt_block_data,
    encrypt_block_data,
    is_success_sw,
    response_icv,
)

__all__ = ["Scp03Messaging"]

_SHORT_MAX = 255
_EXTENDED_MAX = 65535


@dataclass(slots=True)
class Scp03Messaging:
    """The secure messaging state of one open session (either side). ``chain`` is the MAC chaining value (16 zero
    bytes after EXTERNAL AUTHENTICATE's own C-MAC in SCP03: its CMAC; the receipt in SCP11); ``counter`` the
    encryption counter of the last command (0 before the first)."""

    s_enc: bytes = field(repr=False)
    s_mac: bytes = field(repr=False)
    s_rmac: bytes = field(repr=False)
    level: SecurityLevel
    chain: bytes = field(default=bytes(16), repr=False)
    mac_length: int = 8
    counter: int = 0
    last_extended: bool = False
    exchanged: bool = False

    # -- the off-card entity --------------------------------------------------------------------------------
    def wrap_command(self, command: CommandApdu) -> CommandApdu:
        """C-DECRYPTION (6.2.6) then the C-MAC (6.2.4); the counter counts every command."""
        counter = self.counter + 1
        if not int(self.level) & C_MAC_BIT:
            self.counter, self.exchanged = counter, True
            return command
        data = command.data
        if int(self.level) & C_DEC_BIT and data:
            data = encrypt_block_data(self.s_enc, command_icv(self.s_enc, counter), data)
        n = self.mac_length
        extended = command.is_extended or len(data) + n > _SHORT_MAX
        if len(data) + n > _EXTENDED_MAX:
            raise LocalProtocolError(f"the wrapped command would carry {len(data) + n} data bytes")
        full = compute_cmac(self.s_mac, command_mac_input(self.chain, command, data, len(data) + n, extended))
        self.chain, self.counter, self.exchanged = full, counter, True
        return CommandApdu(
            cla_with_secure_messaging(command.cla),
            command.ins,
            command.p1,
            command.p2,
            data + full[:n],
            le=command.le,
            extended=extended,
        )

    def unwrap_response(self, response: ResponseApdu) -> ResponseApdu:
        """Verify the R-MAC (6.2.5) and undo R-ENCRYPTION (6.2.7); IntegrityError when either fails."""
        if not int(self.level) & R_MAC_BIT:
            return response
        if not is_success_sw(response.sw):
            if response.data:
                raise IntegrityError(f"status {response.sw:04X} came with data that no R-MAC protects")
            return response
        n = self.mac_length
        if len(response.data) < n:
            raise IntegrityError(f"the response has {len(response.data)} data bytes; the R-MAC alone is {n}")
        body, rmac = response.data[:-n], response.data[-n:]
        expected = compute_cmac(self.s_rmac, self.chain + body + response.sw.to_bytes(2, "big"))[:n]
        if not constant_time_equal(expected, rmac):
            raise IntegrityError("the R-MAC did not verify")
        if int(self.level) & R_ENC_BIT and body:
            try:
                body = decrypt_block_data(self.s_enc, response_icv(self.s_enc, self.counter), body)
            except DecodeError as exc:
                raise IntegrityError(f"the encrypted response data is malformed: {exc}") from None
        return ResponseApdu(body, response.sw)

    # -- the card ---------------------------------------------------------------------------------------------
    def unwrap_command(self, command: CommandApdu) -> CommandApdu:
        """Verify the C-MAC and decrypt: the command as the application sees it; IntegrityError on failure. A
        command without the secure messaging bit is refused when the level includes C-MAC (Amendment D 5.6)."""
        self.counter += 1
        self.exchanged = True
        self.last_extended = command.is_extended
        if not cla_has_secure_messaging(command.cla):
            if int(self.level) & C_MAC_BIT:
                raise IntegrityError("the security level requires a C-MAC; the CLA shows none")
            return command
        n = self.mac_length
        if len(command.data) < n:
            raise IntegrityError(f"the command has {len(command.data)} data bytes; the C-MAC is {n}")
        data, mac = command.data[:-n], command.data[-n:]
        extended = command.is_extended or len(command.data) > _SHORT_MAX
        full = compute_cmac(self.s_mac, command_mac_input(self.chain, command, data, len(command.data), extended))
        if not constant_time_equal(full[:n], mac):
            raise IntegrityError("the C-MAC did not verify")
        self.chain = full
        if int(self.level) & C_DEC_BIT and data:
            try:
                data = decrypt_block_data(self.s_enc, command_icv(self.s_enc, self.counter), data)
            except DecodeError as exc:
                raise IntegrityError(f"the command data did not decrypt: {exc}") from None
        return CommandApdu(
            plain_cla(command.cla), command.ins, command.p1, command.p2, data, command.le, command.extended
        )

    def wrap_response(self, response: ResponseApdu) -> ResponseApdu:
        """R-ENCRYPTION and the R-MAC of the response to the last unwrapped command; errors go out alone."""
        if not int(self.level) & R_MAC_BIT:
            return response
        if not is_success_sw(response.sw):
            return ResponseApdu(b"", response.sw)
        data = response.data
        if int(self.level) & R_ENC_BIT and data:
            data = encrypt_block_data(self.s_enc, response_icv(self.s_enc, self.counter), data)
        rmac = compute_cmac(self.s_rmac, self.chain + data + response.sw.to_bytes(2, "big"))[: self.mac_length]
        return ResponseApdu(data + rmac, response.sw)
