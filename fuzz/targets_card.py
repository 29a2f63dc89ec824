"""Targets: the card dispatcher outside any session and inside SCP01, SCP02, SCP03 and SCP10 sessions
(gpchannel.card.dispatcher), and the OTA card handler (gpchannel.card.ota_handler: ENVELOPE SMS-PP download,
the secured packet, the remote APDU script run by the receiving entity).

The card must answer every command with a valid R-APDU (two status bytes, SW1 6x or 9x): ``allowed`` is empty,
any exception out of ``Card.process`` is a finding. The host library's own refusals while it wraps or unwraps
(a GPChannelError) are not.

Input framing for the dispatcher targets: a run of items ``flags (1) | length (1) | C-APDU``; flags b1 set: the
host channel wraps the command (secure messaging) before it is sent, else the bytes go as they are."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

from fuzz.card_sessions import CardUnderTest, fresh
from fuzz.engine import Target
from fuzz.targets_ota import KEYSETS
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.errors import GPChannelError
from gpchannel.ota import remote_apdu, scp80, sms, udh
from gpchannel.ota.envelope import SmsPpDownload
from gpchannel.ota.spi import CounterMode, Spi

__all__ = ["TARGETS"]

_COMMANDS = [
    "00A4040008A000000151000000",
    "80F21000024F0000",
    "80F24002024F0000",
    "80CA006600",
    "80CA9F7F00",
    "80CA00E000",
    "80CB00FF00",
    "80E60C002308A00000008710020108A0000000871002FF0CA0000000871002FF4900010002C9000000",
    "80E602001B08A000000087100201000EEF0CC6020000C8020000C7020000000000",
    "80E80000080C0601020304050600",
    "80E400000A4F08A00000008710020100",
    "80D8000000",
    "80F040070CA0000000871002FF49000100",
    "80E2900003010203",
    "0070000001",
    "00C0000000",
    "8050000008000102030405060700",
    "84820000100102030405060708090A0B0C0D0E0F10",
    "80F100130402F0010000",  # GENERATE KEY (SCP11)
    "80E4000006D00113D2010100",  # DELETE [key] KID 13 KVN 01
    "80E4000103D2013000",  # DELETE [key] KVN 30, "the last key"
    "80E2900011A60F8001014204010203048302130100",  # STORE DATA of a CA-KLCC identifier
    "80CAFF3300",
    "80CABF2106A6048302130100",
]
_SESSIONS = (
    "scp01-15-03",
    "scp02-55-03",
    "scp02-15-01",
    "scp03-70-33",
    "scp03-00-03",
    "scp10-02-03",
    "scp10-01-33",
    "scp11-a-3C",
    "scp11-b-3C",
)


def _items(data: bytes) -> list[tuple[bool, bytes]]:
    out: list[tuple[bool, bytes]] = []
    at = 0
    while at < len(data) and len(out) < 16:
        flags, size = data[at], data[at + 1] if at + 1 < len(data) else 0
        out.append((bool(flags & 1), data[at + 2 : at + 2 + size]))
        at += 2 + size
    return out


def _frame(commands: Sequence[str], wrap: bool) -> bytes:
    out = b""
    for text in commands:
        raw = bytes.fromhex(text.replace(" ", ""))
        out += bytes((int(wrap), len(raw))) + raw
    return out


def _answer(under: CardUnderTest, raw: bytes) -> ResponseApdu:
    out = under.exchange(raw)
    if len(out) < 2:
        raise AssertionError(f"the card answered {out.hex()!r}: no status word")
    response = ResponseApdu.from_bytes(out)
    if response.sw >> 12 not in (0x6, 0x9):
        raise AssertionError(f"the card answered SW {response.sw:04X}, not a status word of ISO 7816-4 5.6")
    return response


def _dispatch(spec: str) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        under = fresh(spec)
        for wrap, raw in _items(data):
            host = under.host
            if wrap and host is not None and host.is_open:
                try:
                    command = CommandApdu.from_bytes(raw)
                    raw = host.wrap(command.with_changes(cla=command.cla & 0xF0 | 0x80)).to_bytes()
                except GPChannelError:
                    wrap = False
            response = _answer(under, raw)
            if wrap and host is not None and host.is_open:
                try:
                    host.unwrap(response)
                except GPChannelError:
                    pass

    return run


def _dispatch_seeds(secure: bool) -> Callable[[], Sequence[bytes]]:
    def seeds() -> Sequence[bytes]:
        out = [_frame([c], secure) for c in _COMMANDS]
        out.append(_frame(_COMMANDS[:6], secure))
        out.append(_frame(_COMMANDS[6:12], secure))
        out.append(_frame(["0070000001", "01A4040008A000000151000000", "01F21000024F0000", "0070800100"], False))
        return out

    return seeds


# ---------------------------------------------------------------------------------------------- OTA handler

_SPI = Spi(counter_mode=CounterMode.HIGHER)
_KEYSET, _KIC, _KID = KEYSETS[0]


def _envelope(tpdu: bytes) -> bytes:
    return SmsPpDownload(tpdu, sms.Address("4477")).to_apdu().to_bytes()


def _deliver(under: CardUnderTest, envelope: bytes) -> None:
    """One ENVELOPE, then what a handset does with the answer: GET RESPONSE (61xx / 9Fxx), FETCH + TERMINAL
    RESPONSE (91xx), each answer a valid R-APDU."""
    response = _answer(under, envelope)
    for _ in range(8):
        sw1, sw2 = response.sw >> 8, response.sw & 0xFF
        if sw1 in (0x61, 0x9F):
            response = _answer(under, CommandApdu(0x00, 0xC0, 0, 0, le=sw2 or 256).to_bytes())
        elif sw1 == 0x91:
            _answer(under, CommandApdu(0x80, 0x12, 0, 0, le=sw2 or 256).to_bytes())
            response = _answer(under, bytes.fromhex("801400000C810301130082028281830100"))
        else:
            return


def _ota_envelope(data: bytes) -> None:
    """The input is the ENVELOPE's data (the D1 object)."""
    under = fresh("none")
    _deliver(under, CommandApdu(0x80, 0xC2, 0, 0, data[:255]).to_bytes() if data else bytes.fromhex("80C2000000"))


def _ota_packet(data: bytes) -> None:
    """The input is the secured command packet, carried in valid SMS-DELIVERs (concatenated when long)."""
    under = fresh("none")
    for ud in udh.split_packet(data, reference=len(data) & 0xFF) if data else [b"\x02\x70\x00"]:
        _deliver(under, _envelope(sms.SmsDeliver(sms.Address("12345678"), ud).to_bytes()))


def _ota_script(tar: bytes) -> Callable[[bytes], None]:
    """The input is the remote APDU script (compact or expanded), secured with the card's keys (counter 1) so
    that it reaches the receiving entity's interpreter."""

    def run(data: bytes) -> None:
        packet = scp80.secure_command(data, spi=_SPI, kic=_KIC, kid=_KID, tar=tar, counter=1, keyset=_KEYSET)
        _ota_packet(packet.to_bytes())

    return run


@cache
def _script_seeds() -> Sequence[bytes]:
    apdus = [CommandApdu.from_bytes(bytes.fromhex(c.replace(" ", ""))) for c in _COMMANDS[:12]]
    out = [remote_apdu.encode_compact([a]) for a in apdus]
    out += [
        remote_apdu.CommandScript.of(apdus[:4]).to_bytes(),
        remote_apdu.CommandScript.of(apdus[4:8], definite=False).to_bytes(),
    ]
    out.append(bytes.fromhex("00A40000023F00 00A40000027F20 00B0000008"))
    return out


def _packet_seeds() -> Sequence[bytes]:
    out = []
    for script in _script_seeds()[:6]:
        for tar in (b"\x00\x00\x00", b"\xb0\x00\x01"):
            out.append(
                scp80.secure_command(
                    script, spi=_SPI, kic=_KIC, kid=_KID, tar=tar, counter=1, keyset=_KEYSET
                ).to_bytes()
            )
    return out


def _envelope_seeds() -> Sequence[bytes]:
    out = []
    for packet in _packet_seeds()[:4]:
        for ud in udh.split_packet(packet):
            out.append(
                SmsPpDownload(sms.SmsDeliver(sms.Address("12345678"), ud).to_bytes(), sms.Address("4477")).to_bytes()
            )
    return out


TARGETS: tuple[Target, ...] = (
    Target("card.dispatcher.none", _dispatch_seeds(False), _dispatch("none"), allowed=()),
    *(Target(f"card.dispatcher.{s}", _dispatch_seeds(True), _dispatch(s), allowed=()) for s in _SESSIONS),
    Target("card.ota.envelope", _envelope_seeds, _ota_envelope, allowed=()),
    Target("card.ota.packet", _packet_seeds, _ota_packet, allowed=()),
    Target("card.ota.script.isd", _script_seeds, _ota_script(b"\x00\x00\x00"), allowed=()),
    Target("card.ota.script.rfm", _script_seeds, _ota_script(b"\xb0\x00\x01"), allowed=()),
)
