"""A host session with a card: APDU exchange over a transport, and opening a secure channel on it.

The session sends INITIALIZE UPDATE, detects the protocol (byte 11 of the response, GP 2.3.1 E.5.1 / Amendment D
7.1.1, as GlobalPlatformPro does), parses the response once with that protocol's format and, for SCP03, reads i
(byte 12), then hands the parsed response to the host class of that protocol, found in the protocol registry
(:mod:`gpchannel.scp.registry`). Where the host's i comes from when the caller gives none is the registry's too
(SCP02 does not send i: the card recognition data, else 15). Protocols initiated by a step driver (SCP10) open
with :meth:`CardSession.open_stepped_channel`.

A wrong card cryptogram raises :class:`AuthenticationError` before EXTERNAL AUTHENTICATE is built: only
INITIALIZE UPDATE has gone to the card, which no card counts against its retry limit.

Answers ``61xx`` (more data: GET RESPONSE) and ``6Cxx`` (wrong Le: re-send) are handled on the wire, under the
secure channel. Every exchange can be reported to a ``trace`` hook with the wire bytes and, inside a secure
channel, the plain command and response beside them.

No I/O happens here: the transport is injected (anything with ``transmit`` and ``close``), and so is randomness.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.keys import StaticKeys
from gpchannel.errors import CardStatusError, LocalProtocolError, RemoteProtocolError, UnsupportedError
from gpchannel.host.commands import get_response_command
from gpchannel.scp.common import (
    HostChannel,
    InitializeUpdateResponse,
    KeyResolver,
    RandomSource,
    SecurityLevel,
    SteppedHostChannel,
    initialize_update_command,
    protocol_name,
)
from gpchannel.scp.registry import PROTOCOLS, ExplicitProtocol, Initiation, ProtocolRegistry
from gpchannel.scp.symmetric import SymmetricHostChannel

__all__ = [
    "ApduTransport",
    "CardSession",
    "ChannelOptions",
    "Exchange",
    "TraceHook",
]

_MAX_GET_RESPONSE = 32
"""More 61xx rounds than this for one command means a card that never finishes: refuse it."""


class ApduTransport(Protocol):
    """What the session needs of a transport (``gpchannel.io.transport.Transport`` has this shape)."""

    def transmit(self, command: CommandApdu) -> ResponseApdu: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Exchange:
    """One command and its answer: as on the wire, and (inside a secure channel) as the application sees them."""

    command: CommandApdu
    response: ResponseApdu
    plain_command: CommandApdu | None = None
    plain_response: ResponseApdu | None = None


TraceHook = Callable[[Exchange], None]


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """How to open a secure channel. ``keys`` are never shown in a repr.

    ``scp`` / ``i_param`` None: detected from the INITIALIZE UPDATE response (SCP02's i from ``recognition``
    hints, see :meth:`CardSession.open_secure_channel`). ``kvn`` 0: the card's first available key set.
    """

    keys: StaticKeys | KeyResolver = field(repr=False)
    level: SecurityLevel = SecurityLevel.C_MAC
    scp: int | None = None
    i_param: int | None = None
    kvn: int = 0
    s16: bool = False
    driver: Callable[[SecurityLevel, int], SteppedHostChannel] | None = None
    """A protocol initiated by a step driver (``scp`` SCP10): builds the off-card entity's host channel for (level,
    logical channel) with its credentials (SCP10: key and certificate chain); see
    :meth:`CardSession.open_stepped_channel`."""


class CardSession:
    """APDUs to one card over ``transport``, optionally through a secure channel on logical ``channel``."""

    def __init__(
        self,
        transport: ApduTransport,
        *,
        random: RandomSource,
        trace: TraceHook | None = None,
        channel: int = 0,
        protocols: ProtocolRegistry = PROTOCOLS,
    ) -> None:
        self.transport = transport
        self.protocols = protocols
        self.random = random
        self.trace = trace
        self.channel = channel
        self.secure: HostChannel | None = None
        self.init_response: InitializeUpdateResponse | None = None

    def __repr__(self) -> str:
        state = self.secure.state.value if self.secure else "none"
        return f"CardSession(channel={self.channel}, secure_channel={state})"

    # -- the wire -------------------------------------------------------------------------------------------------
    def _wire(self, command: CommandApdu) -> ResponseApdu:
        response = self.transport.transmit(command)
        if response.sw1 == 0x6C and command.le is not None:  # wrong Le: send again with the card's length
            command = command.with_changes(le=response.sw2 or 256)
            response = self.transport.transmit(command)
        data = b""
        rounds = 0
        while response.sw1 == 0x61:
            rounds += 1
            if rounds > _MAX_GET_RESPONSE:
                raise RemoteProtocolError(f"the card kept answering 61xx after {_MAX_GET_RESPONSE} GET RESPONSEs")
            data += response.data
            response = self.transport.transmit(get_response_command(response.sw2, channel=command.channel))
        return ResponseApdu(data + response.data, response.sw) if data else response

    def transmit_plain(self, command: CommandApdu) -> ResponseApdu:
        """Send ``command`` as it is (no secure messaging), reporting it to the trace hook."""
        response = self._wire(command)
        if self.trace:
            self.trace(Exchange(command, response))
        return response

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        """Send ``command`` through the secure channel when one is open (wrap, unwrap), else as it is."""
        if self.secure is None or not self.secure.is_open:
            return self.transmit_plain(command)
        wrapped = self.secure.wrap(command)
        raw = self._wire(wrapped)
        plain = self.secure.unwrap(raw)
        if self.trace:
            self.trace(Exchange(wrapped, raw, command, plain))
        return plain

    def send(self, command: CommandApdu, what: str = "") -> ResponseApdu:
        """:meth:`transmit`, raising CardStatusError unless the card answers 9000 or a warning (62xx, 63xx)."""
        response = self.transmit(command)
        if not response.is_success:
            raise CardStatusError(response.sw, what or f"INS {command.ins:02X}", response.data)
        return response

    def close(self) -> None:
        """Forget the secure channel (the card ends it on its next SELECT or reset) and close the transport."""
        if self.secure is not None:
            self.secure.close()
        self.transport.close()

    def end_secure_channel(self) -> None:
        """Forget the secure channel without touching the transport (after SELECT, which ends it on the card)."""
        if self.secure is not None:
            self.secure.close()
        self.secure = None

    # -- opening a secure channel ---------------------------------------------------------------------------------
    def probe(self, kvn: int = 0, *, s16: bool = False) -> InitializeUpdateResponse:
        """INITIALIZE UPDATE alone, to read the key diversification data, key version, protocol, i and sequence
        counter without authenticating (no EXTERNAL AUTHENTICATE follows: nothing counts against the card)."""
        self.end_secure_channel()
        command = initialize_update_command(self.random(16 if s16 else 8), kvn, 0, self.channel)
        response = self.transmit_plain(command)
        if response.sw != 0x9000:
            raise CardStatusError(response.sw, "INITIALIZE UPDATE refused", response.data)
        self.init_response = InitializeUpdateResponse.from_bytes(response.data)
        return self.init_response

    def open_channel(
        self, options: ChannelOptions, *, aid: bytes = b"", recognition_i: Mapping[int, int] | None = None
    ) -> InitializeUpdateResponse | None:
        """Open a secure channel the way the registry says ``options.scp`` opens: :meth:`open_stepped_channel`
        (None returned) or :meth:`open_secure_channel` (detection when ``options.scp`` is None)."""
        if options.scp is not None and self.protocols.initiation(options.scp) is Initiation.STEPS:
            self.open_stepped_channel(options)
            return None
        return self.open_secure_channel(options, aid=aid, recognition_i=recognition_i)

    def open_secure_channel(
        self, options: ChannelOptions, *, aid: bytes = b"", recognition_i: Mapping[int, int] | None = None
    ) -> InitializeUpdateResponse:
        """INITIALIZE UPDATE, protocol detection, card cryptogram check, EXTERNAL AUTHENTICATE (GP 2.3.1, 7.3).

        ``aid`` is the selected Security Domain's AID (SCP02 / SCP03 pseudo-random challenges are computed over
        it). ``recognition_i`` is the i the card recognition data announces per protocol, used for the protocols
        whose i is not on the wire (SCP02) when the options do not fix one. Raises CardStatusError,
        RemoteProtocolError, DecodeError, AuthenticationError or UnsupportedError; the session then has no open
        channel.
        """
        forced = options.scp
        if forced is not None and self.protocols.initiation(forced) is Initiation.STEPS:
            name = protocol_name(forced)
            raise LocalProtocolError(f"{name} has no INITIALIZE UPDATE: use open_stepped_channel")
        self.end_secure_channel()
        self.init_response = None
        challenge = self.random(16 if options.s16 else 8)
        hints = recognition_i or {}
        host: SymmetricHostChannel | None = None
        if forced is not None:
            host = self._make_host(self._explicit(forced), options, challenge, aid, hints)
            command = host.initialize_update()
        else:
            command = initialize_update_command(challenge, options.kvn, 0, self.channel)
        response = self.transmit_plain(command)
        if response.sw != 0x9000:
            if host is not None:
                host.close()
            hint = " (a locked card or an unknown key version?)" if response.sw in (0x6982, 0x6983, 0x6A88) else ""
            raise CardStatusError(response.sw, f"INITIALIZE UPDATE refused{hint}", response.data)
        parsed = self.protocols.parse_initialize_update(response.data)
        if forced is not None and parsed.protocol != forced:
            if host is not None:
                host.close()
            raise RemoteProtocolError(
                f"asked for {protocol_name(forced)} but the card answered with {protocol_name(parsed.protocol)}"
            )
        if parsed.i_param is not None and bool(parsed.i_param & 0x01) != options.s16:
            mode = "S16 (16-byte challenges)" if parsed.i_param & 0x01 else "S8"
            raise RemoteProtocolError(
                f"the card answered i={parsed.i_param:02X}, {mode}; open the channel in that mode"
            )
        if host is None:
            host = self._make_host(self._explicit(parsed.protocol), options, challenge, aid, hints, parsed.i_param)
        result = host.accept_initialize_update(parsed)
        self.init_response = result
        auth = host.external_authenticate()
        auth_response = self.transmit_plain(auth)
        host.receive_external_authenticate(auth_response)
        self.secure = host
        return result

    def open_stepped_channel(self, options: ChannelOptions) -> None:
        """Open a secure channel whose initiation is a step driver (SCP10, GP 2.2.1 Appendix F: GET DATA
        [certificate], MANAGE SECURITY ENVIRONMENT, PERFORM SECURITY OPERATION, GET CHALLENGE, EXTERNAL and
        INTERNAL AUTHENTICATE), run by the ``run`` of the host ``options.driver`` builds. Raises CardStatusError
        (the card's status word), AuthenticationError or LocalProtocolError; the session then has no open
        channel."""
        protocol = options.scp
        if protocol is None or self.protocols.initiation(protocol) is not Initiation.STEPS:
            which = "no protocol" if protocol is None else protocol_name(protocol)
            raise LocalProtocolError(f"{which}: a step driver opens only a protocol the registry says it initiates")
        if options.driver is None:
            raise LocalProtocolError(
                f"{protocol_name(protocol)} needs the off-card entity's key and certificate chain (options.driver)"
            )
        self.end_secure_channel()
        self.init_response = None
        host = options.driver(options.level, self.channel)
        host.run(self.transmit_plain)
        self.secure = host

    def _explicit(self, protocol: int) -> ExplicitProtocol:
        entry = self.protocols.explicit(protocol)
        if entry is None:
            raise UnsupportedError(f"the host tool does not implement {protocol_name(protocol)}")
        return entry

    def _make_host(
        self,
        entry: ExplicitProtocol,
        options: ChannelOptions,
        challenge: bytes,
        aid: bytes,
        recognition_i: Mapping[int, int],
        card_i: int | None = None,
    ) -> SymmetricHostChannel:
        i_param = entry.host_i_param(options.i_param, card_i, recognition_i.get(entry.protocol))
        if options.s16 and not entry.s16:
            with_s16 = ", ".join(e.name for e in self.protocols if isinstance(e, ExplicitProtocol) and e.s16)
            raise LocalProtocolError(f"S16 mode exists only in {with_s16}")
        return entry.host(
            options.keys,
            level=options.level,
            host_challenge=challenge,
            i_param=i_param,
            kvn=options.kvn,
            aid=aid,
            channel=self.channel,
        )
