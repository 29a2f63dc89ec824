"""Secure messaging throughput: the host's wrap + unwrap and the card's unwrap + wrap of a 200-byte command.

Each figure is printed beside a baseline measured in the same process: the raw cipher and MAC calls that the
same steps need (crypto/ciphers.py called directly), so the ratio shows what the protocol code itself costs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.timing import Comparison, rate
from gpchannel.codec.apdu import CommandApdu, ResponseApdu
from gpchannel.crypto import ciphers
from gpchannel.crypto.keys import KeyType, StaticKeys
from gpchannel.crypto.padding import pad80
from gpchannel.scp.common import CardChannel, HostChannel, SecurityLevel
from gpchannel.scp.loopback import handshake

__all__ = ["run"]

AID = bytes.fromhex("A000000151000000")
KDD = bytes(range(10))
DATA = bytes(range(200))
COMMAND = CommandApdu(0x80, 0xE2, 0x90, 0x00, DATA)
RESPONSE = ResponseApdu(bytes(32), 0x9000)


def _split_rates(host: HostChannel, card: CardChannel, seconds: float) -> tuple[float, float]:
    """APDUs/s of the host's (wrap + unwrap) and of the card's (unwrap + wrap), timed separately."""
    host_ns = card_ns = 0
    count = 0
    deadline = time.perf_counter() + seconds * 2
    while time.perf_counter() < deadline:
        for _ in range(100):
            t0 = time.perf_counter_ns()
            wire = host.wrap(COMMAND)
            t1 = time.perf_counter_ns()
            card.unwrap(wire)
            wire_response = card.wrap(RESPONSE)
            t2 = time.perf_counter_ns()
            host.unwrap(wire_response)
            t3 = time.perf_counter_ns()
            host_ns += (t1 - t0) + (t3 - t2)
            card_ns += t2 - t1
        count += 100
    return count / (host_ns / 1e9), count / (card_ns / 1e9)


def _scp03_pair() -> tuple[HostChannel, CardChannel]:
    from gpchannel.scp.scp03_card import Scp03Card
    from gpchannel.scp.scp03_host import Scp03Host

    keys = StaticKeys.single(bytes(range(16)), kvn=0x30)
    host = Scp03Host(keys, level=SecurityLevel(0x33), host_challenge=bytes(8))
    card = Scp03Card(keys, i_param=0x70, key_diversification_data=KDD, sequence_counter=0, random=bytes, aid=AID)
    handshake(host, card)
    return host, card


def _scp03_baseline() -> Callable[[], object]:
    """The AES calls of one level-33 exchange, on one side: ICV, CBC, CMAC for the command and the response."""
    key = bytes(range(16))
    chain = bytes(16)
    header = bytes(5)
    padded = pad80(DATA, 16)
    response_padded = pad80(RESPONSE.data, 16)

    def one() -> object:
        icv = ciphers.aes_ecb_encrypt(key, bytes(16))
        ct = ciphers.aes_cbc_encrypt(key, padded, icv)
        ciphers.aes_cmac(key, chain + header + ct)
        ricv = ciphers.aes_ecb_encrypt(key, b"\x80" + bytes(15))
        rct = ciphers.aes_cbc_encrypt(key, response_padded, ricv)
        return ciphers.aes_cmac(key, chain + rct + b"\x90\x00")

    return one


def _scp02_pair() -> tuple[HostChannel, CardChannel]:
    from gpchannel.scp.scp02_card import Scp02Card
    from gpchannel.scp.scp02_host import Scp02Host

    keys = StaticKeys.single(bytes.fromhex("404142434445464748494A4B4C4D4E4F"), kvn=0x20, key_type=KeyType.DES3)
    host = Scp02Host(keys, level=SecurityLevel(0x03), host_challenge=bytes(8), i_param=0x55)
    card: CardChannel = Scp02Card(
        keys, i_param=0x55, key_diversification_data=KDD, sequence_counter=1, random=bytes, aid=AID
    )
    handshake(host, card)
    return host, card


def _scp02_baseline() -> Callable[[], object]:
    """The DES calls of one i=55 level-03 command, on one side: ICV encryption, retail MAC, 3DES-CBC."""
    key = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
    icv = bytes(8)
    mac_input = pad80(bytes(5) + DATA, 8)
    padded = pad80(DATA, 8)

    def one() -> object:
        encrypted_icv = ciphers.des_ecb_encrypt(key[:8], icv)
        ciphers.retail_mac(key, mac_input, encrypted_icv)
        return ciphers.des3_cbc_encrypt(key, padded)

    return one


def run(seconds: float = 1.0) -> list[Comparison]:
    results: list[Comparison] = []
    cases: list[tuple[str, Callable[[], tuple[HostChannel, CardChannel]], Callable[[], Callable[[], object]]]] = [
        ("SCP03 i=70 level 33", _scp03_pair, _scp03_baseline),
        ("SCP02 i=55 level 03", _scp02_pair, _scp02_baseline),
    ]
    for name, make_pair, make_baseline in cases:
        try:
            host, card = make_pair()
        except ImportError as exc:
            print(f"{name}: skipped ({exc})")
            continue
        host_rate, card_rate = _split_rates(host, card, seconds)
        base = rate(make_baseline(), seconds)
        results.append(
            Comparison(f"{name}: host wrap+unwrap, 200-byte command", host_rate, "raw crypto", base, aim=0.5)
        )
        results.append(
            Comparison(f"{name}: card unwrap+wrap, 200-byte command", card_rate, "raw crypto", base, aim=0.5)
        )
    return results
