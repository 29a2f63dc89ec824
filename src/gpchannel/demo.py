"""An in-memory secure channel demo: a host object and a card object complete SCP03 and SCP02 sessions.

Run with ``python -m gpchannel.demo``. Every APDU is shown as the host meant it, as it went on the wire, and
as the card saw it, so the effect of each security level is visible. The keys are the GlobalPlatform default
test keys (404142...4F): never use them on a card in the field.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.errors import GPChannelError
from gpchannel.scp.common import CardChannel, SecurityLevel
from gpchannel.scp.loopback import exchange, handshake
from gpchannel.scp.scp02_card import Scp02Card
from gpchannel.scp.scp02_host import Scp02Host
from gpchannel.scp.scp03_card import Scp03Card
from gpchannel.scp.scp03_host import Scp03Host
from gpchannel.scp.symmetric import SymmetricHostChannel

__all__ = ["main"]

DEFAULT_KEY = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
ISD_AID = bytes.fromhex("A000000151000000")
KDD = bytes.fromhex("0000A1B2C3D4E5F60708")


def _application(command: CommandApdu) -> ResponseApdu:
    """A toy application: GET DATA 9F7F answers a CPLC-like blob, everything else echoes its data."""
    if command.ins == 0xCA:
        return ResponseApdu(bytes.fromhex("9F7F06") + bytes(range(6)), 0x9000)
    return ResponseApdu(command.data, 0x9000)


def _session(title: str, host: SymmetricHostChannel, card: CardChannel, commands: list[CommandApdu]) -> None:
    print(f"\n=== {title} ===")
    for command, response in handshake(host, card):
        print(f"  > {command}")
        print(f"  < {response}")
    print(f"  channel open at security level {host.level:02X}")
    for command in commands:
        ex = exchange(host, card, command, _application)
        print(f"  host sends   {ex.command}")
        print(f"    on wire    {ex.wire_command}")
        print(f"    card sees  {ex.card_command}")
        print(f"    card says  {ex.card_response}")
        print(f"    on wire    {ex.wire_response}")
        print(f"    host gets  {ex.response}")
    # A tampered command: the card refuses it with 6982 and the channel closes on both sides.
    wire = host.wrap(commands[0])
    tampered = wire.with_changes(data=wire.data[:-1] + bytes((wire.data[-1] ^ 1,)))
    try:
        card.unwrap(tampered)
    except GPChannelError as exc:
        print(f"  tampered MAC -> card answers {getattr(exc, 'sw', 0):04X} and closes the channel ({exc})")
    print(f"  card channel state: {card.state.value}")


def _scp03(random: Callable[[int], bytes]) -> None:
    keys = StaticKeys.single(DEFAULT_KEY, kvn=0x30, key_type=KeyType.AES)
    card = Scp03Card(keys, i_param=0x70, key_diversification_data=KDD, sequence_counter=0, random=random, aid=ISD_AID)
    host = Scp03Host(keys, level=SecurityLevel(0x33), host_challenge=random(8), aid=ISD_AID)
    commands = [CommandApdu(0x80, 0xCA, 0x9F, 0x7F, le=256), CommandApdu(0x80, 0xE2, 0x90, 0x00, b"hello, card")]
    _session("SCP03 i=70, AES-128, security level 33 (C-MAC, C-DEC, R-MAC, R-ENC)", host, card, commands)


def _scp02(random: Callable[[int], bytes]) -> None:
    keys = StaticKeys.single(DEFAULT_KEY, kvn=0x20, key_type=KeyType.DES3)
    card = Scp02Card(keys, i_param=0x55, key_diversification_data=KDD, sequence_counter=1, random=random, aid=ISD_AID)
    host = Scp02Host(keys, level=SecurityLevel(0x03), host_challenge=random(8), i_param=0x55)
    commands = [CommandApdu(0x80, 0xCA, 0x9F, 0x7F, le=256), CommandApdu(0x80, 0xE2, 0x90, 0x00, b"hello, card")]
    _session("SCP02 i=55, 3DES, security level 03 (C-MAC, C-DEC)", host, card, commands)


def main() -> None:
    print("gpchannel in-memory demo: a host and a card object, the GlobalPlatform default test keys")
    _scp03(os.urandom)
    _scp02(os.urandom)


if __name__ == "__main__":
    main()
