"""The whole gpchannel exception tree, and nothing else.

Every error a gpchannel API raises derives from :class:`GPChannelError`. Messages name the field and what was
expected; they never contain key material.

Card-side errors (:class:`CardError` and its subclasses) carry the status word the card answers with; the card
dispatcher turns them into an R-APDU at one boundary (design.md, section 2).
"""

from __future__ import annotations

__all__ = [
    "AdminProtocolError",
    "AuthenticationError",
    "CardError",
    "CardStatusError",
    "ChannelClosedError",
    "ClaNotSupported",
    "ConditionsNotSatisfied",
    "DecodeError",
    "FileNotFound",
    "FunctionNotSupported",
    "GPChannelError",
    "IncorrectData",
    "IncorrectP1P2",
    "InsNotSupported",
    "IntegrityError",
    "InventoryError",
    "KeyNotFound",
    "KeyProviderError",
    "LeaseLost",
    "LocalProtocolError",
    "MemoryFailure",
    "NotEnoughMemory",
    "ProfileError",
    "ProtocolError",
    "ReferencedDataNotFound",
    "RemoteProtocolError",
    "ReplayError",
    "RepositoryError",
    "SecurityError",
    "SecurityNotSatisfied",
    "SmppPduError",
    "SmppStatusError",
    "TlsError",
    "TransportError",
    "UnsupportedError",
    "WrongLength",
    "WrongMasterKey",
]


class GPChannelError(Exception):
    """Base class of every gpchannel error."""


class DecodeError(GPChannelError, ValueError):
    """Malformed bytes (APDU, TLV, packet, ...). ``offset`` is where decoding failed, when known."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        if offset is not None:
            message = f"{message} (at offset {offset})"
        super().__init__(message)


class AdminProtocolError(DecodeError):
    """A GP Amendment B admin HTTP exchange (RAM over HTTP) is malformed or refused. ``status`` is the HTTP status
    to answer with (400, 404, 405, 411, 413, 415); on the card side, the status the server answered."""

    def __init__(self, message: str, status: int = 400, offset: int | None = None) -> None:
        self.status = status
        super().__init__(message, offset)


class InventoryError(DecodeError):
    """A card inventory (CSV or JSON) cannot be imported. ``line`` is the CSV line or JSON array index (1-based)
    and ``field`` the column or key at fault, when known; the message never carries a key's value."""

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None) -> None:
        self.line = line
        self.field = field
        where = ", ".join(p for p in (f"line {line}" if line is not None else "", field or "") if p)
        super().__init__(f"{where}: {message}" if where else message)


class ProfileError(GPChannelError, ValueError):
    """A card profile (TOML) is malformed or inconsistent; the message names the key and what was expected."""


class ProtocolError(GPChannelError):
    """A state machine was driven against its rules (abstract; see the two subclasses)."""


class LocalProtocolError(ProtocolError):
    """The caller asked for something that is illegal in the current state."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something that is illegal in the current state."""


class SecurityError(GPChannelError):
    """A cryptographic check failed."""


class AuthenticationError(SecurityError):
    """A card or host cryptogram did not verify."""


class IntegrityError(SecurityError):
    """A C-MAC, R-MAC, cryptographic checksum or redundancy check did not verify."""


class ReplayError(SecurityError):
    """An OTA counter was not acceptable. ``status`` is the PoR status code to answer with (ETSI TS 102 225
    5.1.2: 02 counter low, 03 counter high, 04 counter blocked), when known."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ChannelClosedError(GPChannelError):
    """The secure channel was terminated (explicitly or by an error) and refuses all use."""


class UnsupportedError(GPChannelError):
    """An option, algorithm or i-parameter that gpchannel does not implement, or the protocol forbids."""


class KeyProviderError(GPChannelError):
    """A key provider (gpchannel.keystore, gpchannel.server.keys, gpchannel.io.pkcs11) cannot give a card's key: a
    wrapped key that does not verify (altered), a token that refuses an operation, a reference it cannot resolve."""


class KeyNotFound(KeyProviderError):
    """No key is stored for that card, purpose and KVN (or the token has no object with that label)."""


class WrongMasterKey(KeyProviderError):
    """The keys were wrapped under another master key than the one this server was given."""


class TransportError(GPChannelError):
    """I/O failed: reader gone, socket closed, TLS failure (raised by gpchannel.io only)."""


class SmppStatusError(TransportError):
    """The SMPP peer answered a request with a command_status other than ESME_ROK (SMPP 3.4 5.1.3)."""

    def __init__(self, command_status: int, message: str = "") -> None:
        self.command_status = command_status
        text = f"SMPP command_status {command_status:#010x}"
        if message:
            text = f"{text}: {message}"
        super().__init__(text)


class SmppPduError(DecodeError):
    """A malformed SMPP 3.4 PDU, or a command this stack does not speak. ``command_status`` is what to answer with
    (5.1.3), ``command_id`` and ``sequence_number`` the PDU's when its header could be read (the answer goes in
    that command's _resp, or a generic_nack); ``fatal``: the byte stream cannot be framed past it."""

    def __init__(
        self,
        message: str,
        command_status: int,
        *,
        command_id: int | None = None,
        sequence_number: int = 0,
        fatal: bool = False,
    ) -> None:
        self.command_status = command_status
        self.command_id = command_id
        self.sequence_number = sequence_number
        self.fatal = fatal
        super().__init__(f"SMPP PDU: {message}")


class RepositoryError(GPChannelError):
    """The OTA server's storage refused an operation (unknown row, constraint, database unreachable)."""


class InUseError(GPChannelError):
    """A store that one process writes at a time (a fleet's journal) is held by another process."""


class CounterExhausted(RepositoryError):
    """A card's OTA counter for a key set is at its last value (5 bytes, ETSI TS 102 225 5.1.1): nothing more can
    be sent under that key set until it is replaced."""


class LeaseLost(GPChannelError):
    """A worker acted on a job whose lease it no longer holds (expired and taken over, or the job left the queue);
    it must drop the job without sending anything."""


class TlsError(TransportError):
    """A TLS connection failed (handshake, record protection, truncation). ``alert`` is the RFC name of the TLS
    alert sent or received (e.g. "unknown_psk_identity", "bad_record_mac", "handshake_failure"), None if none."""

    def __init__(self, message: str, alert: str | None = None) -> None:
        self.alert = alert
        super().__init__(message)


class CardStatusError(GPChannelError):
    """Host side: the card answered with a status word other than success."""

    def __init__(self, sw: int, message: str = "", data: bytes = b"") -> None:
        self.sw = sw
        self.data = data
        text = f"card returned {sw:04X}"
        if message:
            text = f"{text}: {message}"
        super().__init__(text)


class CardError(GPChannelError):
    """Card side: a command is refused with the status word ``sw`` (a class attribute, overridable)."""

    sw: int = 0x6F00

    def __init__(self, message: str = "", sw: int | None = None) -> None:
        if sw is not None:
            self.sw = sw
        super().__init__(message or f"status {self.sw:04X}")


class WrongLength(CardError):
    sw = 0x6700


class SecurityNotSatisfied(CardError):
    sw = 0x6982


class ConditionsNotSatisfied(CardError):
    sw = 0x6985


class IncorrectData(CardError):
    sw = 0x6A80


class FunctionNotSupported(CardError):
    sw = 0x6A81


class FileNotFound(CardError):
    sw = 0x6A82


class NotEnoughMemory(CardError):
    sw = 0x6A84


class IncorrectP1P2(CardError):
    sw = 0x6A86


class ReferencedDataNotFound(CardError):
    sw = 0x6A88


class InsNotSupported(CardError):
    sw = 0x6D00


class ClaNotSupported(CardError):
    sw = 0x6E00


class MemoryFailure(CardError):
    sw = 0x6581
