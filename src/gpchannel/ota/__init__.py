"""SCP80 over-the-air secured packets (ETSI TS 102 225/226, 3GPP TS 31.115/31.111/23.040) as a sans-I/O core.

Modules, by responsibility:

- :mod:`~gpchannel.ota.spi`: SPI, KIc, KID codings and the algorithm enums;
- :mod:`~gpchannel.ota.algorithms`: :class:`Scp80KeySet` (keys bound to algorithms), ciphers, RC/CC;
- :mod:`~gpchannel.ota.packet`: the wire layout of command and response packets (clear header, opaque rest);
- :mod:`~gpchannel.ota.scp80`: ``secure_*`` / ``unsecure_*`` for both directions, counter policy, PoR rules;
- :mod:`~gpchannel.ota.udh`, :mod:`~gpchannel.ota.sms`, :mod:`~gpchannel.ota.envelope`: SMS-PP transport;
- :mod:`~gpchannel.ota.remote_apdu`: compact and expanded remote APDU scripts and responses.

A sending entity (OTA server)::

    packet = secure_command(encode_compact(apdus), spi=spi, kic=kic, kid=kid, tar=tar, counter=n, keyset=ks)
    tpdus = [SmsDeliver(originator, ud) for ud in split_packet(packet.to_bytes(), reference=ref)]
    ...
    por = unsecure_response(response_ud[3:], spi=spi, kic=kic, kid=kid, keyset=ks)

A receiving entity (the card) parses ``CommandPacket.from_bytes`` first (TAR and KVN in clear), picks the key
set, calls ``unsecure_command`` (with its stored counter), and on an error answers
``error_response(packet, por_status(exc))``; on success, ``secure_response`` per SPI2.
"""

from gpchannel.ota.algorithms import KIC_ALGORITHMS, KID_ALGORITHMS, Scp80KeySet, key_lengths
from gpchannel.ota.envelope import SmsPpDownload
from gpchannel.ota.packet import CommandPacket, PacketLayout, ResponsePacket
from gpchannel.ota.remote_apdu import CommandScript, CompactResponse, ResponseScript, decode_compact, encode_compact
from gpchannel.ota.scp80 import (
    MAX_COUNTER,
    Command,
    Response,
    ResponseStatus,
    check_counter,
    counter_after,
    error_response,
    may_secure_por,
    por_status,
    por_wanted,
    secure_command,
    secure_response,
    unsecure_command,
    unsecure_response,
)
from gpchannel.ota.sms import Address, SmsDeliver, SmsDeliverReport, SmsSubmit, TypeOfNumber
from gpchannel.ota.spi import (
    CipherAlgorithm,
    CounterMode,
    Integrity,
    Kic,
    Kid,
    MacAlgorithm,
    PorMode,
    PorTransport,
    RcAlgorithm,
    Spi,
    meets_minimum_security,
)
from gpchannel.ota.udh import Reassembler, SecuredMessage, secured_message, split_packet

__all__ = [
    "KIC_ALGORITHMS",
    "KID_ALGORITHMS",
    "MAX_COUNTER",
    "Address",
    "CipherAlgorithm",
    "Command",
    "CommandPacket",
    "CommandScript",
    "CompactResponse",
    "CounterMode",
    "Integrity",
    "Kic",
    "Kid",
    "MacAlgorithm",
    "PacketLayout",
    "PorMode",
    "PorTransport",
    "RcAlgorithm",
    "Reassembler",
    "Response",
    "ResponsePacket",
    "ResponseScript",
    "ResponseStatus",
    "Scp80KeySet",
    "SecuredMessage",
    "SmsDeliver",
    "SmsDeliverReport",
    "SmsPpDownload",
    "SmsSubmit",
    "Spi",
    "TypeOfNumber",
    "check_counter",
    "counter_after",
    "decode_compact",
    "encode_compact",
    "error_response",
    "key_lengths",
    "may_secure_por",
    "meets_minimum_security",
    "por_status",
    "por_wanted",
    "secure_command",
    "secure_response",
    "secured_message",
    "split_packet",
    "unsecure_command",
    "unsecure_response",
]
