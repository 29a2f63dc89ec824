"""Targets: SMS TPDUs, UDH and concatenation, ENVELOPEs, secured packets and PoRs, remote APDU scripts
(gpchannel.ota). Seeds: the vector files (pySim, gsm0348) and packets built here with the library's encoders."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from fuzz.engine import Target, each
from fuzz.seeds import vector_hex
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.ota import remote_apdu, scp80, sms, udh
from gpchannel.ota.algorithms import Scp80KeySet
from gpchannel.ota.envelope import SmsPpDownload
from gpchannel.ota.packet import CommandPacket, PacketLayout, ResponsePacket
from gpchannel.ota.spi import CipherAlgorithm, CounterMode, Integrity, Kic, Kid, MacAlgorithm, RcAlgorithm, Spi

__all__ = ["KEYSETS", "TARGETS", "command_packets"]

_AES = Scp80KeySet(bytes(range(16)), bytes(range(16, 32)), cipher=CipherAlgorithm.AES_CBC, mac=MacAlgorithm.AES_CMAC)
_DES3 = Scp80KeySet(
    bytes(range(16)), bytes(range(16, 32)), cipher=CipherAlgorithm.DES3_2KEY_CBC, mac=MacAlgorithm.DES3_2KEY_CBC_MAC
)
_RC = Scp80KeySet(b"", b"", rc=RcAlgorithm.CRC32)
KEYSETS: tuple[tuple[Scp80KeySet, Kic, Kid], ...] = (
    (_AES, Kic.for_cipher(CipherAlgorithm.AES_CBC, kvn=1), Kid.for_mac(MacAlgorithm.AES_CMAC, kvn=1)),
    (_DES3, Kic.for_cipher(CipherAlgorithm.DES3_2KEY_CBC, kvn=2), Kid.for_mac(MacAlgorithm.DES3_2KEY_CBC_MAC, kvn=2)),
)
_SPIS = (
    Spi(counter_mode=CounterMode.HIGHER),
    Spi(
        integrity=Integrity.NONE,
        ciphered=False,
        counter_mode=CounterMode.NO_COUNTER,
        por_integrity=Integrity.NONE,
        por_ciphered=False,
    ),
    Spi(integrity=Integrity.CC, ciphered=False),
)
_SCRIPTS = (
    bytes.fromhex("00A40000023F00 00B0000010"),
    remote_apdu.CommandScript.of([CommandApdu(0x80, 0xF2, 0x40, 0x00, b"\x4f\x00", le=256)]).to_bytes(),
    remote_apdu.encode_compact([CommandApdu(0x80, 0xE6, 0x0C, 0x00, bytes(20))]),
)


@cache
def command_packets() -> tuple[bytes, ...]:
    """Secured command packets (TS 102 225 5.1), every key set x SPI x script, counter 1."""
    out = []
    for keyset, kic, kid in KEYSETS:
        for spi in _SPIS:
            for script in _SCRIPTS:
                packet = scp80.secure_command(
                    script, spi=spi, kic=kic, kid=kid, tar=b"\xb0\x00\x01", counter=1, keyset=keyset
                )
                out.append(packet.to_bytes())
    return tuple(out)


@cache
def response_packets() -> tuple[bytes, ...]:
    out = []
    for keyset, kic, kid in KEYSETS:
        for spi in _SPIS:
            for status in (scp80.ResponseStatus.POR_OK, scp80.ResponseStatus.CNTR_LOW):
                packet = scp80.secure_response(
                    b"\x01\x90\x00",
                    spi=spi,
                    kic=kic,
                    kid=kid,
                    tar=b"\xb0\x00\x01",
                    counter=1,
                    status=status,
                    keyset=keyset,
                )
                out.append(packet.to_bytes())
    return tuple(out)


def _tpdu_seeds() -> Sequence[bytes]:
    out = [
        sms.SmsDeliver(sms.Address("12345678"), ud).to_bytes()
        for p in command_packets()[:4]
        for ud in udh.split_packet(p)
    ]
    out += [
        sms.SmsSubmit(sms.Address("4477"), ud).to_bytes()
        for p in response_packets()[:2]
        for ud in udh.split_packet(p, response=True)
    ]
    return out + list(vector_hex("ota", "smpp", max_size=200))


_tpdu = each(
    sms.SmsDeliver.from_bytes,
    sms.SmsSubmit.from_bytes,
    lambda d: sms.SmsDeliverReport.from_bytes(d[1:], error=bool(d[:1] > b"\x7f")),
    sms.Address.from_bytes,
    lambda d: sms.Address.decode(d, 1),
)


def _udh_seeds() -> Sequence[bytes]:
    long_packet = scp80.secure_command(
        bytes(300), spi=_SPIS[0], kic=KEYSETS[0][1], kid=KEYSETS[0][2], tar=b"\x00\x00\x00", counter=1, keyset=_AES
    ).to_bytes()
    segments = udh.split_packet(long_packet, reference=7)
    return [ud for p in command_packets()[:3] for ud in udh.split_packet(p)] + segments + [b"".join(segments)]


_udh = each(udh.parse_udh, udh.secured_message)


def _concatenation(data: bytes) -> None:
    """The input is a run of TP-UDs, each prefixed with its length: fed to one Reassembler (8 pending at most)."""
    reassembler = udh.Reassembler(max_pending=4)
    at = 0
    while at < len(data):
        size = data[at]
        reassembler.feed(data[at + 1 : at + 1 + size], originator=str(size & 1))
        at += 1 + size


def _concatenation_seeds() -> Sequence[bytes]:
    out = []
    for seed in _udh_seeds():
        out.append(bytes((len(seed[:255]),)) + seed[:255])
    long_segments = [s for s in _udh_seeds() if s[:1] == b"\x05" or s[1:2] == b"\x00"]
    out.append(b"".join(bytes((len(s[:255]),)) + s[:255] for s in long_segments))
    return out


def _envelope_seeds() -> Sequence[bytes]:
    return [
        SmsPpDownload(t, sms.Address("4477") if n % 2 else None).to_bytes() for n, t in enumerate(_tpdu_seeds()[:8])
    ]


_packet = each(
    *(lambda d, t=t: CommandPacket.from_bytes(d, t) for t in PacketLayout),
    *(lambda d, t=t: ResponsePacket.from_bytes(d, t) for t in PacketLayout),
)
_unsecure_command = each(
    *(lambda d, k=k: scp80.unsecure_command(d, k, stored_counter=0) for k, _, _ in KEYSETS),
    lambda d: scp80.unsecure_command(d, _RC, stored_counter=None),
    lambda d: scp80.unsecure_command(d, KEYSETS[0][0], stored_counter=None, transport=PacketLayout.GENERIC),
)
_unsecure_response = each(
    *(
        lambda d, s=s, k=k: scp80.unsecure_response(d, spi=s, kic=k[1], kid=k[2], keyset=k[0])
        for s in _SPIS
        for k in KEYSETS
    )
)


def _expanded_to_compact(data: bytes) -> None:
    """An expanded script's APDUs re-sent in the compact format (what ``gpchannel ota build`` does with APDUs
    from the command line): refused with UnsupportedError when one needs extended lengths."""
    remote_apdu.encode_compact(remote_apdu.CommandScript.from_bytes(data).apdus)


def _remote_seeds() -> Sequence[bytes]:
    responses = [
        remote_apdu.ResponseScript((remote_apdu.RApdu(ResponseApdu(b"\x01\x02", 0x9000)),), executed=1).to_bytes(),
        remote_apdu.ResponseScript((remote_apdu.RApdu(ResponseApdu(b"", 0x6A82)),), definite=False).to_bytes(),
        bytes.fromhex("016132"),
    ]
    indefinite = remote_apdu.CommandScript.of([CommandApdu(0, 0xA4, 0, 0, b"\x3f\x00")], definite=False).to_bytes()
    return [*_SCRIPTS, indefinite, *responses, *vector_hex("ram", max_size=600)]


TARGETS: tuple[Target, ...] = (
    Target("ota.sms", _tpdu_seeds, _tpdu),
    Target("ota.udh", _udh_seeds, _udh),
    Target("ota.udh.concatenation", _concatenation_seeds, _concatenation, max_size=2048),
    Target("ota.envelope", _envelope_seeds, lambda d: SmsPpDownload.from_bytes(d)),
    Target("ota.packet", lambda: command_packets() + response_packets() + vector_hex("ota", max_size=300), _packet),
    Target("ota.scp80.command", lambda: command_packets() + vector_hex("ota", max_size=300), _unsecure_command),
    Target("ota.scp80.por", response_packets, _unsecure_response),
    Target(
        "ota.remote_apdu",
        _remote_seeds,
        each(
            remote_apdu.decode_compact,
            remote_apdu.CommandScript.from_bytes,
            _expanded_to_compact,
            remote_apdu.ResponseScript.from_bytes,
            remote_apdu.CompactResponse.from_bytes,
        ),
    ),
)
