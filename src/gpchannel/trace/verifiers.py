"""Per-protocol checkers for recorded secure channel sessions: the card's view of each command, the host's view of
each response, built on the protocol functions of :mod:`gpchannel.scp.scp01`, :mod:`~gpchannel.scp.scp02` and
:mod:`~gpchannel.scp.scp03` (no cryptography of its own); the SCP02 checker is in
:mod:`gpchannel.trace.scp02_checker`.

A checker is created from the static keys, the host challenge and the parsed INITIALIZE UPDATE response. It
verifies the card cryptogram, then EXTERNAL AUTHENTICATE (host cryptogram, C-MAC), then each command (C-MAC,
C-DECRYPTION) and response (R-MAC, R-ENCRYPTION). Any check that fails raises :class:`Mismatch` with what failed
and why; the caller stops there. Where the protocol leaves something off the wire (SCP01's i, SCP02's i), the
checker keeps every value that still verifies and narrows them down as the session goes.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod

from gpchannel.codec.apdu import CommandApdu, ResponseApdu, cla_has_secure_messaging
from gpchannel.crypto.ciphers import constant_time_equal
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import DecodeError
from gpchannel.scp import scp01, scp03
from gpchannel.scp.common import InitializeUpdateResponse, ScpProtocol, SecurityLevel

__all__ = [
    "Checker",
    "Failure",
    "Mismatch",
    "Scp01Checker",
    "Scp03Checker",
    "ea_parts",
    "plain_cla",
    "secured",
    "security_level",
]


class Failure(enum.Enum):
    """What failed to verify at the point where a session stops (see :class:`Mismatch`)."""

    CARD_REFUSED = "card-refused"
    """The card answered INITIALIZE UPDATE or EXTERNAL AUTHENTICATE with an error status."""
    MALFORMED = "malformed"
    """A handshake message does not have the layout of the protocol."""
    CARD_CRYPTOGRAM = "card-cryptogram"
    """The card cryptogram does not verify with the given keys: wrong keys, diversification or KVN."""
    HOST_CRYPTOGRAM = "host-cryptogram"
    """The card cryptogram verifies but the host cryptogram does not: the host used other keys or challenges."""
    C_MAC = "c-mac"
    """A C-MAC does not verify: a changed byte, or a command missing before it."""
    WRONG_CHAINING = "wrong-chaining"
    """The C-MAC verifies only over another chaining value / ICV than the protocol prescribes."""
    MISSING_COMMAND = "missing-command"
    """The encryption counter skipped: a command of the session is missing from the trace."""
    DECRYPTION = "decryption"
    """Encrypted command data does not decrypt to correctly padded data."""
    R_MAC = "r-mac"
    """An R-MAC does not verify: a changed byte of the response."""
    R_DECRYPTION = "r-decryption"
    """Encrypted response data does not decrypt to correctly padded data."""
    OUTSIDE_CHANNEL = "outside-channel"
    """A command without the secure messaging bit where the security level requires a C-MAC."""
    RECEIPT = "receipt"
    """An SCP11 receipt does not verify with the session keys given."""
    WRONG_KEY = "wrong-key"
    """A private key or session key set given does not open what the trace carries (SCP10)."""
    SIGNATURE = "signature"
    """An SCP10 signature (off-card entity's or card's) does not verify."""
    UNSUPPORTED = "unsupported"
    """The keys do not fit the protocol, or the protocol is not one the inspector checks."""


class Mismatch(Exception):
    """A check failed: ``failure`` says which, ``explanation`` says it for a person (never with key values)."""

    def __init__(self, failure: Failure, explanation: str) -> None:
        super().__init__(explanation)
        self.failure = failure
        self.explanation = explanation


_ZERO8 = bytes(8)
_ZERO16 = bytes(16)


def plain_cla(cla: int) -> int:
    """The CLA without the secure messaging indication (the command as the application sees it)."""
    return scp03.plain_cla(cla)


def secured(command: CommandApdu, level: SecurityLevel) -> bool:
    """Whether ``command`` carries secure messaging; Mismatch(OUTSIDE_CHANNEL) if it must and does not."""
    if cla_has_secure_messaging(command.cla):
        return True
    if SecurityLevel.C_MAC in level:
        raise Mismatch(
            Failure.OUTSIDE_CHANNEL,
            f"CLA {command.cla:02X} has no secure messaging bit but the session's level {int(level):02X} requires a "
            "C-MAC: the command was sent outside the secure channel (the card refuses it and ends the session)",
        )
    return False


def security_level(command: CommandApdu, allowed: frozenset[SecurityLevel]) -> SecurityLevel:
    """P1 of EXTERNAL AUTHENTICATE as a level the protocol allows; Mismatch(MALFORMED) otherwise."""
    try:
        level = SecurityLevel.from_byte(command.p1)
    except ValueError as exc:
        raise Mismatch(Failure.MALFORMED, f"EXTERNAL AUTHENTICATE P1: {exc}") from None
    if level not in allowed:
        raise Mismatch(Failure.MALFORMED, f"security level {command.p1:02X} is not one this protocol allows")
    return level


class Checker(ABC):
    """The checks of one session; see the module docstring."""

    protocol: ScpProtocol
    level: SecurityLevel = SecurityLevel.NONE

    @property
    @abstractmethod
    def i_param(self) -> int | None:
        """The i parameter as detected so far (the first candidate that still verifies)."""

    @abstractmethod
    def check_card_cryptogram(self) -> None:
        """Mismatch(CARD_CRYPTOGRAM) unless the card cryptogram verifies."""

    @abstractmethod
    def external_authenticate(self, command: CommandApdu) -> None:
        """Check the host cryptogram and the C-MAC; take the security level from P1."""

    @abstractmethod
    def command(self, command: CommandApdu) -> CommandApdu:
        """Verify and decrypt a command of the open session; returns the plain command."""

    @abstractmethod
    def response(self, response: ResponseApdu) -> ResponseApdu:
        """Verify and decrypt the response to the last command; returns the plain response."""


def ea_parts(command: CommandApdu, size: int) -> tuple[bytes, bytes]:
    """EXTERNAL AUTHENTICATE's host cryptogram and C-MAC (``size`` bytes each); Mismatch if not so laid out."""
    if not cla_has_secure_messaging(command.cla):
        raise Mismatch(Failure.OUTSIDE_CHANNEL, "EXTERNAL AUTHENTICATE has no secure messaging bit (no C-MAC)")
    if len(command.data) != 2 * size:
        raise Mismatch(Failure.MALFORMED, f"EXTERNAL AUTHENTICATE carries {len(command.data)} bytes, not {2 * size}")
    return command.data[:size], command.data[size:]


# -- SCP01 (GP 2.1.1, Appendix D) ------------------------------------------------------------------------------


class Scp01Checker(Checker):
    """SCP01: cryptograms D.3.2, C-MAC D.3.3 (ICV the previous C-MAC, encrypted when i = 15), C-DEC D.3.4."""

    protocol = ScpProtocol.SCP01

    def __init__(self, keys: StaticKeys, host_challenge: bytes, parsed: InitializeUpdateResponse, i: int | None):
        scp01.check_keys(keys)
        if i is not None:
            scp01.check_i_param(i)
        self.parsed = parsed
        self.host_challenge = host_challenge
        self.keys = scp01.derive_session_keys(keys, host_challenge, parsed.card_challenge)
        self.candidates = [i] if i is not None else [0x05, 0x15]
        self.last_mac = _ZERO8
        self.previous_mac = _ZERO8

    @property
    def i_param(self) -> int | None:
        """05 or 15 once a C-MAC after EXTERNAL AUTHENTICATE told them apart; None before."""
        return self.candidates[0] if len(self.candidates) == 1 else None

    def check_card_cryptogram(self) -> None:
        expected = scp01.card_cryptogram(self.keys.s_enc, self.host_challenge, self.parsed.card_challenge)
        if not constant_time_equal(expected, self.parsed.card_cryptogram):
            raise Mismatch(Failure.CARD_CRYPTOGRAM, "the card cryptogram does not verify (D.3.2.1)")

    def external_authenticate(self, command: CommandApdu) -> None:
        cryptogram, mac = ea_parts(command, 8)
        expected = scp01.host_cryptogram(self.keys.s_enc, self.host_challenge, self.parsed.card_challenge)
        if not constant_time_equal(expected, cryptogram):
            raise Mismatch(Failure.HOST_CRYPTOGRAM, "the host cryptogram does not verify (D.3.2.2)")
        if not constant_time_equal(scp01.command_mac(self.keys.s_mac, _ZERO8, command, cryptogram), mac):
            raise Mismatch(Failure.C_MAC, "the C-MAC of EXTERNAL AUTHENTICATE (zero ICV) does not verify (D.3.3)")
        self.level = security_level(command, scp01.LEVELS)
        self.last_mac = mac

    def command(self, command: CommandApdu) -> CommandApdu:
        if not secured(command, self.level):
            return command
        if len(command.data) < 8:
            raise Mismatch(Failure.C_MAC, f"a secured command with {len(command.data)} data bytes has no C-MAC")
        data, mac = command.data[:-8], command.data[-8:]
        decrypt_error = None
        if SecurityLevel.C_DECRYPTION in self.level and data:
            try:
                data = scp01.decrypt_command_data(self.keys.s_enc, data)
            except DecodeError as exc:
                decrypt_error = str(exc)
        for i in self.candidates:
            icv = scp01.next_icv(self.keys.s_mac, self.last_mac, i)
            if decrypt_error is None and constant_time_equal(
                scp01.command_mac(self.keys.s_mac, icv, command, data), mac
            ):
                self.candidates = [i]
                self.previous_mac, self.last_mac = self.last_mac, mac
                return command.with_changes(cla=plain_cla(command.cla), data=data)
        if decrypt_error is not None:
            raise Mismatch(Failure.DECRYPTION, f"the command data does not decrypt (D.3.4): {decrypt_error}")
        for icv, what in ((_ZERO8, "a zero ICV"), (self.previous_mac, "the C-MAC before the previous one")):
            for i in (0x05, 0x15):
                if constant_time_equal(
                    scp01.command_mac(self.keys.s_mac, scp01.next_icv(self.keys.s_mac, icv, i), command, data), mac
                ):
                    raise Mismatch(
                        Failure.WRONG_CHAINING,
                        f"the C-MAC verifies only with {what} as ICV: the host chained wrong; the ICV is the "
                        "previous command's C-MAC (D.3.3)",
                    )
        raise Mismatch(Failure.C_MAC, "the C-MAC does not verify (D.3.3)")

    def response(self, response: ResponseApdu) -> ResponseApdu:
        return response  # SCP01 has no response protection (D.1.2)


# -- SCP03 (Amendment D) ---------------------------------------------------------------------------------------


class Scp03Checker(Checker):
    """SCP03: cryptograms 6.2.2, C-MAC 6.2.4 (chained over the full CMAC), R-MAC 6.2.5, C-DEC 6.2.6, R-ENC 6.2.7."""

    protocol = ScpProtocol.SCP03

    def __init__(self, keys: StaticKeys, host_challenge: bytes, parsed: InitializeUpdateResponse, i: int | None):
        assert parsed.i_param is not None
        scp03.check_i_param(parsed.i_param)
        self.i = parsed.i_param
        self.n = scp03.mac_length(self.i)
        if len(host_challenge) != self.n:
            raise Mismatch(Failure.MALFORMED, f"the host challenge is {len(host_challenge)} bytes; i={self.i:02X}")
        self.parsed = parsed
        self.host_challenge = host_challenge
        self.keys = scp03.derive_session_keys(keys, host_challenge + parsed.card_challenge)
        self.chain = _ZERO16
        self.previous_chain = _ZERO16
        self.counter = 0

    @property
    def i_param(self) -> int | None:
        return self.i

    def check_card_cryptogram(self) -> None:
        expected = scp03.card_cryptogram(self.keys.s_mac, self.host_challenge, self.parsed.card_challenge)
        if not constant_time_equal(expected, self.parsed.card_cryptogram):
            raise Mismatch(Failure.CARD_CRYPTOGRAM, "the card cryptogram does not verify (Amendment D 6.2.2.2)")

    def external_authenticate(self, command: CommandApdu) -> None:
        cryptogram, mac = ea_parts(command, self.n)
        expected = scp03.host_cryptogram(self.keys.s_mac, self.host_challenge, self.parsed.card_challenge)
        if not constant_time_equal(expected, cryptogram):
            raise Mismatch(Failure.HOST_CRYPTOGRAM, "the host cryptogram does not verify (Amendment D 6.2.2.3)")
        full = self._cmac(_ZERO16, command, cryptogram)
        if not constant_time_equal(full[: self.n], mac):
            raise Mismatch(Failure.C_MAC, "the C-MAC of EXTERNAL AUTHENTICATE (zero chaining value) does not verify")
        self.level = security_level(command, scp03.allowed_levels(self.i))
        self.chain = full

    def _cmac(self, chain: bytes, command: CommandApdu, data: bytes) -> bytes:
        mac_input = scp03.command_mac_input(chain, command, data, len(command.data), command.is_extended)
        return scp03.compute_cmac(self.keys.s_mac, mac_input)

    def _decrypts(self, data: bytes, counter: int) -> bool:
        try:
            scp03.decrypt_block_data(self.keys.s_enc, scp03.command_icv(self.keys.s_enc, counter), data)
        except DecodeError:
            return False
        return True

    def command(self, command: CommandApdu) -> CommandApdu:
        self.counter += 1
        if not secured(command, self.level):
            return command
        if len(command.data) < self.n:
            raise Mismatch(Failure.C_MAC, f"a secured command with {len(command.data)} data bytes has no C-MAC")
        data, mac = command.data[: -self.n], command.data[-self.n :]
        full = self._cmac(self.chain, command, data)
        encrypted = SecurityLevel.C_DECRYPTION in self.level and bool(data)
        if not constant_time_equal(full[: self.n], mac):
            if encrypted and not self._decrypts(data, self.counter):
                for skipped in range(1, 9):
                    if self._decrypts(data, self.counter + skipped):
                        raise Mismatch(
                            Failure.MISSING_COMMAND,
                            f"the encryption counter skipped {skipped} (expected {self.counter}, the data decrypts "
                            f"with {self.counter + skipped}): {skipped} command(s) of the session are missing "
                            "before this one (Amendment D 6.2.6)",
                        )
            for chain, what in ((_ZERO16, "a zero chaining value"), (self.previous_chain, "the previous one")):
                if constant_time_equal(self._cmac(chain, command, data)[: self.n], mac):
                    raise Mismatch(
                        Failure.WRONG_CHAINING,
                        f"the C-MAC verifies only over {what}: the host chained wrong; the chaining value is the "
                        "full CMAC of the previous command (Amendment D 6.2.4)",
                    )
            raise Mismatch(Failure.C_MAC, "the C-MAC does not verify (Amendment D 6.2.4)")
        self.previous_chain, self.chain = self.chain, full
        if encrypted:
            try:
                data = scp03.decrypt_block_data(self.keys.s_enc, scp03.command_icv(self.keys.s_enc, self.counter), data)
            except DecodeError as exc:
                raise Mismatch(Failure.DECRYPTION, f"the command data does not decrypt (6.2.6): {exc}") from None
        return command.with_changes(cla=plain_cla(command.cla), data=data)

    def response(self, response: ResponseApdu) -> ResponseApdu:
        if SecurityLevel.R_MAC not in self.level:
            return response
        if not scp03.is_success_sw(response.sw):
            if response.data:
                raise Mismatch(Failure.R_MAC, f"status {response.sw:04X} came with data that no R-MAC protects")
            return response
        if len(response.data) < self.n:
            raise Mismatch(Failure.R_MAC, f"the response has {len(response.data)} data bytes; no room for an R-MAC")
        body, rmac = response.data[: -self.n], response.data[-self.n :]
        expected = scp03.compute_cmac(self.keys.s_rmac, self.chain + body + response.sw.to_bytes(2, "big"))
        if not constant_time_equal(expected[: self.n], rmac):
            raise Mismatch(Failure.R_MAC, "the R-MAC does not verify (Amendment D 6.2.5)")
        if SecurityLevel.R_ENCRYPTION in self.level and body:
            try:
                body = scp03.decrypt_block_data(
                    self.keys.s_enc, scp03.response_icv(self.keys.s_enc, self.counter), body
                )
            except DecodeError as exc:
                raise Mismatch(Failure.R_DECRYPTION, f"the response data does not decrypt (6.2.7): {exc}") from None
        return ResponseApdu(body, response.sw)
